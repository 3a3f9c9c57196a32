//! HealthLake search semantics at the wire: results that do not belong to the patient fail closed,
//! relationships are read from what came back, `next` links survive JSON escapes and are re-encoded for
//! SigV4, the form body is signed, and faults end within the deadline with the right error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};
use shared::error::ToolError;
use shared::fhir::relationship::care_relationship;
use shared::fhir::{FhirEndpoint, FhirError, FhirId, FhirStore, HttpFhirStore, RetryPolicy, SearchQuery, Signing};
use shared::session::{SessionContext, SessionId};
use shared::testing::{FakeBehaviour, FhirFake, load_bundle};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const JOIE: &str = "Joie_Morissette_c47db034-eb1c-4100-9448-4d4b3cb6535c.json";
const JOIE_ID: &str = "fdc61ab3-9be9-412c-b470-dfa65cb5e6e6";
const DR: &str = "Practitioner/9b2564fd-1e47-420a-bded-387234070ef3";

fn session(deadline: Duration) -> SessionContext {
    SessionContext::new(SessionId::parse("sess-abc.123").unwrap(), "req-1", Instant::now() + deadline)
}

fn retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) }
}

fn store_at(base: &str, signing: Signing) -> HttpFhirStore {
    HttpFhirStore::new(reqwest::Client::new(), FhirEndpoint::parse(base).unwrap(), signing).with_retry(retry())
}

fn joie() -> FhirId {
    FhirId::parse(JOIE_ID).unwrap()
}

/// Another patient's Condition, as a server that ignored the patient parameter would return it.
fn stranger_condition() -> Value {
    json!({"resourceType": "Condition", "id": "c-stranger", "subject": {"reference": "Patient/someone-else"},
           "code": {"text": "Secret diagnosis of someone else"}})
}

#[test]
fn each_type_is_searched_by_the_parameter_healthlake_supports() {
    let p = joie();
    let cases = [
        ("Condition", "subject", format!("Patient/{JOIE_ID}")),
        ("Observation", "subject", format!("Patient/{JOIE_ID}")),
        ("Encounter", "subject", format!("Patient/{JOIE_ID}")),
        ("MedicationRequest", "subject", format!("Patient/{JOIE_ID}")),
        ("Procedure", "subject", format!("Patient/{JOIE_ID}")),
        ("AllergyIntolerance", "patient", format!("Patient/{JOIE_ID}")),
        ("Immunization", "patient", format!("Patient/{JOIE_ID}")),
        ("Patient", "_id", JOIE_ID.to_owned()),
    ];
    for (resource_type, parameter, value) in cases {
        let q = SearchQuery::new(resource_type).patient(&p);
        assert_eq!(q.params, vec![(parameter.to_owned(), value)], "{resource_type}");
        assert_eq!(q.patient.as_ref(), Some(&p));
    }
    // `_elements` always keeps the patient link, so the ownership check has something to check.
    let q = SearchQuery::new("Observation").patient(&p).elements(&["id", "code"]);
    assert!(q.wire_params().contains(&("_elements".to_owned(), "id,code,subject".to_owned())));
}

#[tokio::test]
async fn a_server_that_ignores_the_patient_parameter_fails_the_search_closed() {
    // The fake is lenient like HealthLake; a client still sending `patient=` on Condition gets everyone's.
    let mut resources = load_bundle(JOIE).unwrap();
    resources.push(stranger_condition());
    let fake = FhirFake::start(resources, FakeBehaviour::default()).await;
    let store = store_at(&fake.base_url(), Signing::None);
    let mut old_style = SearchQuery::new("Condition").patient(&joie());
    old_style.params = vec![("patient".into(), format!("Patient/{JOIE_ID}"))];
    let strict = store.search(&session(Duration::from_secs(5)), &old_style).await.unwrap_err();
    // Asked strictly, the fake (like HealthLake) refuses the unsupported parameter instead.
    assert_eq!(strict, FhirError::Rejected(400));
    assert_eq!(fake.requests()[0].prefer.as_deref(), Some("handling=strict"));

    // A server that is lenient anyway (a proxy dropped the header): the stranger's Condition comes back.
    let lenient = wiremock_lenient(stranger_condition()).await;
    let err = store_at(&format!("{}/fhir/", lenient.uri()), Signing::None)
        .search(&session(Duration::from_secs(5)), &SearchQuery::new("Condition").patient(&joie()))
        .await
        .unwrap_err();
    assert_eq!(err, FhirError::ForeignResource { resource: "Condition/c-stranger".into() });
    assert_eq!(err.audit_reason(), "fhir_foreign_resource");
    let shown = ToolError::from(err.clone());
    assert_eq!(shown, ToolError::UpstreamUnavailable);
    for text in [err.to_string(), shown.to_string()] {
        assert!(!text.contains("someone-else") && !text.contains("Secret") && !text.contains("c-stranger"), "{text}");
    }
}

