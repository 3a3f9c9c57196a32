//! End to end: the patient-summary function under cargo-lambda's emulator, against the local FHIR server
//! (Medplum, seeded from the shared Synthea bundles) and the local JWT issuer.
//!
//! These need the local stack, so they are `#[ignore]`d in a plain `cargo test`; the test command
//! (`local/stack.sh test`) starts the stack and runs them with `--ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::collections::{BTreeMap, BTreeSet};

use e2e::{client, repo, token};
use serde_json::{Value, json};

const JOIE: &str = "fdc61ab3-9be9-412c-b470-dfa65cb5e6e6";
const JOIE_FILE: &str = "Joie_Morissette_c47db034-eb1c-4100-9448-4d4b3cb6535c.json";

fn lambda_url() -> String {
    let port = std::env::var("LAMBDA_PORT").unwrap_or_else(|_| "9000".into());
    format!("http://127.0.0.1:{port}/2015-03-31/functions/patient-summary/invocations")
}

fn fhir_url() -> String {
    let port = std::env::var("FHIR_PORT").unwrap_or_else(|_| "8103".into());
    format!("http://127.0.0.1:{port}")
}

fn session(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("e2e-{name}-{nanos}")
}

fn invoke(event: &Value, client_context: Option<&Value>) -> Value {
    let mut request = client().post(lambda_url()).json(event);
    if let Some(context) = client_context {
        // What `cargo lambda invoke --client-context-*` sends; the emulator hands it to the function
        // base64-encoded, as the Invoke API carries it.
        request = request.header("lambda-runtime-client-context", context.to_string());
    }
    let response = request.send().unwrap();
    assert!(response.status().is_success(), "emulator answered {}", response.status());
    response.json().unwrap()
}

fn summary_event(session_id: &str, token: &str, patient: &str) -> Value {
    json!({"tool": "patient_summary", "session_id": session_id, "identity_token": token, "arguments": {"patient_id": patient}})
}

/// FHIR requests the server received for one session: (path, query).
fn fhir_requests(session_id: &str) -> Vec<(String, String)> {
    let journal: Value = client().get(format!("{}/__journal", fhir_url())).send().unwrap().json().unwrap();
    journal["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["session_id"] == session_id)
        .map(|r| {
            // Searches are POST `[type]/_search` with the parameters in a form body (HealthLake: "Searching FHIR
            // resources with POST"); the journal keeps the body beside the query.
            let path = r["path"].as_str().unwrap_or_default();
            let path = path.strip_suffix("/_search").unwrap_or(path).to_owned();
            let query =
                r["query"].as_str().filter(|q| !q.is_empty()).or_else(|| r["body"].as_str()).unwrap_or_default();
            (path, query.to_owned())
        })
        .collect()
}

fn audit_records(session_id: &str) -> Vec<Value> {
    let log = std::fs::read_to_string(format!("{}/.local-stack/logs/lambda.log", repo())).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.find('{').and_then(|i| serde_json::from_str::<Value>(&l[i..]).ok()))
        .filter(|v| v["record_type"] == "tool_audit" && v["session_id"] == session_id)
        // The final record of each call (its intent record, written at the first permit, is left out).
        .filter(|v| v["record_kind"] == "final")
        .collect()
}

/// The bundle's resources, read without fhir-sdk or the tool's code.
fn bundle_resources() -> Vec<Value> {
    let path = format!("{}/../shared/fhir/synthea/{JOIE_FILE}", repo());
    let bundle: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect()
}

