//! Which role signs which call, with per-session credentials on (`SESSION_CREDENTIALS=sts`): every adapter is
//! built by `Ports` exactly as a tool builds it, all AWS endpoints point at one wiremock server, and the SigV4
//! access key id of each request says who signed it. The data-access roles hold HealthLake permissions only,
//! so HealthLake must carry the session's key and every Bedrock, knowledge-base and S3 call the function's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use shared::config::Config;
use shared::fhir::{FhirId, FhirStore, HttpFhirStore, SearchQuery};
use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::session::{SessionContext, SessionId};
use shared::writer::{ClinicalWriter, Purpose, Statement, WritingRequest};
use shared_aws::config::{Ports, Settings};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FUNCTION_KEY: &str = "AKIAFUNCTIONROLE";
const SESSION_KEY: &str = "ASIASESSIONROLE";

const ASSUME_ROLE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>3f0c2a9e-1b2c</SourceIdentity>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:sess-sign-1</AssumedRoleId>
      <Arn>arn:aws:sts::111122223333:assumed-role/prior-auth-data-access/sess-sign-1</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIASESSIONROLE</AccessKeyId>
      <SecretAccessKey>session-secret</SecretAccessKey>
      <SessionToken>session-token</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

async fn aws(server: &MockServer) {
    let json = |body: serde_json::Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(ASSUME_ROLE, "text/xml"))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/model/.+/converse$"))
        .respond_with(json(serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "1. Hypertension is active."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 1}
        })))
        .mount(server)
        .await;
    let filter = |kind: &str| serde_json::json!({"type": kind, "threshold": 0.8, "score": 0.95, "action": "NONE"});
    Mock::given(method("POST"))
        .and(path_regex("^/guardrail/.+/version/.+/apply$"))
        .respond_with(json(serde_json::json!({
            "usage": {"topicPolicyUnits": 0, "contentPolicyUnits": 0, "wordPolicyUnits": 0,
                      "sensitiveInformationPolicyUnits": 0, "sensitiveInformationPolicyFreeUnits": 0,
                      "contextualGroundingPolicyUnits": 1},
            "action": "NONE",
            "outputs": [],
            "assessments": [{"contextualGroundingPolicy": {"filters": [filter("GROUNDING"), filter("RELEVANCE")]}}]
        })))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/knowledgebases/KB12345678/retrieve"))
        .respond_with(json(serde_json::json!({"retrievalResults": [{
            "content": {"text": "a chunk"},
            "location": {"type": "S3", "s3Location": {"uri": "s3://payer-policies-111122223333/EHP-IMG-001.md"}},
            "score": 0.9,
            "metadata": {"policy_id": "EHP-IMG-001"}
        }]})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payer-policies-111122223333/EHP-IMG-001.md"))
        .respond_with(ResponseTemplate::new(200).set_body_string("---\npolicy_id: EHP-IMG-001\n---\n"))
        .mount(server)
        .await;
    Mock::given(path_regex("^/datastore/"))
        .respond_with(json(serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": []})))
        .mount(server)
        .await;
}

/// The local policy directory, which a knowledge-base configuration never uses.
struct NoLocalPolicies;

impl KnowledgeBase for NoLocalPolicies {
    async fn retrieve(&self, _: &SessionContext, _: &RetrievalQuery) -> Result<Vec<Passage>, KnowledgeError> {
        panic!("the local policies must not serve when a knowledge base is configured")
    }
}

/// `(service in the credential scope, access key id)` of a SigV4 `Authorization` header.
fn signer(auth: &str) -> (String, String) {
    let credential = auth.split("Credential=").nth(1).unwrap().split(',').next().unwrap();
    let parts: Vec<&str> = credential.split('/').collect();
    (parts[3].to_owned(), parts[0].to_owned())
}

#[tokio::test]
async fn session_credentials_sign_healthlake_only_and_the_function_role_signs_the_rest() {
    let server = MockServer::start().await;
    aws(&server).await;
    let env: HashMap<&str, String> = HashMap::from([
        ("AWS_REGION", "us-east-1".to_owned()),
        ("CLINICAL_WRITER", "bedrock".to_owned()),
        ("MODEL_PROVIDER", "bedrock".to_owned()),
        (
            "BEDROCK_MODEL_ID",
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3d4e5f6".to_owned(),
        ),
        ("BEDROCK_GUARDRAIL_ID", "gr-clinical".to_owned()),
        ("BEDROCK_GUARDRAIL_VERSION", "3".to_owned()),
        ("KNOWLEDGE_BASE", "bedrock".to_owned()),
        ("KNOWLEDGE_BASE_ID", "KB12345678".to_owned()),
        ("PAYER_POLICY_BUCKET", "payer-policies-111122223333".to_owned()),
        ("SESSION_CREDENTIALS", "sts".to_owned()),
        ("DATA_ACCESS_ROLE_ARN", "arn:aws:iam::111122223333:role/prior-auth-data-access".to_owned()),
        ("FHIR_BASE_URL", format!("{}/datastore/abc/r4/", server.uri())),
        ("AWS_ACCESS_KEY_ID", FUNCTION_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "function-secret".to_owned()),
        ("JWKS_URL", "http://127.0.0.1:1/jwks".to_owned()),
        ("JWT_ISSUER", "issuer".to_owned()),
        ("JWT_AUDIENCE", "audience".to_owned()),
    ]);
    let lookup = |key: &str| env.get(key).cloned();
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            FUNCTION_KEY,
            "function-secret",
            None,
            None,
            "function-role",
        )))
        .endpoint_url(server.uri())
        .build();
    let ports = Ports::with_sdk(Settings::from_lookup(lookup).unwrap(), Some(sdk));
    let mut config = Config::from_lookup(lookup).unwrap();
    ports.apply_to_fhir(&mut config).await.unwrap();

    let session = SessionContext::new(
        SessionId::parse("sess-sign-1").unwrap(),
        "req-1",
        Instant::now() + Duration::from_secs(10),
    )
    .with_caller("3f0c2a9e-1b2c");
    let store = HttpFhirStore::new(reqwest::Client::new(), config.fhir_endpoint, config.fhir_signing);
    store.search(&session, &SearchQuery::new("Condition").patient(&FhirId::parse("p1").unwrap())).await.unwrap();
    let facts = WritingRequest {
        purpose: Purpose::PreVisitSummary,
        statements: vec![Statement {
            text: "Active problems: Hypertension".into(),
            sources: vec!["Condition/c1".into()],
        }],
    };
    let narrative = ports.writer().unwrap().write(&session, &facts).await.unwrap();
    assert_eq!(narrative.guardrail_action.as_deref(), Some("none"), "converse and the grounding check both answered");
    let policies = ports.payer_policies(NoLocalPolicies).unwrap();
    let found = policies
        .retrieve(&session, &RetrievalQuery { text: "mri".into(), max_results: 2, filters: vec![] })
        .await
        .unwrap();
    assert!(found[0].text.starts_with("---\npolicy_id: EHP-IMG-001"));

    let mut signers: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for request in server.received_requests().await.unwrap() {
        let auth = request.headers.get("authorization").expect("every request is signed").to_str().unwrap();
        let call = match request.url.path() {
            "/" => "sts:AssumeRole",
            p if p.ends_with("/converse") => "bedrock:Converse",
            p if p.ends_with("/apply") => "bedrock:ApplyGuardrail",
            p if p.ends_with("/retrieve") => "bedrock:Retrieve",
            p if p.starts_with("/payer-policies-") => "s3:GetObject",
            p if p.starts_with("/datastore/") => "healthlake:search",
            other => panic!("unexpected request to {other}"),
        };
        signers.entry(call.to_owned()).or_default().insert(signer(auth));
    }
    let expected: BTreeMap<String, BTreeSet<(String, String)>> = [
        ("bedrock:ApplyGuardrail", "bedrock", FUNCTION_KEY),
        ("bedrock:Converse", "bedrock", FUNCTION_KEY),
        ("bedrock:Retrieve", "bedrock", FUNCTION_KEY),
        ("healthlake:search", "healthlake", SESSION_KEY),
        ("s3:GetObject", "s3", FUNCTION_KEY),
        ("sts:AssumeRole", "sts", FUNCTION_KEY),
    ]
    .into_iter()
    .map(|(call, service, key)| (call.to_owned(), BTreeSet::from([(service.to_owned(), key.to_owned())])))
    .collect();
    assert_eq!(signers, expected);
}