/// A server that answers every search with Joie's Condition and `extra`, whatever was asked.
async fn wiremock_lenient(extra: Value) -> MockServer {
    let server = MockServer::start().await;
    let own =
        json!({"resourceType": "Condition", "id": "c-own", "subject": {"reference": format!("Patient/{JOIE_ID}")}});
    let body = json!({"resourceType": "Bundle", "type": "searchset",
                      "entry": [{"resource": own}, {"resource": extra}]});
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    server
}

#[tokio::test]
async fn a_foreign_resource_slipped_into_a_later_page_fails_the_whole_search() {
    let behaviour = FakeBehaviour { foreign: vec![stranger_condition()], page_size: Some(2), ..Default::default() };
    let fake = FhirFake::start(load_bundle(JOIE).unwrap(), behaviour).await;
    let store = store_at(&fake.base_url(), Signing::None);
    let err = store
        .search(&session(Duration::from_secs(5)), &SearchQuery::new("Condition").patient(&joie()))
        .await
        .unwrap_err();
    assert_eq!(err, FhirError::ForeignResource { resource: "Condition/c-stranger".into() });
    // It was found by paging: the first page was POST, then GETs on the `next` links.
    let requests = fake.requests();
    assert_eq!(requests[0].method, "POST");
    assert!(requests.len() > 1 && requests[1..].iter().all(|r| r.method == "GET"), "{requests:?}");
}

#[tokio::test]
async fn a_resource_of_another_type_or_a_patient_with_another_id_fails_closed() {
    let server = MockServer::start().await;
    let body = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "other"}}]});
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    let store = store_at(&format!("{}/fhir/", server.uri()), Signing::None);
    let patient = store.search(&session(Duration::from_secs(5)), &SearchQuery::new("Patient").patient(&joie())).await;
    assert_eq!(patient.unwrap_err(), FhirError::ForeignResource { resource: "Patient/other".into() });
    let condition =
        store.search(&session(Duration::from_secs(5)), &SearchQuery::new("Condition").patient(&joie())).await;
    assert_eq!(condition.unwrap_err(), FhirError::ForeignResource { resource: "Patient/other".into() });
}

#[tokio::test]
async fn all_of_a_large_patients_searches_pass_the_ownership_check_against_the_fake() {
    let behaviour = FakeBehaviour { page_size: Some(7), ..Default::default() };
    let fake = FhirFake::start(load_bundle(JOIE).unwrap(), behaviour).await;
    let store = store_at(&fake.base_url(), Signing::None);
    for t in ["Condition", "Observation", "Encounter", "MedicationRequest", "Procedure", "Immunization", "Patient"] {
        let set = store.search(&session(Duration::from_secs(10)), &SearchQuery::new(t).patient(&joie())).await;
        let set = set.unwrap_or_else(|e| panic!("{t}: {e:?}"));
        let expected = load_bundle(JOIE).unwrap().iter().filter(|r| r["resourceType"] == t).count();
        assert_eq!(set.len(), expected, "{t}: every page followed");
    }
}

// --- relationship ---------------------------------------------------------------------------------------

fn since() -> time::Date {
    time::macros::date!(2019 - 06 - 02)
}

#[tokio::test]
async fn a_server_that_ignores_the_practitioner_parameters_makes_no_false_relationship() {
    // Answers the relationship searches with the patient and one encounter, neither naming the caller.
    let server = MockServer::start().await;
    let patient = json!({"resourceType": "Patient", "id": JOIE_ID,
                         "generalPractitioner": [{"reference": "Practitioner/someone-else"}]});
    let encounter = json!({"resourceType": "Encounter", "id": "e1", "subject": {"reference": format!("Patient/{JOIE_ID}")},
                           "participant": [{"individual": {"reference": "Practitioner/someone-else"}}],
                           "period": {"start": "2020-07-01T00:00:00Z"}});
    for (p, r) in [("/fhir/Patient/_search", patient), ("/fhir/Encounter/_search", encounter)] {
        let body = json!({"resourceType": "Bundle", "entry": [{"resource": r}]});
        Mock::given(path(p)).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    }
    let store = store_at(&format!("{}/fhir/", server.uri()), Signing::None);
    let dr = FhirId::parse(DR.trim_start_matches("Practitioner/")).unwrap();
    let found = care_relationship(&store, &session(Duration::from_secs(5)), &joie(), Some(&dr), since()).await.unwrap();
    assert!(!found.established, "{found:?}");
    assert!(found.reads.is_empty());
}

