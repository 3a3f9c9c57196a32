//! Per-session credentials at the wire: AssumeRole carries the session name and the verified caller as
//! SourceIdentity (SDK mocks), credentials are cached per session, and HealthLake FHIR requests are signed
//! with them for service `healthlake` with the session header (wiremock).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sts::Client;
use aws_sdk_sts::operation::assume_role::{AssumeRoleInput, AssumeRoleOutput};
use aws_sdk_sts::types::{AssumedRoleUser, Credentials};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use shared::fhir::{FhirEndpoint, FhirError, FhirId, FhirStore, HttpFhirStore, SearchQuery, Signing};
use shared::session::{SessionContext, SessionId};
use shared_aws::sts::SessionCredentials;
use shared_aws::{AwsError, CallPolicy};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROLE: &str = "arn:aws:iam::111122223333:role/patient-summary-data-access";

fn session(id: &str, caller: Option<&str>) -> SessionContext {
    let ctx = SessionContext::new(SessionId::parse(id).unwrap(), "req-1", Instant::now() + Duration::from_secs(5));
    match caller {
        Some(c) => ctx.with_caller(c),
        None => ctx,
    }
}

/// Answers like STS: credentials named after the session, an ARN ending in the role session name.
fn assumed(input: &AssumeRoleInput) -> AssumeRoleOutput {
    let name = input.role_session_name().unwrap();
    let key = format!("ASIA{}", name.to_uppercase().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    AssumeRoleOutput::builder()
        .credentials(
            Credentials::builder()
                .access_key_id(key)
                .secret_access_key("secret")
                .session_token(format!("token-{name}"))
                .expiration(DateTime::from(SystemTime::now() + Duration::from_secs(900)))
                .build()
                .unwrap(),
        )
        .assumed_role_user(
            AssumedRoleUser::builder()
                .assumed_role_id(format!("AROAEXAMPLE:{name}"))
                .arn(format!("arn:aws:sts::111122223333:assumed-role/patient-summary-data-access/{name}"))
                .build()
                .unwrap(),
        )
        .set_source_identity(input.source_identity().map(str::to_owned))
        .build()
}

type Seen = Arc<Mutex<Vec<AssumeRoleInput>>>;

fn recording_rule(seen: &Seen) -> aws_smithy_mocks::Rule {
    let record = seen.clone();
    mock!(Client::assume_role)
        .match_requests(move |input| {
            record.lock().unwrap().push(input.clone());
            true
        })
        .then_compute_output(assumed)
}

#[tokio::test]
async fn assume_role_carries_session_name_and_source_identity_and_is_cached_per_session() {
    let seen: Seen = Arc::default();
    let rule = recording_rule(&seen);
    let client = mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&rule]);
    let credentials = SessionCredentials::new(client, ROLE);

    let first = credentials.assume(&session("sess-abc.123", Some("3f0c2a9e-1b2c"))).await.unwrap();
    assert!(first.assumed_role_arn.ends_with("/sess-abc.123"), "{}", first.assumed_role_arn);
    credentials.assume(&session("sess-abc.123", Some("3f0c2a9e-1b2c"))).await.unwrap();
    assert_eq!(rule.num_calls(), 1, "the second call of the session is served from the cache");
    let other = credentials.assume(&session("agentcore:sess:2", Some("3f0c2a9e-1b2c"))).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
    assert_ne!(other.credentials.access_key_id(), first.credentials.access_key_id());

    let inputs = seen.lock().unwrap().clone();
    assert_eq!(inputs[0].role_arn(), Some(ROLE));
    assert_eq!(inputs[0].role_session_name(), Some("sess-abc.123"));
    assert_eq!(inputs[0].source_identity(), Some("3f0c2a9e-1b2c"));
    assert_eq!(inputs[0].duration_seconds(), Some(900));
    // `:` is not allowed in a role session name: made safe, with a hash so sessions stay distinct.
    let name = inputs[1].role_session_name().unwrap();
    assert!(name.starts_with("agentcore_sess_2-") && name.len() <= 64, "{name}");
}

