//! Payer policies from a chunked knowledge base: Retrieve (SDK mocks) names chunks, the adapter reads each
//! whole source document once from the policy bucket with S3 GetObject (wiremock), signed for `s3` with the
//! function role, and refuses any location outside that bucket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_bedrockagentruntime::Client;
use aws_sdk_bedrockagentruntime::operation::retrieve::RetrieveOutput;
use aws_sdk_bedrockagentruntime::types::{
    KnowledgeBaseRetrievalResult, RetrievalResultContent, RetrievalResultLocation, RetrievalResultLocationType,
    RetrievalResultS3Location,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::Document;
use shared::knowledge::{KnowledgeBase, KnowledgeError, RetrievalQuery};
use shared::session::{SessionContext, SessionId};
use shared_aws::CallPolicy;
use shared_aws::knowledge::BedrockKnowledgeBase;
use shared_aws::s3::{MAX_DOCUMENT_BYTES, PolicyBucket, policy_http_client};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BUCKET: &str = "payer-policies-111122223333";
const MRI: &str = "---\npolicy_id: EHP-IMG-001\n---\n# MRI lumbar spine\nSix weeks of conservative therapy.\n";
const CPAP: &str = "---\npolicy_id: EHP-DME-003\n---\n# CPAP\nApnea-hypopnea index of 15 or more.\n";

fn session() -> SessionContext {
    SessionContext::new(SessionId::parse("sess-pol-1").unwrap(), "req-1", Instant::now() + Duration::from_secs(5))
}

fn fast() -> CallPolicy {
    CallPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(2),
    }
}

fn chunk(uri: &str, text: &str, score: f64, policy_id: &str) -> KnowledgeBaseRetrievalResult {
    KnowledgeBaseRetrievalResult::builder()
        .content(RetrievalResultContent::builder().text(text).build())
        .location(
            RetrievalResultLocation::builder()
                .r#type(RetrievalResultLocationType::S3)
                .s3_location(RetrievalResultS3Location::builder().uri(uri).build())
                .build()
                .unwrap(),
        )
        .score(score)
        .metadata("policy_id", Document::String(policy_id.into()))
        .build()
}

/// What a KB with default chunking answers: three chunks of the MRI policy and one of CPAP, none of them a
/// whole document with its front matter.
fn chunked() -> RetrieveOutput {
    let mri = format!("s3://{BUCKET}/acme/EHP-IMG-001 mri+lumbar.md");
    let cpap = format!("s3://{BUCKET}/acme/EHP-DME-003.md");
    RetrieveOutput::builder()
        .retrieval_results(chunk(&mri, "Six weeks of conservative", 0.91, "EHP-IMG-001"))
        .retrieval_results(chunk(&mri, "therapy.", 0.88, "EHP-IMG-001"))
        .retrieval_results(chunk(&cpap, "Apnea-hypopnea index", 0.52, "EHP-DME-003"))
        .retrieval_results(chunk(&mri, "# MRI lumbar spine", 0.40, "EHP-IMG-001"))
        .build()
        .unwrap()
}

fn bucket(server: &MockServer) -> PolicyBucket {
    let credentials = SharedCredentialsProvider::new(Credentials::new("AKIDFUNCTIONROLE", "secret", None, None, "t"));
    PolicyBucket::new(policy_http_client().unwrap(), BUCKET, "us-east-1", credentials)
        .unwrap()
        .with_endpoint(server.uri())
        .with_policy(fast())
}

fn policy_kb(output: fn() -> RetrieveOutput, server: &MockServer) -> (BedrockKnowledgeBase, aws_smithy_mocks::Rule) {
    let rule = mock!(Client::retrieve).then_output(output);
    let client = mock_client!(aws_sdk_bedrockagentruntime, RuleMode::MatchAny, &[&rule]);
    let kb = BedrockKnowledgeBase::new(client, "KB12345678")
        .unwrap()
        .with_policy(fast())
        .with_whole_documents(bucket(server));
    (kb, rule)
}

fn query(max_results: u32) -> RetrievalQuery {
    RetrievalQuery { text: "coverage policy criteria".into(), max_results, filters: vec![] }
}

