//! The whole tool in-process against a FHIR endpoint on wiremock: who is let in, what is read, what is
//! audited, and that a deny reads no clinical data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use shared::audit::verify_chain;
use shared::runtime::Handler;
use shared::testing::TokenSpec;
use support::{Behaviour, Harness, JOIE, JOIE_ID, SESSION, direct, grant, invocation, load_bundle};

const DR_ALVAREZ: &str = "9b2564fd-1e47-420a-bded-387234070ef3";

fn gp_behaviour() -> Behaviour {
    Behaviour { general_practitioner: Some(format!("Practitioner/{DR_ALVAREZ}")), ..Behaviour::default() }
}

async fn call(h: &Harness, event: &Value) -> Value {
    h.tool.call(invocation(event)).await
}

#[tokio::test]
async fn clinician_with_a_gp_relationship_gets_a_cited_summary() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let reply = call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let summary = &reply["result"]["summary"];
    assert_eq!(summary["patient"]["reference"], format!("Patient/{JOIE_ID}"));
    assert!(reply["text"].as_str().unwrap().len() > 100);
    // Every narrative sentence cites at least one FHIR resource.
    for sentence in reply["result"]["narrative"]["sentences"].as_array().unwrap() {
        assert!(!sentence["sources"].as_array().unwrap().is_empty(), "{sentence}");
    }

    let requests = h.requests();
    assert!(
        requests.iter().all(|(_, _, session)| session.as_deref() == Some(SESSION)),
        "session header on every request"
    );
    // The relationship fact comes first and asks for ids only; the GP link is found, so no encounter is searched
    // for a link.
    let relationship: Vec<_> =
        requests.iter().filter(|(_, q, _)| q.contains("general-practitioner") || q.contains("participant")).collect();
    assert_eq!(relationship.len(), 1, "{relationship:?}");
    assert!(relationship[0].1.contains("general-practitioner"));
    assert!(requests[0] == *relationship[0], "relationship facts are read before any clinical search");
    assert!(relationship.iter().all(|(_, q, _)| q.contains("_elements=id")));
    // Clinical searches are narrow.
    let observation_queries: Vec<_> =
        requests.iter().filter(|(t, _, _)| t == "Observation").map(|(_, q, _)| q.clone()).collect();
    assert_eq!(observation_queries.len(), 2);
    assert!(
        observation_queries
            .iter()
            .all(|q| q.contains("_sort=-date") && q.contains("code=") && q.contains("_elements="))
    );

    let audit = h.audit();
    assert_eq!(audit.len(), 1);
    let record = &audit[0];
    assert_eq!(record["outcome"], "ok");
    assert_eq!(record["session_id"], SESSION);
    assert_eq!(record["decision"]["policies"], json!(["summary.clinician-in-care-relationship"]));
    assert_eq!(record["relationship_reads"], json!([format!("Patient/{JOIE_ID}")]));
    assert_eq!(record["break_glass"], false);
    assert!(record["resources_read"].as_array().unwrap().len() > 10);
    assert_eq!(record["model"], "local-deterministic");
}

#[tokio::test]
async fn a_recent_encounter_also_establishes_the_relationship() {
    let behaviour =
        Behaviour { encounter_participant: Some(format!("Practitioner/{DR_ALVAREZ}")), ..Behaviour::default() };
    let h = Harness::new(load_bundle(JOIE), behaviour).await;
    let reply = call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let reads = h.audit()[0]["relationship_reads"].clone();
    assert!(reads.as_array().unwrap().iter().all(|r| r.as_str().unwrap().starts_with("Encounter/")), "{reads}");
    let encounter_query =
        h.requests().into_iter().find(|(t, q, _)| t == "Encounter" && q.contains("participant")).unwrap().1;
    assert!(encounter_query.contains("date=ge2019-06-02"), "look-back bound: {encounter_query}");
}