#[tokio::test]
async fn a_new_caller_in_the_same_session_gets_its_own_credentials() {
    let seen: Seen = Arc::default();
    let rule = recording_rule(&seen);
    let credentials = SessionCredentials::new(mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&rule]), ROLE);
    credentials.assume(&session("sess-1", Some("user-a"))).await.unwrap();
    credentials.assume(&session("sess-1", Some("user-b"))).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(seen.lock().unwrap()[1].source_identity(), Some("user-b"));
}

#[tokio::test]
async fn credentials_close_to_expiry_are_renewed() {
    let rule = mock!(Client::assume_role).then_compute_output(|input| {
        let mut output = assumed(input);
        if let Some(c) = output.credentials.as_mut() {
            c.expiration = DateTime::from(SystemTime::now() + Duration::from_secs(60));
        }
        output
    });
    let credentials = SessionCredentials::new(mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&rule]), ROLE);
    credentials.assume(&session("sess-1", Some("u1"))).await.unwrap();
    credentials.assume(&session("sess-1", Some("u1"))).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn no_verified_caller_means_no_assume_role_at_all() {
    let seen: Seen = Arc::default();
    let rule = recording_rule(&seen);
    let credentials = SessionCredentials::new(mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&rule]), ROLE);
    assert_eq!(credentials.assume(&session("sess-1", None)).await.unwrap_err(), AwsError::NoCaller);
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn throttled_sts_is_retried_then_unavailable_and_no_fhir_request_goes_out() {
    let rule = mock!(Client::assume_role)
        .sequence()
        .http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
                ),
            )
        })
        .times(5)
        .build();
    let credentials = SessionCredentials::new(mock_client!(aws_sdk_sts, RuleMode::Sequential, &[&rule]), ROLE)
        .with_policy(CallPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            attempt_timeout: Duration::from_secs(2),
        });
    let server = MockServer::start().await;
    let store = HttpFhirStore::new(
        reqwest::Client::new(),
        FhirEndpoint::parse(&format!("{}/datastore/abc/r4/", server.uri())).unwrap(),
        Signing::SigV4PerSession { region: "us-east-1".into(), source: Arc::new(credentials) },
    );
    let query = SearchQuery::new("Condition").patient(&FhirId::parse("p1").unwrap());
    let result = store.search(&session("sess-1", Some("u1")), &query).await;
    assert!(matches!(result, Err(FhirError::Unavailable)), "{result:?}");
    assert_eq!(rule.num_calls(), 3);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn healthlake_requests_are_signed_with_the_session_credentials() {
    let server = MockServer::start().await;
    // Searches are POST `[type]/_search` (HealthLake: "Searching FHIR resources with POST").
    Mock::given(method("POST"))
        .and(header("x-session-id", "sess-abc.123"))
        .and(header("x-amz-security-token", "token-sess-abc.123"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"resourceType": "Bundle", "entry": []})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let seen: Seen = Arc::default();
    let rule = recording_rule(&seen);
    let credentials = SessionCredentials::new(mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&rule]), ROLE);
    let store = HttpFhirStore::new(
        reqwest::Client::new(),
        FhirEndpoint::parse(&format!("{}/datastore/abc/r4/", server.uri())).unwrap(),
        Signing::SigV4PerSession { region: "us-east-1".into(), source: Arc::new(credentials) },
    );
    let query = SearchQuery::new("Condition").patient(&FhirId::parse("p1").unwrap());
    let ctx = session("sess-abc.123", Some("3f0c2a9e-1b2c"));
    store.search(&ctx, &query).await.unwrap();
    store.search(&ctx, &query).await.unwrap();
    assert_eq!(rule.num_calls(), 1, "one AssumeRole serves the session's requests");

    for request in server.received_requests().await.unwrap() {
        let auth = request.headers.get("authorization").unwrap().to_str().unwrap().to_owned();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIASESSABC123/"), "{auth}");
        assert!(auth.contains("/us-east-1/healthlake/aws4_request"), "{auth}");
        let signed = auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
        assert!(signed.split(';').any(|h| h == "x-session-id"), "{signed}");
        assert!(signed.split(';').any(|h| h == "x-amz-security-token"), "{signed}");
    }
}
