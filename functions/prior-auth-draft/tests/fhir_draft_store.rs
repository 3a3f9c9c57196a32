//! Drafts as FHIR `Binary` resources, at the wire: what is sent, what comes back, and the finalize race.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use prior_auth_draft::store::{DraftStatus, DraftStore, FhirDraftStore, StoreError, StoredDraft, to_binary};
use serde_json::json;
use shared::fhir::{FhirEndpoint, HttpFhirStore, Signing};
use shared::keys::Sealed;
use shared::session::{SessionContext, SessionId};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn session() -> SessionContext {
    SessionContext::new(SessionId::parse("sess-1").unwrap(), "req-1", Instant::now() + Duration::from_secs(5))
}

fn drafts(server: &MockServer) -> FhirDraftStore<HttpFhirStore> {
    let endpoint = FhirEndpoint::parse(&format!("{}/fhir", server.uri())).unwrap();
    FhirDraftStore::new(HttpFhirStore::new(reqwest::Client::new(), endpoint, Signing::None))
}

fn draft(status: DraftStatus) -> StoredDraft {
    let sealed = Sealed { key_id: "local".into(), wrapped_key: vec![1, 2], nonce: vec![3], ciphertext: vec![4, 5, 6] };
    StoredDraft {
        id: "0123456789abcdef0123456789abcdef".into(),
        tenant: "org-1".into(),
        patient: "pat-1".into(),
        status,
        unmet_criteria: true,
        sealed,
    }
}

#[tokio::test]
async fn create_posts_a_binary_and_returns_the_server_id_as_the_handle() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/fhir/Binary"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resourceType": "Binary", "id": "3f2a-b1"})))
        .expect(1)
        .mount(&server)
        .await;
    let handle = drafts(&server).create(&session(), &draft(DraftStatus::Draft)).await.unwrap();
    assert_eq!(handle, "3f2a-b1");
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(sent["resourceType"], "Binary");
    assert_eq!(sent["securityContext"]["reference"], "Patient/pat-1");
    assert_eq!(sent["contentType"], "application/octet-stream");
    assert!(sent.get("id").is_none(), "the server assigns the id");
}

#[tokio::test]
async fn get_reads_the_binary_back_with_its_version_and_a_missing_one_is_none() {
    let server = MockServer::start().await;
    let mut binary = to_binary(&draft(DraftStatus::Draft)).unwrap();
    binary["id"] = json!("b-1");
    binary["meta"]["versionId"] = json!("4");
    Mock::given(method("GET"))
        .and(path("/fhir/Binary/b-1"))
        .and(header("x-session-id", "sess-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(binary))
        .mount(&server)
        .await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&server).await;
    let store = drafts(&server);
    let found = store.get(&session(), "b-1").await.unwrap().unwrap();
    assert_eq!(found.draft, draft(DraftStatus::Draft));
    assert_eq!(found.version, "4");
    assert_eq!(store.get(&session(), "b-2").await.unwrap(), None);
    // Not a FHIR id: never sent anywhere.
    assert_eq!(store.get(&session(), "../Patient/x").await.unwrap(), None);
}

#[tokio::test]
async fn replace_is_conditional_on_the_version_read_and_a_lost_race_is_a_conflict() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/fhir/Binary/b-1"))
        .and(header("if-match", "W/\"4\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Binary", "id": "b-1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(header("if-match", "W/\"3\""))
        .respond_with(ResponseTemplate::new(412))
        .expect(1)
        .mount(&server)
        .await;
    let store = drafts(&server);
    let final_draft = draft(DraftStatus::Final);
    store.replace(&session(), "b-1", &final_draft, "4").await.unwrap();
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(sent["id"], "b-1");
    assert!(sent["meta"]["tag"].as_array().unwrap().iter().any(|t| t["code"] == "final"));
    assert_eq!(store.replace(&session(), "b-1", &final_draft, "3").await, Err(StoreError::Conflict));
}

#[tokio::test]
async fn a_draft_read_without_a_version_is_refused_so_no_update_goes_without_if_match() {
    // A server that answers without `meta.versionId` and without an `ETag`: finalize could only update
    // unconditionally (a lost update), so the read itself fails and nothing is written.
    let server = MockServer::start().await;
    let mut binary = to_binary(&draft(DraftStatus::Draft)).unwrap();
    binary["id"] = json!("b-1");
    Mock::given(method("GET"))
        .and(path("/fhir/Binary/b-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(binary))
        .mount(&server)
        .await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    assert_eq!(drafts(&server).get(&session(), "b-1").await, Err(StoreError::Unversioned));
}
