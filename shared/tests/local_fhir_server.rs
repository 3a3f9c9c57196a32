//! Against the local FHIR server (`local/fhir-server.mjs`), lenient like HealthLake, with its fault mode.
//! `#[ignore]`d: run with the server up and `FHIR_URL` set, e.g.
//! `FHIR_PORT=8203 node local/fhir-server.mjs & FHIR_URL=http://127.0.0.1:8203 cargo test -p shared --test
//! local_fhir_server -- --ignored`. Fault rules are scoped to each test's session id, so tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::error::ToolError;
use shared::fhir::relationship::care_relationship;
use shared::fhir::{FhirEndpoint, FhirError, FhirId, FhirStore, HttpFhirStore, RetryPolicy, SearchQuery, Signing};
use shared::session::{SessionContext, SessionId};

const JOIE_ID: &str = "fdc61ab3-9be9-412c-b470-dfa65cb5e6e6";
/// Joie's generalPractitioner in the seeded data (see local/README.md, demo users).
const DR_ALVAREZ: &str = "9b2564fd-1e47-420a-bded-387234070ef3";
const FLETCHER_ID: &str = "c5ed5d78-5b3f-4a75-bdfb-5f318b068a20";

fn url() -> String {
    std::env::var("FHIR_URL").expect("FHIR_URL, e.g. http://127.0.0.1:8203").trim_end_matches('/').to_owned()
}

fn store() -> HttpFhirStore {
    let endpoint = FhirEndpoint::parse(&format!("{}/fhir/", url())).unwrap();
    HttpFhirStore::new(reqwest::Client::new(), endpoint, Signing::None).with_retry(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    })
}

fn session(id: &str, deadline: Duration) -> SessionContext {
    SessionContext::new(SessionId::parse(id).unwrap(), "req-local", Instant::now() + deadline)
}

async fn faults(session_id: &str, rules: Value) {
    let mut rules = rules;
    for rule in rules.as_array_mut().unwrap() {
        rule["session_id"] = json!(session_id);
    }
    let answer =
        reqwest::Client::new().post(format!("{}/__faults", url())).json(&json!({"rules": rules})).send().await.unwrap();
    assert!(answer.status().is_success());
}

fn id(raw: &str) -> FhirId {
    FhirId::parse(raw).unwrap()
}

#[tokio::test]
#[ignore = "needs the local FHIR server (FHIR_URL)"]
async fn the_summary_searches_pass_the_ownership_check_on_the_largest_patient() {
    let s = session("local-owner-ok-0001", Duration::from_secs(20));
    for t in [
        "Patient",
        "Condition",
        "Observation",
        "Encounter",
        "MedicationRequest",
        "Procedure",
        "Immunization",
        "AllergyIntolerance",
    ] {
        let q = SearchQuery::new(t).patient(&id(FLETCHER_ID)).count(100).pages(3);
        store().search(&s, &q).await.unwrap_or_else(|e| panic!("{t}: {e:?}"));
    }
}

#[tokio::test]
#[ignore = "needs the local FHIR server (FHIR_URL)"]
async fn a_lenient_server_ignoring_patient_yields_a_typed_upstream_error_with_no_foreign_fact() {
    let sid = "local-ignores-patient-0001";
    // The server drops `Prefer` (lenient, HealthLake's default) and so ignores `patient` on Condition.
    faults(sid, json!([{"kind": "ignore-prefer"}])).await;
    let mut old_style = SearchQuery::new("Condition").patient(&id(JOIE_ID)).count(50);
    old_style.params.retain(|(k, _)| k != "subject");
    old_style.params.push(("patient".into(), format!("Patient/{JOIE_ID}")));
    let err = store().search(&session(sid, Duration::from_secs(10)), &old_style).await.unwrap_err();
    let FhirError::ForeignResource { resource } = &err else { panic!("{err:?}") };
    assert!(resource.starts_with("Condition/"));
    assert_eq!(err.audit_reason(), "fhir_foreign_resource");
    assert_eq!(ToolError::from(err.clone()), ToolError::UpstreamUnavailable);
    assert!(!err.to_string().contains(resource.as_str()));
}

