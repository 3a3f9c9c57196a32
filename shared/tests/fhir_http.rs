//! The FHIR client at the wire: headers, paging, retries, errors and SigV4, against wiremock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use serde_json::json;
use shared::fhir::{
    CredentialSource, FhirEndpoint, FhirError, FhirId, FhirStore, HttpFhirStore, RetryPolicy, SearchQuery, Signing,
};
use shared::session::{SessionContext, SessionId};
use wiremock::matchers::{body_string, body_string_contains, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn session(deadline: Duration) -> SessionContext {
    SessionContext::new(SessionId::parse("sess-abc.123").unwrap(), "req-1", Instant::now() + deadline)
}

fn store(server: &MockServer, signing: Signing) -> HttpFhirStore {
    let endpoint = FhirEndpoint::parse(&format!("{}/fhir", server.uri())).unwrap();
    HttpFhirStore::new(reqwest::Client::new(), endpoint, signing).with_retry(RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    })
}

fn bundle(ids: &[&str], next: Option<String>) -> serde_json::Value {
    let entry: Vec<_> = ids
        .iter()
        .map(|id| json!({"resource": {"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/p1"}}}))
        .collect();
    let link: Vec<_> = next.into_iter().map(|url| json!({"relation": "next", "url": url})).collect();
    json!({"resourceType": "Bundle", "type": "searchset", "entry": entry, "link": link})
}

fn query() -> SearchQuery {
    SearchQuery::new("Condition").patient(&FhirId::parse("p1").unwrap()).count(2)
}

#[tokio::test]
async fn every_request_carries_session_and_request_ids_and_params() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fhir/Condition/_search"))
        .and(body_string("subject=Patient%2Fp1&_count=2"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header("prefer", "handling=strict"))
        .and(header("x-session-id", "sess-abc.123"))
        .and(header("x-request-id", "req-1"))
        .and(header("accept", "application/fhir+json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&["c1"], None)))
        .expect(1)
        .mount(&server)
        .await;
    let set = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await.unwrap();
    assert_eq!(set.references(), vec!["Condition/c1"]);
    // The patient id travels in the body only, never in the URL.
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    assert!(!requests[0].url.as_str().contains("p1"), "{}", requests[0].url);
}

#[tokio::test]
async fn follows_next_links_and_stops_at_the_page_limit() {
    let server = MockServer::start().await;
    let page2 = format!("{}/fhir/Condition?page=2", server.uri());
    let page3 = format!("{}/fhir/Condition?page=3", server.uri());
    Mock::given(method("GET"))
        .and(query_param("page", "2"))
        .and(header("prefer", "handling=strict"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&["c3", "c4"], Some(page3.clone()))))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("page", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&["c5"], None)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("_count=2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&["c1", "c2"], Some(page2))))
        .mount(&server)
        .await;
    let store = store(&server, Signing::None);
    let all = store.search(&session(Duration::from_secs(5)), &query()).await.unwrap();
    assert_eq!(all.references(), ["Condition/c1", "Condition/c2", "Condition/c3", "Condition/c4", "Condition/c5"]);
    let first_two_pages = store.search(&session(Duration::from_secs(5)), &query().pages(2)).await.unwrap();
    assert_eq!(first_two_pages.len(), 4);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_never_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(bundle(&["c1"], Some("https://elsewhere.example/fhir/Condition?page=2".into()))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let result = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await;
    assert_eq!(result.err(), Some(FhirError::Decode));
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(404)).expect(1).mount(&server).await;
    let result = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await;
    assert_eq!(result.err(), Some(FhirError::NotFound));
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("{\"issue\":\"secret patient detail\"}"))
        .expect(1)
        .mount(&server)
        .await;
    let result = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await;
    let err = result.err().unwrap();
    assert_eq!(err, FhirError::Rejected(400));
    // The upstream body is never carried into the error.
    assert!(!format!("{err} {err:?}").contains("secret"));
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&["c1"], None)))
        .mount(&server)
        .await;
    let started = Instant::now();
    let set = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await.unwrap();
    assert_eq!(set.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "retry-after was not honoured");
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).expect(4).mount(&server).await;
    let result = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await;
    assert_eq!(result.err(), Some(FhirError::Unavailable));
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let server = MockServer::start().await;
    // A Retry-After longer than the time left: give up at once instead of sleeping past the deadline.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let result = store(&server, Signing::None).search(&session(Duration::from_secs(2)), &query()).await;
    assert_eq!(result.err(), Some(FhirError::Unavailable));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn no_request_is_made_once_the_deadline_has_passed() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    let result = store(&server, Signing::None).search(&session(Duration::ZERO), &query()).await;
    assert_eq!(result.err(), Some(FhirError::Unavailable));
}