fn first_code(concept: &Value) -> String {
    concept["coding"][0]["code"].as_str().unwrap_or_default().to_owned()
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn clinician_gets_a_summary_that_matches_the_bundle() {
    let sid = session("allowed");
    let reply = invoke(&summary_event(&sid, &token("dr-alvarez", &[]), JOIE), None);
    assert_eq!(reply["ok"], true, "{reply}");
    let summary = &reply["result"]["summary"];
    let resources = bundle_resources();

    // Active problems: the same codes as the bundle's active Conditions.
    let expected: BTreeSet<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Condition" && first_code(&r["clinicalStatus"]) == "active")
        .map(|r| first_code(&r["code"]))
        .collect();
    let got: BTreeSet<String> = summary["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"]["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected, "active problems");

    // Active medications.
    let expected: BTreeSet<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == "MedicationRequest" && r["status"] == "active")
        .map(|r| first_code(&r["medicationCodeableConcept"]))
        .collect();
    let got: BTreeSet<String> = summary["medications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["code"]["code"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(got, expected, "active medications");

    // Latest blood pressure: the newest BP panel observation, by effective date.
    let bp = resources
        .iter()
        .filter(|r| r["resourceType"] == "Observation" && first_code(&r["code"]) == "55284-4")
        .max_by_key(|r| r["effectiveDateTime"].as_str().unwrap_or_default().to_owned())
        .unwrap();
    assert_eq!(summary["vitals"]["blood_pressure"]["source"], format!("Observation/{}", bp["id"].as_str().unwrap()));

    // Latest result per lab analyte that the bundle has.
    let mut latest: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in resources.iter().filter(|r| r["resourceType"] == "Observation" && r["valueQuantity"]["value"].is_number())
    {
        let code = first_code(&r["code"]);
        let date = r["effectiveDateTime"].as_str().unwrap_or_default().to_owned();
        if latest.get(&code).is_none_or(|(d, _)| *d < date) {
            latest.insert(code, (date, format!("Observation/{}", r["id"].as_str().unwrap())));
        }
    }
    for lab in summary["labs"].as_array().unwrap() {
        let loinc = lab["loinc"].as_str().unwrap().to_owned();
        if let Some((_, source)) = latest.get(&loinc) {
            assert_eq!(lab["latest"]["source"], *source, "latest {loinc}");
        }
    }
    assert!(!summary["labs"].as_array().unwrap().is_empty());

    // No names, phone numbers or identifiers in what the clinician gets.
    let patient = resources.iter().find(|r| r["resourceType"] == "Patient").unwrap();
    let family = patient["name"][0]["family"].as_str().unwrap();
    let phone = patient["telecom"][0]["value"].as_str().unwrap();
    assert!(!reply.to_string().contains(family) && !reply.to_string().contains(phone));

    // Every FHIR request carried the session id; the audit record is there and names the reads.
    // At least the GP-link search and the nine chart searches.
    let requests = fhir_requests(&sid);
    assert!(requests.len() >= 10, "{requests:?}");
    let audit = audit_records(&sid);
    assert_eq!(audit.len(), 1, "one audit record for the call");
    assert_eq!(audit[0]["outcome"], "ok");
    assert_eq!(audit[0]["decision"]["policies"], json!(["summary.clinician-in-care-relationship"]));

    // The call's spans (OTLP/JSON lines in the stack's spans file) are in the trace the audit record names,
    // each stamped with the session id; a search is a span. They are written just after the reply.
    let trace_id = audit[0]["trace_id"].as_str().unwrap().to_owned();
    let spans = spans_of(&sid, 3);
    assert!(spans.iter().all(|s| s["traceId"] == trace_id.as_str()), "{spans:?}");
    assert!(spans.iter().filter(|s| s["name"] == "fhir_search").count() >= 10, "{} spans", spans.len());
}

/// The spans the stack exported for `session_id`, waiting up to `seconds` for them to appear.
fn spans_of(session_id: &str, seconds: u64) -> Vec<Value> {
    let path = format!("{}/.local-stack/logs/spans.jsonl", repo());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let spans: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|r| r["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default())
            .filter(|s| {
                s["attributes"].as_array().is_some_and(|a| {
                    a.iter().any(|kv| kv["key"] == "session.id" && kv["value"]["stringValue"] == session_id)
                })
            })
            .collect();
        if !spans.is_empty() || std::time::Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn rcm_coder_is_denied_with_no_fhir_request() {
    let sid = session("coder");
    let reply = invoke(&summary_event(&sid, &token("coder-lee", &[]), JOIE), None);
    assert_eq!(reply["error"]["kind"], "denied", "{reply}");
    assert!(fhir_requests(&sid).is_empty());
    assert_eq!(audit_records(&sid)[0]["outcome"]["error"], "denied");
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn clinician_outside_the_care_team_reads_only_relationship_facts() {
    let sid = session("other-clinician");
    let reply = invoke(&summary_event(&sid, &token("dr-okafor", &[]), JOIE), None);
    assert_eq!(reply["error"]["kind"], "denied", "{reply}");
    let requests = fhir_requests(&sid);
    assert_eq!(requests.len(), 2, "{requests:?}");
    for (path, query) in &requests {
        assert!(path.ends_with("/Patient") || path.ends_with("/Encounter"), "{path}");
        assert!(query.contains("_elements=id"), "{query}");
    }
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn forged_and_expired_tokens_are_rejected_with_no_fhir_request() {
    for flag in ["--forged", "--expired"] {
        let sid = session(flag.trim_start_matches('-'));
        let reply = invoke(&summary_event(&sid, &token("dr-alvarez", &[flag]), JOIE), None);
        assert_eq!(reply["error"]["kind"], "unauthenticated", "{flag}: {reply}");
        assert!(fhir_requests(&sid).is_empty());
    }
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn gateway_invocation_with_nested_propagated_headers_is_answered() {
    let sid = session("gateway");
    let context = json!({"custom": {
        "bedrockAgentCoreToolName": "clinical-tools___patient_summary",
        "bedrockAgentCorePropagatedHeaders": {
            "X-Session-Id": sid,
            "X-Identity-Token": token("dr-alvarez", &[])
        }
    }});
    let reply = invoke(&json!({"patient_id": JOIE}), Some(&context));
    assert_eq!(reply["isError"], false, "{reply}");
    assert!(!fhir_requests(&sid).is_empty());
    // And the function is still serving afterwards.
    let again = invoke(&summary_event(&session("after-gateway"), &token("coder-lee", &[]), JOIE), None);
    assert_eq!(again["error"]["kind"], "denied");
}

#[test]
#[ignore = "needs the local stack: local/stack.sh test"]
fn bedrock_agent_events_from_the_fixtures_are_answered() {
    for (file, check) in [("bedrock-openapi.json", "httpStatusCode"), ("bedrock-function.json", "functionResponse")] {
        let path = format!("{}/events/patient-summary/{file}", repo());
        let mut event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        event["sessionAttributes"]["identity_token"] = json!(token("dr-alvarez", &[]));
        event["sessionId"] = json!(session("bedrock"));
        let reply = invoke(&event, None);
        assert!(reply["response"].get(check).is_some(), "{file}: {reply}");
        if check == "httpStatusCode" {
            assert_eq!(reply["response"]["httpStatusCode"], 200, "{reply}");
        } else {
            assert!(reply["response"]["functionResponse"].get("responseState").is_none(), "{reply}");
        }
    }
}