async fn serve(server: &MockServer, key_path: &str, body: &str) {
    Mock::given(method("GET"))
        .and(path(key_path))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn chunks_become_whole_documents_read_once_per_cold_start_and_signed_for_s3() {
    let server = MockServer::start().await;
    // The key as S3's canonical URI encodes it: space and `+` percent-encoded, once.
    serve(&server, &format!("/{BUCKET}/acme/EHP-IMG-001%20mri%2Blumbar.md"), MRI).await;
    serve(&server, &format!("/{BUCKET}/acme/EHP-DME-003.md"), CPAP).await;
    let (kb, rule) = policy_kb(chunked, &server);

    let passages = kb.retrieve(&session(), &query(5)).await.unwrap();
    assert_eq!(passages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), vec![MRI, CPAP]);
    assert_eq!(passages[0].source, format!("s3://{BUCKET}/acme/EHP-IMG-001 mri+lumbar.md"));
    assert!((passages[0].score - 0.91).abs() < 1e-6, "a document keeps its best chunk's score");
    assert_eq!(passages[1].metadata.get("policy_id").map(String::as_str), Some("EHP-DME-003"));

    // Asked for one document, the adapter returns the best one only.
    assert_eq!(kb.retrieve(&session(), &query(1)).await.unwrap().len(), 1);
    assert_eq!(rule.num_calls(), 2);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "each document is read once, then served from the instance cache");
    for request in &requests {
        let auth = request.headers.get("authorization").unwrap().to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFUNCTIONROLE/"), "{auth}");
        assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
        let signed = auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
        assert!(signed.split(';').any(|h| h == "x-amz-content-sha256"), "{signed}");
        assert_eq!(request.url.query(), Some("x-session-id=sess-pol-1"), "the session id reaches the access log");
        // SHA-256 of the empty body, as S3 requires on a GET ("Signature Calculations for the Authorization
        // Header: Transferring Payload in a Single Chunk").
        assert_eq!(
            request.headers.get("x-amz-content-sha256").unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

#[tokio::test]
async fn a_location_outside_the_policy_bucket_fails_closed_before_any_s3_request() {
    fn foreign() -> RetrieveOutput {
        RetrieveOutput::builder()
            .retrieval_results(chunk("s3://payer-policies-111122223333/acme/a.md", "a", 0.9, "A"))
            .retrieval_results(chunk("s3://someone-elses-bucket/policy.md", "b", 0.8, "B"))
            .build()
            .unwrap()
    }
    let server = MockServer::start().await;
    let (kb, _) = policy_kb(foreign, &server);
    assert_eq!(kb.retrieve(&session(), &query(5)).await, Err(KnowledgeError::Rejected));
    assert!(server.received_requests().await.unwrap().is_empty());

    fn not_s3() -> RetrieveOutput {
        let web = KnowledgeBaseRetrievalResult::builder()
            .content(RetrievalResultContent::builder().text("c").build())
            .location(RetrievalResultLocation::builder().r#type(RetrievalResultLocationType::Web).build().unwrap())
            .build();
        RetrieveOutput::builder().retrieval_results(web).build().unwrap()
    }
    let (kb, _) = policy_kb(not_s3, &server);
    assert_eq!(kb.retrieve(&session(), &query(5)).await, Err(KnowledgeError::Rejected));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_denied_and_oversized_documents_are_refused_without_retries() {
    fn one() -> RetrieveOutput {
        RetrieveOutput::builder()
            .retrieval_results(chunk("s3://payer-policies-111122223333/p.md", "p", 0.9, "P"))
            .build()
            .unwrap()
    }
    for (status, body) in [
        (404, "<Error><Code>NoSuchKey</Code></Error>".to_owned()),
        (403, "<Error/>".to_owned()),
        (200, "x".repeat(MAX_DOCUMENT_BYTES + 1)),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .mount(&server)
            .await;
        let (kb, _) = policy_kb(one, &server);
        assert_eq!(kb.retrieve(&session(), &query(5)).await, Err(KnowledgeError::Rejected), "{status}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn slow_down_is_retried_a_bounded_number_of_times_then_unavailable() {
    fn one() -> RetrieveOutput {
        RetrieveOutput::builder()
            .retrieval_results(chunk("s3://payer-policies-111122223333/p.md", "p", 0.9, "P"))
            .build()
            .unwrap()
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<Error><Code>SlowDown</Code></Error>"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_string(MRI)).mount(&server).await;
    let (kb, _) = policy_kb(one, &server);
    assert_eq!(kb.retrieve(&session(), &query(5)).await.unwrap()[0].text, MRI, "two SlowDowns, then served");

    let always = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).mount(&always).await;
    let (kb, _) = policy_kb(one, &always);
    assert_eq!(kb.retrieve(&session(), &query(5)).await, Err(KnowledgeError::Unavailable));
    assert_eq!(always.received_requests().await.unwrap().len(), 3, "max_attempts bounds the retries");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    fn one() -> RetrieveOutput {
        RetrieveOutput::builder()
            .retrieval_results(chunk("s3://payer-policies-111122223333/p.md", "p", 0.9, "P"))
            .build()
            .unwrap()
    }
    let elsewhere = MockServer::start().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", format!("{}/p.md", elsewhere.uri())))
        .mount(&server)
        .await;
    let (kb, _) = policy_kb(one, &server);
    assert_eq!(kb.retrieve(&session(), &query(5)).await, Err(KnowledgeError::Rejected));
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "the signed request stays on the bucket's host");
}
