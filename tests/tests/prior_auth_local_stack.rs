//! End to end: a prior-auth draft made and finalized through the emulator, stored as a FHIR `Binary` in the
//! local FHIR server (`DRAFT_STORE=fhir`, the default), so nothing depends on one instance's `/tmp`.
//!
//! Needs the local stack, so `#[ignore]`d in a plain `cargo test`; run with `local/stack.sh test` (or
//! `cargo test -p e2e --test prior_auth_local_stack -- --ignored` with the stack up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use e2e::{client, repo};
use serde_json::{Value, json};

fn token(user: &str) -> String {
    e2e::token(user, &[])
}

fn lambda_url() -> String {
    let port = std::env::var("LAMBDA_PORT").unwrap_or_else(|_| "9000".into());
    format!("http://127.0.0.1:{port}/2015-03-31/functions/prior-auth-draft/invocations")
}

fn fhir_base() -> String {
    let port = std::env::var("FHIR_PORT").unwrap_or_else(|_| "8103".into());
    format!("http://127.0.0.1:{port}/fhir")
}

fn event(name: &str) -> Value {
    let path = format!("{}/events/prior-auth-draft/{name}", repo());
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn invoke(event: &Value) -> Value {
    let response = client().post(lambda_url()).json(event).send().unwrap();
    assert!(response.status().is_success(), "emulator answered {}", response.status());
    response.json().unwrap()
}

fn tag(binary: &Value, system: &str) -> String {
    binary["meta"]["tag"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["system"] == system)
        .and_then(|t| t["code"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn a_draft_is_a_sealed_binary_and_finalizes_once() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let session_id = format!("e2e-prior-auth-{nanos}");
    let token = token("dr-okafor");

    let mut draft = event("direct.json");
    draft["session_id"] = json!(session_id);
    draft["identity_token"] = json!(token);
    let reply = invoke(&draft);
    assert_eq!(reply["ok"], true, "{reply}");
    let draft_id = reply["result"]["draft_id"].as_str().unwrap().to_owned();
    let patient = draft["arguments"]["patient_id"].as_str().unwrap();

    // The draft is in the FHIR store: the patient only as securityContext, status in a tag, content sealed.
    let binary: Value = client().get(format!("{}/Binary/{draft_id}", fhir_base())).send().unwrap().json().unwrap();
    assert_eq!(binary["securityContext"]["reference"], format!("Patient/{patient}"));
    assert_eq!(tag(&binary, "urn:agent-tools:prior-auth-draft:status"), "draft");
    let stored = binary.to_string();
    assert!(!stored.contains("27447") && !stored.contains("Claim"), "clear clinical content in the Binary");

    let content_hash = reply["result"]["content_hash"].as_str().unwrap().to_owned();

    // The model cannot sign: an attestation written as an argument is refused, and nothing changes.
    let mut injected = event("direct-finalize.json");
    injected["session_id"] = json!(session_id);
    injected["identity_token"] = json!(token);
    injected["arguments"] =
        json!({"draft_id": draft_id, "attestation": "I attest.", "override_reason": "Proceed anyway"});
    injected.as_object_mut().unwrap().remove("clinician_signoff");
    let refused = invoke(&injected);
    assert_eq!(refused["error"]["kind"], "invalid_input", "{refused}");

    // The application's sign-off, bound to the draft and its content hash.
    let signed_at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut finalize = event("direct-finalize.json");
    finalize["session_id"] = json!(session_id);
    finalize["identity_token"] = json!(token);
    finalize["arguments"]["draft_id"] = json!(draft_id);
    finalize["clinician_signoff"]["draft_id"] = json!(draft_id);
    finalize["clinician_signoff"]["content_hash"] = json!(content_hash);
    finalize["clinician_signoff"]["signed_at"] = json!(signed_at);
    let reply = invoke(&finalize);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["status"], "final");
    assert_eq!(reply["result"]["attestation"]["content_hash"], content_hash);
    let binary: Value = client().get(format!("{}/Binary/{draft_id}", fhir_base())).send().unwrap().json().unwrap();
    assert_eq!(tag(&binary, "urn:agent-tools:prior-auth-draft:status"), "final");

    // A second finalize is refused: the stored status is final.
    let again = invoke(&finalize);
    assert_eq!(again["ok"], false, "{again}");

    // Whoever can update the Binary sets it back to `draft` to attest it again: the status is bound to the
    // seal, so the draft no longer opens and the call fails closed.
    let mut edited = binary.clone();
    for t in edited["meta"]["tag"].as_array_mut().unwrap() {
        if t["system"] == "urn:agent-tools:prior-auth-draft:status" {
            t["code"] = json!("draft");
        }
    }
    let put = client().put(format!("{}/Binary/{draft_id}", fhir_base())).json(&edited).send().unwrap();
    assert!(put.status().is_success(), "the FHIR server took the edit: {}", put.status());
    let reply = invoke(&finalize);
    assert_eq!(reply["error"]["kind"], "internal", "{reply}");
    let binary: Value = client().get(format!("{}/Binary/{draft_id}", fhir_base())).send().unwrap().json().unwrap();
    assert_eq!(tag(&binary, "urn:agent-tools:prior-auth-draft:status"), "draft", "the tool wrote nothing");
}
