//! PHI canary: a unique string seeded into a patient's name, phone, address and identifiers must never
//! appear in any log line (at every level, dependencies included), error, audit record or reply produced
//! while summarising that patient. The summary's contract shows no names or identifiers, so the canary
//! may appear nowhere at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use shared::runtime::Handler;
use shared::testing::{LogCapture, TokenSpec};
use support::{Behaviour, Harness, JOIE, JOIE_ID, direct, grant, invocation, load_bundle};

const CANARY: &str = "ZQXCANARY7731";
const DR_ALVAREZ: &str = "9b2564fd-1e47-420a-bded-387234070ef3";

fn canary_bundle() -> Vec<Value> {
    let mut resources = load_bundle(JOIE);
    let patient = resources.iter_mut().find(|r| r["resourceType"] == "Patient").unwrap();
    patient["name"] = json!([{"use": "official", "family": format!("{CANARY}Family"), "given": [format!("{CANARY}Given")], "prefix": ["Ms."]}]);
    patient["telecom"] = json!([{"system": "phone", "value": format!("555-{CANARY}"), "use": "home"}]);
    patient["address"] = json!([{"line": [format!("1 {CANARY} Street")], "city": "Boston", "state": "MA"}]);
    patient["identifier"] = json!([
        {"system": "http://hospital.example/mrn", "value": format!("MRN-{CANARY}")},
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": format!("999-{CANARY}")}
    ]);
    resources
}

#[tokio::test]
async fn the_canary_never_leaves_the_fhir_response() {
    let (logs, _guard) = LogCapture::install();

    let gp = Behaviour { general_practitioner: Some(format!("Practitioner/{DR_ALVAREZ}")), ..Behaviour::default() };
    let failing = Behaviour { failing: HashMap::from([("Observation".to_owned(), 500)]), ..gp.clone() };
    let mut replies = Vec::new();
    let mut audit_lines = Vec::new();
    for behaviour in [gp, Behaviour::default(), failing] {
        let h = Harness::new(canary_bundle(), behaviour).await;
        let token = TokenSpec::clinician(DR_ALVAREZ).mint();
        replies.push(h.tool.call(invocation(&direct(&token, JOIE_ID))).await);
        let mut glass = direct(&token, JOIE_ID);
        glass["break_glass"] = grant(JOIE_ID, "emergency department, unconscious");
        replies.push(h.tool.call(invocation(&glass)).await);
        replies.push(h.tool.call(invocation(&direct(&TokenSpec::with_roles(&["rcm_coder"]).mint(), JOIE_ID))).await);
        audit_lines.extend(h.tool.audit.lines());
    }

    // The paths above really ran: a summary, a break-glass summary, denials and an upstream failure.
    assert_eq!(replies[0]["ok"], true, "{}", replies[0]);
    assert_eq!(replies[4]["ok"], true, "{}", replies[4]);
    assert_eq!(replies[2]["error"]["kind"], "denied");
    assert_eq!(replies[6]["error"]["kind"], "upstream_unavailable");
    let summary = replies[0]["result"]["summary"].to_string();
    assert!(summary.contains("\"age_years\""), "the summary is real: {summary}");

    logs.assert_absent(&[CANARY], &audit_lines, 21);
    for reply in &replies {
        assert!(!reply.to_string().contains(CANARY), "canary in a reply: {reply}");
    }
}
