//! PHI canary: a value planted in the patient's name, phone, address and identifiers never appears in a log
//! line (every level, dependencies included), an audit record or the letter writer's request, on the drafted,
//! denied and invalid paths. (The draft itself may carry the Patient resource: the payer needs it.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

mod support;

use serde_json::json;
use shared::testing::{LogCapture, TokenSpec};
use support::{Harness, TENANT, direct, load_resources, patient_id};
use time::macros::date;

const CANARY: &str = "ZQXPACANARY5519";

#[tokio::test]
async fn the_canary_never_reaches_a_log_line_an_audit_record_or_the_writer() {
    let (logs, _guard) = LogCapture::install();
    let mut resources = load_resources("Fletcher_Hyatt");
    let patient = patient_id(&resources);
    let practitioner =
        resources.iter().find(|r| r["resourceType"] == "Practitioner").unwrap()["id"].as_str().unwrap().to_owned();
    let record = resources.iter_mut().find(|r| r["resourceType"] == "Patient").unwrap();
    record["name"] = json!([{"family": format!("{CANARY}Family"), "given": [format!("{CANARY}Given")]}]);
    record["telecom"] = json!([{"system": "phone", "value": format!("555-{CANARY}")}]);
    record["address"] = json!([{"line": [format!("1 {CANARY} Street")], "city": "Boston"}]);
    record["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": format!("MRN-{CANARY}")}]);
    let gp = format!("Practitioner/{practitioner}");
    let h = Harness::new(resources, Some(&gp), date!(1993 - 08 - 02)).await;

    let knee =
        json!({"patient_id": patient, "service_code": "27447", "service_system": "http://www.ama-assn.org/go/cpt"});
    let clinician = TokenSpec { org: Some(TENANT.into()), ..TokenSpec::clinician(&practitioner) }.mint();
    let drafted = h.call(direct("prior_auth_draft", &clinician, knee.clone())).await;
    assert_eq!(drafted["ok"], true, "{drafted}");
    let coder = TokenSpec { org: Some(TENANT.into()), ..TokenSpec::with_roles(&["rcm_coder"]) }.mint();
    let denied = h.call(direct("prior_auth_draft", &coder, knee.clone())).await;
    assert_eq!(denied["error"]["kind"], "denied");
    let mut extra = knee;
    extra["mrn"] = json!(format!("MRN-{CANARY}"));
    let invalid = h.call(direct("prior_auth_draft", &clinician, extra)).await;
    assert_eq!(invalid["error"]["kind"], "invalid_input");

    logs.assert_absent(&[CANARY], &h.tool.audit.lines(), 10);
    let written = serde_json::to_string(&*h.state.writer.last.lock().unwrap()).unwrap();
    assert!(written.len() > 100 && !written.contains(CANARY), "the writer's request carries no identifier");
    assert!(!denied.to_string().contains(CANARY) && !invalid.to_string().contains(CANARY));
}