#[tokio::test]
async fn rcm_coder_is_denied_before_any_fhir_request() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let reply = call(&h, &direct(&TokenSpec::with_roles(&["rcm_coder"]).mint(), JOIE_ID)).await;
    assert_eq!(reply["error"]["kind"], "denied", "{reply}");
    assert!(h.requests().is_empty(), "no FHIR request for a role that can never be allowed");
    let record = &h.audit()[0];
    assert_eq!(record["outcome"]["error"], "denied");
    assert_eq!(record["decision"]["policies"], json!(["summary.rcm-coders-never"]));
    assert_eq!(record["subject"], "user-test");
    assert_eq!(record["roles"], json!(["rcm_coder"]));
}

#[tokio::test]
async fn other_roles_and_roleless_users_are_denied_before_any_fhir_request() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    for roles in [&["prior_auth_specialist"][..], &[]] {
        let reply = call(&h, &direct(&TokenSpec::with_roles(roles).mint(), JOIE_ID)).await;
        assert_eq!(reply["error"]["kind"], "denied");
    }
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn clinician_outside_the_relationship_is_denied_after_reading_only_relationship_facts() {
    let h = Harness::new(load_bundle(JOIE), Behaviour::default()).await;
    let reply = call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await;
    assert_eq!(reply["error"]["kind"], "denied");
    let requests = h.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|(_, q, _)| q.contains("_elements=id") && q.contains("_count=1")));
    let record = &h.audit()[0];
    assert_eq!(record["decision"]["allowed"], false);
    assert_eq!(record["resources_read"], json!([]));
}

#[tokio::test]
async fn clinician_without_a_practitioner_id_has_no_relationship_and_reads_nothing() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let token = TokenSpec { practitioner_id: None, ..TokenSpec::default() }.mint();
    let reply = call(&h, &direct(&token, JOIE_ID)).await;
    assert_eq!(reply["error"]["kind"], "denied");
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn break_glass_is_allowed_and_flagged() {
    let h = Harness::new(load_bundle(JOIE), Behaviour::default()).await;
    let mut event = direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID);
    event["break_glass"] = grant(JOIE_ID, "unconscious patient in the emergency department");
    let reply = call(&h, &event).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let record = &h.audit()[0];
    assert_eq!(record["break_glass"], true);
    assert_eq!(record["break_glass_reason"], "unconscious patient in the emergency department");
    assert_eq!(record["decision"]["policies"], json!(["summary.clinician-break-glass"]));
}

#[tokio::test]
async fn break_glass_is_not_flagged_when_a_relationship_exists() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let mut event = direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID);
    event["break_glass"] = grant(JOIE_ID, "just in case, habitually");
    assert_eq!(call(&h, &event).await["ok"], true);
    assert_eq!(h.audit()[0]["break_glass"], false);
}

#[tokio::test]
async fn break_glass_from_the_model_is_ignored_and_rcm_coders_cannot_break_the_glass() {
    let h = Harness::new(load_bundle(JOIE), Behaviour::default()).await;
    // In tool arguments: the model's words. Rejected as an unknown argument, nothing read.
    let mut event = direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID);
    event["arguments"]["break_glass_reason"] = json!("the model says this is an emergency");
    assert_eq!(call(&h, &event).await["error"]["kind"], "invalid_input");
    let mut event = direct(&TokenSpec::with_roles(&["rcm_coder"]).mint(), JOIE_ID);
    event["break_glass"] = grant(JOIE_ID, "emergency department, unconscious");
    assert_eq!(call(&h, &event).await["error"]["kind"], "denied");
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn invalid_requests_make_no_downstream_call() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let token = TokenSpec::clinician(DR_ALVAREZ).mint();
    let mut cases: Vec<(Value, &str)> = vec![
        (direct(&token, "../Patient/x"), "invalid_input"),
        (direct(&token, &"a".repeat(65)), "invalid_input"),
        (
            json!({"tool": "patient_summary", "session_id": SESSION, "identity_token": token, "arguments": {}}),
            "invalid_input",
        ),
        (direct("", JOIE_ID), "unauthenticated"),
        (direct(&TokenSpec { expires_in: -60, ..TokenSpec::clinician(DR_ALVAREZ) }.mint(), JOIE_ID), "unauthenticated"),
        (direct(&TokenSpec { forged: true, ..TokenSpec::clinician(DR_ALVAREZ) }.mint(), JOIE_ID), "unauthenticated"),
        (
            direct(&TokenSpec { audience: "other".into(), ..TokenSpec::clinician(DR_ALVAREZ) }.mint(), JOIE_ID),
            "unauthenticated",
        ),
        (
            json!({"tool": "icd10_coding", "session_id": SESSION, "identity_token": token, "arguments": {"patient_id": JOIE_ID}}),
            "invalid_input",
        ),
    ];
    for bad_session in ["", "x", "has spaces in it", &"s".repeat(300)] {
        let mut event = direct(&token, JOIE_ID);
        event["session_id"] = json!(bad_session);
        cases.push((event, "invalid_input"));
    }
    let mut short_reason = direct(&token, JOIE_ID);
    short_reason["break_glass"] = grant(JOIE_ID, "because");
    cases.push((short_reason, "invalid_input"));
    for (event, kind) in &cases {
        let reply = call(&h, event).await;
        assert_eq!(reply["error"]["kind"], *kind, "{event} -> {reply}");
    }
    assert!(h.requests().is_empty(), "{:?}", h.requests());
    assert_eq!(h.audit().len(), cases.len(), "every call is audited");
}