#[tokio::test]
async fn healthlake_requests_are_sigv4_signed_for_service_healthlake() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header_exists("x-amz-date"))
        .and(header("x-amz-security-token", "session-token"))
        .and(header("x-session-id", "sess-abc.123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&[], None)))
        .expect(1)
        .mount(&server)
        .await;
    let signing = Signing::SigV4 {
        region: "us-east-1".into(),
        credentials: Credentials::new("AKIDEXAMPLE", "secret", Some("session-token".into()), None, "test"),
    };
    store(&server, signing).search(&session(Duration::from_secs(5)), &query()).await.unwrap();
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let auth = requests[0].headers.get("authorization").unwrap().to_str().unwrap().to_owned();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(auth.contains("/us-east-1/healthlake/aws4_request"), "{auth}");
    // The session header is covered by the signature, so it cannot be altered in transit.
    assert!(auth.contains("x-session-id"), "{auth}");
}

/// Hands out credentials named after the session, as an STS-backed source would, and counts the asks.
struct PerSessionCredentials(std::sync::atomic::AtomicUsize);

impl CredentialSource for PerSessionCredentials {
    fn credentials<'a>(
        &'a self,
        session: &'a SessionContext,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Credentials, FhirError>> + Send + 'a>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = format!("ASIA{}", session.session_id.as_str().replace(['-', '.'], "").to_uppercase());
        Box::pin(async move { Ok(Credentials::new(key, "secret", Some("per-session-token".into()), None, "test")) })
    }
}

#[tokio::test]
async fn per_session_signing_asks_the_source_for_every_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-security-token", "per-session-token"))
        .and(header("x-session-id", "sess-abc.123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&[], None)))
        .expect(1)
        .mount(&server)
        .await;
    let source = std::sync::Arc::new(PerSessionCredentials(std::sync::atomic::AtomicUsize::new(0)));
    let signing = Signing::SigV4PerSession { region: "eu-west-2".into(), source: source.clone() };
    store(&server, signing).search(&session(Duration::from_secs(5)), &query()).await.unwrap();
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let auth = requests[0].headers.get("authorization").unwrap().to_str().unwrap().to_owned();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIASESSABC123/"), "{auth}");
    assert!(auth.contains("/eu-west-2/healthlake/aws4_request"), "{auth}");
    assert_eq!(source.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn entries_that_do_not_parse_are_kept_as_references() {
    let server = MockServer::start().await;
    let body = json!({"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Condition", "id": "ok", "subject": {"reference": "Patient/p1"}}},
        {"resource": {"resourceType": "Condition", "id": "bad", "subject": {"reference": "Patient/p1"}, "code": "not a concept"}},
        {"resource": {"resourceType": "OperationOutcome", "id": "oo"}, "search": {"mode": "outcome"}}
    ]});
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    let set = store(&server, Signing::None).search(&session(Duration::from_secs(5)), &query()).await.unwrap();
    let parsed = set.parse::<fhir_sdk::r4b::resources::Condition>();
    assert_eq!(parsed.items.len(), 1);
    assert_eq!(parsed.unparsed, vec!["Condition/bad"]);
}

#[test]
fn fhir_ids_are_checked_before_any_request() {
    for ok in ["a", "abc-123.X", &"a".repeat(64)] {
        assert!(FhirId::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", &"a".repeat(65), "a/b", "a?b=c", "a b", "a_b", "../x", "é"] {
        assert!(FhirId::parse(bad).is_err(), "{bad}");
    }
}

// --- create / read / update (the prior-auth draft store's Binary resources) ---

fn sigv4() -> Signing {
    Signing::SigV4 {
        region: "us-east-1".into(),
        credentials: Credentials::new("AKIDEXAMPLE", "secret", Some("session-token".into()), None, "test"),
    }
}

fn binary() -> serde_json::Value {
    json!({"resourceType": "Binary", "contentType": "application/octet-stream", "data": "AAEC"})
}

#[tokio::test]
async fn create_posts_signed_with_ids_and_returns_the_server_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fhir/Binary"))
        .and(header("x-session-id", "sess-abc.123"))
        .and(header("x-request-id", "req-1"))
        .and(header("content-type", "application/fhir+json"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"resourceType": "Binary", "id": "b-1", "meta": {"versionId": "1"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let written = store(&server, sigv4()).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap();
    assert_eq!(written.id.as_str(), "b-1");
    assert_eq!(written.version.as_deref(), Some("1"));
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let auth = requests[0].headers.get("authorization").unwrap().to_str().unwrap().to_owned();
    assert!(auth.contains("/us-east-1/healthlake/aws4_request"), "{auth}");
    assert!(auth.contains("x-session-id"), "{auth}");
    let sent: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(sent, binary());
}

#[tokio::test]
async fn create_takes_the_id_from_location_when_the_body_is_empty() {
    let server = MockServer::start().await;
    let location = format!("{}/fhir/Binary/b-9/_history/3", server.uri());
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).insert_header("location", location.as_str()))
        .mount(&server)
        .await;
    let written =
        store(&server, Signing::None).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap();
    assert_eq!((written.id.as_str(), written.version.as_deref()), ("b-9", Some("3")));
}

#[tokio::test]
async fn create_is_retried_after_a_server_error_with_the_same_idempotency_key() {
    // The server may have created the resource before failing; the key makes the retry safe ("Idempotency and
    // Concurrency", HealthLake developer guide).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Patient Jane Doe"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Binary", "id": "b-3"})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let written = store(&server, sigv4()).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap();
    assert_eq!(written.id.as_str(), "b-3");
    let keys: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers.get("x-amz-fhir-idempotency-key").unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "a retry repeats the key");
    let uuid = regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").unwrap();
    assert!(uuid.is_match(&keys[0]), "{}", keys[0]);
    // A new create gets a new key.
    store(&server, Signing::None).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap_err();
    let last = server.received_requests().await.unwrap().pop().unwrap();
    assert_ne!(last.headers.get("x-amz-fhir-idempotency-key").unwrap().to_str().unwrap(), keys[0]);
}