#[tokio::test]
#[ignore = "needs the local FHIR server (FHIR_URL)"]
async fn a_foreign_resource_slipped_into_a_result_fails_closed() {
    let sid = "local-foreign-0001";
    faults(sid, json!([{"kind": "foreign", "type": "Observation"}])).await;
    let q = SearchQuery::new("Observation").patient(&id(JOIE_ID)).param("category", "vital-signs").count(20).pages(1);
    let err = store().search(&session(sid, Duration::from_secs(10)), &q).await.unwrap_err();
    assert!(matches!(err, FhirError::ForeignResource { .. }), "{err:?}");
}

#[tokio::test]
#[ignore = "needs the local FHIR server (FHIR_URL)"]
async fn a_server_ignoring_the_practitioner_parameters_yields_no_false_relationship() {
    let sid = "local-ignores-practitioner-0001";
    faults(sid, json!([{"kind": "ignore-params", "params": ["general-practitioner", "participant"]}])).await;
    let someone = id("00000000-0000-0000-0000-000000000000");
    let since = time::macros::date!(2000 - 01 - 01);
    let s = session(sid, Duration::from_secs(10));
    let found = care_relationship(&store(), &s, &id(JOIE_ID), Some(&someone), since).await.unwrap();
    assert!(!found.established, "{found:?}");
    // The real GP is still found through the same lenient server.
    let found = care_relationship(&store(), &s, &id(JOIE_ID), Some(&id(DR_ALVAREZ)), since).await.unwrap();
    assert!(found.established && found.reads.contains(&format!("Patient/{JOIE_ID}")), "{found:?}");
}

#[tokio::test]
#[ignore = "needs the local FHIR server (FHIR_URL)"]
async fn faults_end_within_the_deadline_with_the_right_error() {
    let deadline = Duration::from_secs(2);
    let cases = [
        ("local-fault-429-0001", json!([{"kind": "status", "status": 429, "retry_after": 30}]), FhirError::Unavailable),
        ("local-fault-503-0001", json!([{"kind": "status", "status": 503}]), FhirError::Unavailable),
        ("local-fault-slow-0001", json!([{"kind": "slow", "delay_ms": 5000}]), FhirError::Unavailable),
        ("local-fault-trunc-0001", json!([{"kind": "truncate"}]), FhirError::Decode),
    ];
    for (sid, rules, expected) in cases {
        faults(sid, rules).await;
        let started = Instant::now();
        let q = SearchQuery::new("Condition").patient(&id(JOIE_ID));
        let err = store().search(&session(sid, deadline), &q).await.unwrap_err();
        assert_eq!(err, expected, "{sid}");
        assert!(started.elapsed() < deadline + Duration::from_millis(500), "{sid}: {:?}", started.elapsed());
    }
}

#[tokio::test]
#[ignore = "needs the local FHIR server (FHIR_URL)"]
async fn a_retried_create_with_the_same_key_makes_one_binary() {
    let sid = "local-idempotent-0001";
    // A retry after a lost answer repeats the key: the server must answer with the first create's resource.
    let key = "123e4567-e89b-42d3-a456-426614174000";
    let body = json!({"resourceType": "Binary", "contentType": "text/plain", "data": "AAEC"});
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(format!("{}/fhir/Binary", url()))
            .header("content-type", "application/fhir+json")
            .header("x-session-id", sid)
            .header("x-amz-fhir-idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = post().await.unwrap();
    let first_status = first.status().as_u16();
    let first_id = first.json::<Value>().await.unwrap()["id"].clone();
    let again = post().await.unwrap();
    assert!(first_status == 201 || first_status == 409, "{first_status}");
    assert_eq!(again.status().as_u16(), 409);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first_id);
    // And the client turns that 409 into the original resource.
    let s = session(sid, Duration::from_secs(5));
    let written = store().create(&s, "Binary", &body).await.unwrap();
    assert!(!written.id.as_str().is_empty());
}