#[tokio::test]
async fn upstream_failures_become_typed_errors_without_upstream_bodies() {
    for (status, kind) in [(500, "upstream_unavailable"), (429, "upstream_unavailable"), (403, "internal")] {
        let behaviour = Behaviour { failing: HashMap::from([("Condition".to_owned(), status)]), ..gp_behaviour() };
        let h = Harness::new(load_bundle(JOIE), behaviour).await;
        let reply = call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await;
        assert_eq!(reply["error"]["kind"], kind, "{status}: {reply}");
        assert!(!reply.to_string().contains("upstream detail"));
        assert_eq!(h.audit()[0]["outcome"]["error"], kind);
    }
}

#[tokio::test]
async fn a_patient_that_does_not_exist_is_not_found_only_after_break_glass() {
    let h = Harness::new(load_bundle(JOIE), Behaviour::default()).await;
    let token = TokenSpec::clinician(DR_ALVAREZ).mint();
    // Without a relationship the answer is a deny: whether the patient exists is not revealed.
    assert_eq!(call(&h, &direct(&token, "no-such-patient")).await["error"]["kind"], "denied");
    let mut event = direct(&token, "no-such-patient");
    event["break_glass"] = grant("no-such-patient", "emergency department, unconscious");
    assert_eq!(call(&h, &event).await["error"]["kind"], "not_found");
}

#[tokio::test]
async fn every_envelope_gets_its_own_reply_shape() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let token = TokenSpec::clinician(DR_ALVAREZ).mint();
    let events = format!("{}/../../events/patient-summary", env!("CARGO_MANIFEST_DIR"));
    let read =
        |name: &str| -> Value { serde_json::from_slice(&std::fs::read(format!("{events}/{name}")).unwrap()).unwrap() };

    let mut openapi = read("bedrock-openapi.json");
    openapi["sessionAttributes"]["identity_token"] = json!(token);
    let reply = call(&h, &openapi).await;
    assert_eq!(reply["response"]["httpStatusCode"], 200, "{reply}");

    let mut function = read("bedrock-function.json");
    function["sessionAttributes"]["identity_token"] = json!(token);
    let reply = call(&h, &function).await;
    assert!(reply["response"]["functionResponse"].get("responseState").is_none(), "{reply}");

    let mut context = read("gateway.client-context.json");
    context["custom"]["bedrockAgentCorePropagatedHeaders"]["X-Identity-Token"] = json!(token);
    let mut inv = invocation(&read("gateway.json"));
    inv.client_context = Some(context);
    let reply = h.tool.call(inv).await;
    assert_eq!(reply["isError"], false, "{reply}");

    let audit_lines = h.tool.audit.lines();
    assert_eq!(verify_chain(&audit_lines), Ok(()));
    let envelopes: Vec<_> = h.audit().iter().map(|r| r["envelope"].as_str().unwrap().to_owned()).collect();
    assert_eq!(envelopes, ["bedrock_openapi", "bedrock_function", "agentcore_gateway"]);
}

