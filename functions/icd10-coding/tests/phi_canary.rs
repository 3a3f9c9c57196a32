//! PHI canary: identifiers and clinical words of a note never appear in any log line (every level, dependencies
//! included), audit record or model request while coding it, on the allowed, model, denied and invalid paths.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

mod support;

use serde_json::json;
use shared::testing::{LogCapture, TokenSpec};
use support::{ENCOUNTER, Harness, PATIENT, coder_token, condition, direct, encounter, model_answer};

const CANARY: &str = "Zqxcanary";

#[tokio::test]
async fn the_note_never_reaches_a_log_line_an_audit_record_or_a_model_in_clear() {
    let (logs, _guard) = LogCapture::install();

    let note = format!(
        "Patient: {CANARY} Vexmoor   DOB 03/09/1955   MRN 7712{}\nCell (617) 555-0163, {}@example.org\n\
         Assessment: Essential hypertension. Plan: continue lisinopril.",
        "0044", CANARY
    );
    let h = Harness::new(
        vec![condition("c-htn", "38341003", "active"), encounter(ENCOUNTER, PATIENT)],
        Some(model_answer(&[("I10", "Essential hypertension")])),
    )
    .await;
    let ok =
        h.call(&direct(&coder_token(), json!({"note": note, "patient_id": PATIENT, "encounter_id": ENCOUNTER}))).await;
    assert_eq!(ok["ok"], true, "{ok}");
    let denied =
        h.call(&direct(&TokenSpec::with_roles(&["prior_auth_specialist"]).mint(), json!({"note": note}))).await;
    assert_eq!(denied["error"]["kind"], "denied");
    let invalid = h.call(&direct(&coder_token(), json!({"note": note, "extra": CANARY}))).await;
    assert_eq!(invalid["error"]["kind"], "invalid_input");

    let planted = [CANARY, "Vexmoor", "77120044", "555-0163", "Essential hypertension", "lisinopril"];
    logs.assert_absent(&planted, &h.tool.audit.lines(), 6);
    for request in h.tool.actions.model.as_ref().unwrap().requests() {
        for secret in [CANARY, "Vexmoor", "77120044", "555-0163", "03/09/1955"] {
            assert!(!request.guarded_text.contains(secret), "`{secret}` sent to the model");
        }
    }
    assert!(!denied.to_string().contains(CANARY) && !invalid.to_string().contains(CANARY));
}
