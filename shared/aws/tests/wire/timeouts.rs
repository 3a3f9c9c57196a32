//! A service that does not answer: every adapter gives up within the invocation's deadline with its
//! "unavailable" error (wiremock holds each response for 10 s; the session has 1.5 s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use shared::keys::{EncryptionContext, KeyError, Keys};
use shared::knowledge::{KnowledgeBase, KnowledgeError, RetrievalQuery};
use shared::secrets::{Secrets, SecretsError};
use shared::session::{SessionContext, SessionId};
use shared_aws::AwsError;
use shared_aws::kms::KmsKeys;
use shared_aws::knowledge::BedrockKnowledgeBase;
use shared_aws::secrets::SecretsManagerSecrets;
use shared_aws::sts::SessionCredentials;
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEADLINE: Duration = Duration::from_millis(1500);
/// The deadline less the reply margin, plus scheduling slack.
const GIVE_UP_BY: Duration = Duration::from_millis(1600);

async fn silent_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    server
}

fn sdk(server: &MockServer) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("AKIDTEST", "secret", None, None, "t")))
        .endpoint_url(server.uri())
        .build()
}

fn session() -> SessionContext {
    SessionContext::new(SessionId::parse("sess-slow-1").unwrap(), "req-1", Instant::now() + DEADLINE).with_caller("u1")
}

#[tokio::test]
async fn kms_gives_up_within_the_deadline() {
    let server = silent_server().await;
    let keys = KmsKeys::new(aws_sdk_kms::Client::new(&sdk(&server)), "alias/drafts", None);
    let started = Instant::now();
    let result = keys.seal(&session(), &EncryptionContext::draft("o", "p", "d"), b"x").await;
    assert_eq!(result.unwrap_err(), KeyError::Unavailable);
    assert!(started.elapsed() < GIVE_UP_BY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn secrets_manager_gives_up_within_the_deadline() {
    let server = silent_server().await;
    let secrets =
        SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::new(&sdk(&server)), Duration::from_secs(60));
    let started = Instant::now();
    assert_eq!(secrets.get(&session(), "k").await.unwrap_err(), SecretsError::Unavailable);
    assert!(started.elapsed() < GIVE_UP_BY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn sts_gives_up_within_the_deadline() {
    let server = silent_server().await;
    let credentials =
        SessionCredentials::new(aws_sdk_sts::Client::new(&sdk(&server)), "arn:aws:iam::111122223333:role/r");
    let started = Instant::now();
    assert_eq!(credentials.assume(&session()).await.unwrap_err(), AwsError::Unavailable);
    assert!(started.elapsed() < GIVE_UP_BY, "{:?}", started.elapsed());
}

#[tokio::test]
async fn knowledge_base_gives_up_within_the_deadline() {
    let server = silent_server().await;
    let kb = BedrockKnowledgeBase::new(aws_sdk_bedrockagentruntime::Client::new(&sdk(&server)), "KB1").unwrap();
    let started = Instant::now();
    let query = RetrievalQuery { text: "q".into(), max_results: 3, filters: vec![] };
    assert_eq!(kb.retrieve(&session(), &query).await.unwrap_err(), KnowledgeError::Unavailable);
    assert!(started.elapsed() < GIVE_UP_BY, "{:?}", started.elapsed());
}