#[tokio::test]
async fn break_glass_names_one_patient_and_expires() {
    let h = Harness::new(load_bundle(JOIE), Behaviour::default()).await;
    let token = TokenSpec::clinician(DR_ALVAREZ).mint();
    // A grant for another patient, or one that has run out, opens nothing.
    let mut other = direct(&token, JOIE_ID);
    other["break_glass"] = grant("another-patient", "unconscious patient in the emergency department");
    assert_eq!(call(&h, &other).await["error"]["kind"], "denied");
    let mut expired = direct(&token, JOIE_ID);
    expired["break_glass"] = json!({"patient_id": JOIE_ID, "reason": "unconscious patient in the emergency department",
        "expires_at": "2020-01-01T00:00:00Z"});
    assert_eq!(call(&h, &expired).await["error"]["kind"], "denied");
    // A plain reason (the old session-wide form) is refused as malformed.
    let mut plain = direct(&token, JOIE_ID);
    plain["break_glass"] = json!("unconscious patient in the emergency department");
    assert_eq!(call(&h, &plain).await["error"]["kind"], "invalid_input");
    let flagged: Vec<Value> = h.audit().into_iter().filter(|r| r["break_glass"] == true).collect();
    assert!(flagged.is_empty(), "{flagged:?}");
}

#[tokio::test]
async fn a_break_glass_reason_is_redacted_before_the_audit() {
    let h = Harness::new(load_bundle(JOIE), Behaviour::default()).await;
    let mut event = direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID);
    event["break_glass"] = grant(JOIE_ID, "Pt Jane Doe DOB 03/04/1950 unresponsive");
    assert_eq!(call(&h, &event).await["ok"], true);
    let line = h.tool.audit.lines().join("\n");
    assert!(!line.contains("Jane") && !line.contains("1950"), "{line}");
    assert_eq!(h.audit()[0]["break_glass"], true);
}

#[tokio::test]
async fn an_invalid_argument_call_is_audited_with_its_session_id() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let mut event = direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID);
    event["arguments"]["mrn"] = json!("38815207");
    assert_eq!(call(&h, &event).await["error"]["kind"], "invalid_input");
    let record = h.audit().last().unwrap().clone();
    assert_eq!(record["session_id"], SESSION);
    assert!(h.requests().is_empty());
}

#[tokio::test]
async fn summary_replies_carry_dates_as_iso_strings() {
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    let reply = call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(shared::dates::non_string_dates(&reply), Vec::<String>::new());
}

#[tokio::test]
async fn another_patients_resource_in_a_search_fails_closed_and_the_audit_record_says_why() {
    // A server that ignored `patient=` (or a proxy that mixed answers): a stranger's Condition comes back.
    let stranger = json!({"resourceType": "Condition", "id": "c-stranger", "subject": {"reference": "Patient/other"},
        "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"text": "Zqx stranger diagnosis"}});
    let h = Harness::new(load_bundle(JOIE), Behaviour { foreign: vec![stranger], ..gp_behaviour() }).await;
    let reply = call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await;
    assert_eq!(reply["error"]["kind"], "upstream_unavailable", "{reply}");
    assert!(!reply.to_string().contains("Zqx") && !reply.to_string().contains("c-stranger"), "{reply}");
    let record = &h.audit()[0];
    assert_eq!(record["outcome"], json!({"error": "upstream_unavailable"}));
    assert_eq!(
        record["upstream_faults"],
        json!([{"reason": "fhir_foreign_resource", "resource": "Condition/c-stranger"}])
    );
    assert!(!record.to_string().contains("Zqx"));
    // A call that met no fault has no such field.
    let h = Harness::new(load_bundle(JOIE), gp_behaviour()).await;
    assert_eq!(call(&h, &direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID)).await["ok"], true);
    assert!(h.audit()[0].get("upstream_faults").is_none());
}