#[tokio::test]
async fn the_relationship_is_read_from_the_returned_resources() {
    let dr = FhirId::parse(DR.trim_start_matches("Practitioner/")).unwrap();
    for (behaviour, expected) in [
        (
            FakeBehaviour { general_practitioner: Some(DR.into()), ..Default::default() },
            vec![format!("Patient/{JOIE_ID}")],
        ),
        (FakeBehaviour { encounter_participant: Some(DR.into()), ..Default::default() }, vec![]),
        (FakeBehaviour::default(), vec![]),
    ] {
        let by_encounter = behaviour.encounter_participant.is_some();
        let fake = FhirFake::start(load_bundle(JOIE).unwrap(), behaviour).await;
        let store = store_at(&fake.base_url(), Signing::None);
        let found =
            care_relationship(&store, &session(Duration::from_secs(5)), &joie(), Some(&dr), since()).await.unwrap();
        if by_encounter {
            assert!(found.established && found.reads.iter().all(|r| r.starts_with("Encounter/")), "{found:?}");
        } else {
            assert_eq!(found.reads, expected);
            assert_eq!(found.established, !expected.is_empty());
        }
        // The link elements were asked for, so they could be checked; a GP link found makes the encounter
        // search unnecessary, and it is not sent.
        let sent: Vec<String> = fake.requests().iter().map(|r| r.params.clone()).collect();
        assert!(sent.iter().any(|p| p.contains("generalPractitioner")), "{sent:?}");
        let encounter_sent = sent.iter().any(|p| p.contains("participant") && p.contains("period"));
        assert_eq!(encounter_sent, !found.reads.iter().any(|r| r.starts_with("Patient/")), "{sent:?}");
    }
}

#[tokio::test]
async fn an_encounter_before_the_look_back_window_does_not_count() {
    let server = MockServer::start().await;
    let encounter = json!({"resourceType": "Encounter", "id": "e-old", "subject": {"reference": format!("Patient/{JOIE_ID}")},
                           "participant": [{"individual": {"reference": DR}}],
                           "period": {"start": "2010-01-01T00:00:00Z", "end": "2010-01-01T01:00:00Z"}});
    Mock::given(path("/fhir/Encounter/_search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"resourceType": "Bundle", "entry": [{"resource": encounter}]})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/fhir/Patient/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle"})))
        .mount(&server)
        .await;
    let store = store_at(&format!("{}/fhir/", server.uri()), Signing::None);
    let dr = FhirId::parse(DR.trim_start_matches("Practitioner/")).unwrap();
    let found = care_relationship(&store, &session(Duration::from_secs(5)), &joie(), Some(&dr), since()).await.unwrap();
    assert!(!found.established);
}

// --- paging and signing ---------------------------------------------------------------------------------

#[tokio::test]
async fn next_links_with_json_escapes_and_plus_signs_are_followed_and_signed_as_sent() {
    let server = MockServer::start().await;
    let own = json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": format!("Patient/{JOIE_ID}")}});
    // `\/` escapes in the JSON, and a token with a literal `+`, `/` and `=` in the URL.
    let first = format!(
        r#"{{"resourceType":"Bundle","entry":[{{"resource":{own}}}],"link":[{{"relation":"next","url":"{}\/fhir\/Condition?page=ab+c\/d=="}}]}}"#,
        server.uri().replace('/', "\\/")
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(first.into_bytes(), "application/fhir+json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::query_param("page", "ab+c/d=="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle", "entry": []})))
        .expect(1)
        .mount(&server)
        .await;
    let signing = Signing::SigV4 { region: "us-east-1".into(), credentials: credentials() };
    let set = store_at(&format!("{}/fhir/", server.uri()), signing)
        .search(&session(Duration::from_secs(5)), &SearchQuery::new("Condition").patient(&joie()))
        .await
        .unwrap();
    assert_eq!(set.references(), ["Condition/c1"]);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[1].url.query(), Some("page=ab%2Bc%2Fd%3D%3D"), "re-encoded to SigV4's canonical form");
    for request in &requests {
        assert_signature_matches(request);
    }
}