#[tokio::test]
async fn a_duplicate_create_answer_returns_the_original_resource() {
    // HealthLake answers a repeated idempotency key with 409 and the resource the first request created.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"resourceType": "Binary", "id": "b-first", "meta": {"versionId": "1"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let written =
        store(&server, Signing::None).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap();
    assert_eq!((written.id.as_str(), written.version.as_deref()), ("b-first", Some("1")));
}

#[tokio::test]
async fn a_conflict_without_a_resource_is_still_a_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"resourceType": "OperationOutcome"})))
        .expect(1)
        .mount(&server)
        .await;
    let err =
        store(&server, Signing::None).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap_err();
    assert_eq!(err, FhirError::Conflict);
}

#[tokio::test]
async fn create_is_retried_after_throttling() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Binary", "id": "b-2"})))
        .expect(1)
        .mount(&server)
        .await;
    let written =
        store(&server, Signing::None).create(&session(Duration::from_secs(5)), "Binary", &binary()).await.unwrap();
    assert_eq!(written.id.as_str(), "b-2");
}

#[tokio::test]
async fn read_returns_the_resource_and_its_version() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fhir/Binary/b-1"))
        .and(header("x-session-id", "sess-abc.123"))
        .and(header("x-request-id", "req-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "W/\"7\"")
                .set_body_json(json!({"resourceType": "Binary", "id": "b-1", "data": "AAEC"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let id = FhirId::parse("b-1").unwrap();
    let (resource, version) =
        store(&server, sigv4()).read(&session(Duration::from_secs(5)), "Binary", &id).await.unwrap();
    assert_eq!(resource["data"], "AAEC");
    assert_eq!(version.as_deref(), Some("7"));
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let auth = requests[0].headers.get("authorization").unwrap().to_str().unwrap().to_owned();
    assert!(auth.contains("/healthlake/aws4_request"), "{auth}");
}

#[tokio::test]
async fn read_of_a_missing_resource_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).expect(1).mount(&server).await;
    let id = FhirId::parse("gone").unwrap();
    let err = store(&server, Signing::None).read(&session(Duration::from_secs(5)), "Binary", &id).await.unwrap_err();
    assert_eq!(err, FhirError::NotFound);
}

#[tokio::test]
async fn read_of_another_resource_type_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Patient", "id": "b-1"})))
        .mount(&server)
        .await;
    let id = FhirId::parse("b-1").unwrap();
    let err = store(&server, Signing::None).read(&session(Duration::from_secs(5)), "Binary", &id).await.unwrap_err();
    assert_eq!(err, FhirError::Decode);
}

#[tokio::test]
async fn update_puts_with_if_match_on_the_version() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/fhir/Binary/b-1"))
        .and(header("if-match", "W/\"1\""))
        .and(header("x-session-id", "sess-abc.123"))
        .and(header_exists("authorization"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"resourceType": "Binary", "id": "b-1", "meta": {"versionId": "2"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let id = FhirId::parse("b-1").unwrap();
    let written = store(&server, sigv4())
        .update(&session(Duration::from_secs(5)), "Binary", &id, &binary(), Some("1"))
        .await
        .unwrap();
    assert_eq!(written.version.as_deref(), Some("2"));
}

#[tokio::test]
async fn update_on_a_stale_version_is_a_conflict_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(412).set_body_string("version 2 is current"))
        .expect(1)
        .mount(&server)
        .await;
    let id = FhirId::parse("b-1").unwrap();
    let err = store(&server, Signing::None)
        .update(&session(Duration::from_secs(5)), "Binary", &id, &binary(), Some("1"))
        .await
        .unwrap_err();
    assert_eq!(err, FhirError::Conflict);
    assert!(!err.should_retry());
}

#[tokio::test]
async fn update_is_retried_on_server_errors() {
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(500)).up_to_n_times(1).mount(&server).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Binary", "id": "b-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let id = FhirId::parse("b-1").unwrap();
    store(&server, Signing::None)
        .update(&session(Duration::from_secs(5)), "Binary", &id, &binary(), None)
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