fn credentials() -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token".into()),
        None,
        "test",
    )
}

/// Re-signs what the server received (method, URL as sent, signed headers, body) at the request's own
/// `x-amz-date`, as HealthLake would verify it, and compares the signature.
fn assert_signature_matches(request: &Request) {
    let auth = request.headers.get("authorization").unwrap().to_str().unwrap();
    let signed: Vec<&str> =
        auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap().split(';').collect();
    let signature = auth.split("Signature=").nth(1).unwrap();
    let date = request.headers.get("x-amz-date").unwrap().to_str().unwrap();
    let at = time::PrimitiveDateTime::parse(
        date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .unwrap()
    .assume_utc();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix_timestamp()).unwrap());
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|h| !h.starts_with("x-amz-date") && !h.starts_with("x-amz-security-token"))
        .map(|h| (*h, request.headers.get(*h).unwrap().to_str().unwrap()))
        .collect();
    let identity = credentials().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("healthlake")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = request.url.as_str();
    let signable =
        SignableRequest::new(request.method.as_str(), uri, headers.into_iter(), SignableBody::Bytes(&request.body))
            .unwrap();
    let (_, expected) = sign(signable, &params).unwrap().into_parts();
    assert_eq!(expected, signature, "signature over {} {uri}", request.method);
    // And a changed body would not verify: the form body is covered.
    let tampered = SignableRequest::new(
        request.method.as_str(),
        uri,
        std::iter::empty(),
        SignableBody::Bytes(b"subject=Patient%2Fx"),
    )
    .unwrap();
    let (_, other) = sign(tampered, &params).unwrap().into_parts();
    assert_ne!(other, signature);
}

#[tokio::test]
async fn the_form_body_of_a_signed_search_is_covered_by_the_signature() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle"})))
        .mount(&server)
        .await;
    let signing = Signing::SigV4 { region: "us-east-1".into(), credentials: credentials() };
    store_at(&format!("{}/fhir/", server.uri()), signing)
        .search(&session(Duration::from_secs(5)), &SearchQuery::new("Condition").patient(&joie()).count(5))
        .await
        .unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(request.body, format!("subject=Patient%2F{JOIE_ID}&_count=5").into_bytes());
    let auth = request.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(auth.contains("content-type") && auth.contains("prefer"), "{auth}");
    assert_signature_matches(request);
}

// --- faults end within the deadline with the right error -------------------------------------------------

async fn fault(behaviour: FakeBehaviour, deadline: Duration) -> (Result<shared::fhir::SearchSet, FhirError>, Duration) {
    let fake = FhirFake::start(load_bundle(JOIE).unwrap(), behaviour).await;
    let store = store_at(&fake.base_url(), Signing::None);
    let started = Instant::now();
    let result = store.search(&session(deadline), &SearchQuery::new("Condition").patient(&joie())).await;
    (result, started.elapsed())
}

#[tokio::test]
async fn throttling_server_errors_slowness_and_truncation_end_in_time_with_the_right_error() {
    let deadline = Duration::from_millis(1500);
    let margin = Duration::from_millis(300);
    let failing =
        |status: u16| FakeBehaviour { failing: [("Condition".to_owned(), status)].into(), ..Default::default() };
    let cases = [
        (
            "429 with a long Retry-After",
            FakeBehaviour { retry_after: Some(30), ..failing(429) },
            FhirError::Unavailable,
        ),
        ("503", failing(503), FhirError::Unavailable),
        (
            "slower than the deadline",
            FakeBehaviour { delay: Some(Duration::from_secs(5)), ..Default::default() },
            FhirError::Unavailable,
        ),
        (
            "truncated JSON",
            FakeBehaviour { truncated: vec!["Condition".into()], ..Default::default() },
            FhirError::Decode,
        ),
    ];
    for (name, behaviour, expected) in cases {
        let (result, took) = fault(behaviour, deadline).await;
        assert_eq!(result.unwrap_err(), expected, "{name}");
        assert!(took < deadline + margin, "{name}: took {took:?}");
    }
}
