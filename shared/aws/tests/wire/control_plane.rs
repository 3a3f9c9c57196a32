//! HealthLake self-check, KMS and Secrets Manager error paths at the wire (SDK mocks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use aws_sdk_healthlake::operation::describe_fhir_datastore::DescribeFhirDatastoreOutput;
use aws_sdk_healthlake::types::{
    CmkType, DatastoreProperties, DatastoreStatus, FhirVersion, KmsEncryptionConfig, SseConfiguration,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use shared::keys::{EncryptionContext, KeyError, Keys};
use shared::secrets::{Secrets, SecretsError};
use shared::session::{SessionContext, SessionId};
use shared_aws::healthlake::check_datastore;
use shared_aws::kms::KmsKeys;
use shared_aws::secrets::SecretsManagerSecrets;
use shared_aws::{AwsError, CallPolicy};

fn session() -> SessionContext {
    SessionContext::new(SessionId::parse("sess-cp-1").unwrap(), "req-1", Instant::now() + Duration::from_secs(5))
}

fn fast() -> CallPolicy {
    CallPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(2),
    }
}

fn datastore(status: DatastoreStatus, cmk: Option<CmkType>) -> DescribeFhirDatastoreOutput {
    let mut properties = DatastoreProperties::builder()
        .datastore_id("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6")
        .datastore_arn("arn:aws:healthlake:us-east-1:111122223333:datastore/fhir/a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6")
        .datastore_status(status)
        .datastore_type_version(FhirVersion::R4)
        .datastore_endpoint(
            "https://healthlake.us-east-1.amazonaws.com/datastore/a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6/r4/",
        );
    if let Some(cmk) = cmk {
        properties = properties.sse_configuration(
            SseConfiguration::builder()
                .kms_encryption_config(
                    KmsEncryptionConfig::builder()
                        .cmk_type(cmk)
                        .kms_key_id("arn:aws:kms:us-east-1:111122223333:key/secret-key-id")
                        .build()
                        .unwrap(),
                )
                .build(),
        );
    }
    DescribeFhirDatastoreOutput::builder().datastore_properties(properties.build().unwrap()).build()
}

async fn check(output: DescribeFhirDatastoreOutput) -> Result<shared_aws::healthlake::CheckedDatastore, AwsError> {
    let rule = mock!(aws_sdk_healthlake::Client::describe_fhir_datastore)
        .match_requests(|input| input.datastore_id() == Some("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"))
        .then_output(move || output.clone());
    let client = mock_client!(aws_sdk_healthlake, RuleMode::Sequential, &[&rule]);
    check_datastore(&client, "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6").await
}

#[tokio::test]
async fn an_active_cmk_datastore_passes_and_gives_its_endpoint() {
    let checked = check(datastore(DatastoreStatus::Active, Some(CmkType::CmCmk))).await.unwrap();
    assert_eq!(
        checked.endpoint.url().as_str(),
        "https://healthlake.us-east-1.amazonaws.com/datastore/a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6/r4/"
    );
}

#[tokio::test]
async fn a_datastore_not_active_or_not_under_a_customer_managed_key_is_refused() {
    assert_eq!(
        check(datastore(DatastoreStatus::Creating, Some(CmkType::CmCmk))).await.unwrap_err(),
        AwsError::DatastoreNotActive
    );
    assert_eq!(
        check(datastore(DatastoreStatus::Active, Some(CmkType::AoCmk))).await.unwrap_err(),
        AwsError::DatastoreNotCustomerManaged
    );
    assert_eq!(
        check(datastore(DatastoreStatus::Active, None)).await.unwrap_err(),
        AwsError::DatastoreNotCustomerManaged
    );
}

#[tokio::test]
async fn a_bad_datastore_id_makes_no_call() {
    let client = mock_client!(aws_sdk_healthlake, RuleMode::Sequential, &[] as &[&aws_smithy_mocks::Rule]);
    assert_eq!(check_datastore(&client, "../x").await.unwrap_err(), AwsError::Invalid("HEALTHLAKE_DATASTORE_ID"));
}

fn json_error(status: u16, code: &'static str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || {
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(format!(r#"{{"__type":"{code}","message":"Rate exceeded for patient Jane Doe"}}"#)),
        );
        response.headers_mut().insert("content-type", "application/x-amz-json-1.1");
        response
    }
}

#[tokio::test]
async fn kms_throttling_is_retried_then_unavailable() {
    let rule = mock!(aws_sdk_kms::Client::generate_data_key)
        .sequence()
        .http_response(json_error(400, "ThrottlingException"))
        .times(5)
        .build();
    let keys = KmsKeys::new(mock_client!(aws_sdk_kms, RuleMode::Sequential, &[&rule]), "alias/drafts", None)
        .with_policy(fast());
    let result = keys.seal(&session(), &EncryptionContext::draft("org-1", "pn-1", "d-1"), b"draft").await;
    assert_eq!(result.unwrap_err(), KeyError::Unavailable);
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(shared::ToolError::from(KeyError::Unavailable), shared::ToolError::UpstreamUnavailable);
}

#[tokio::test]
async fn kms_refusing_the_context_is_an_integrity_error_without_retries() {
    let rule = mock!(aws_sdk_kms::Client::decrypt).then_http_response(json_error(400, "InvalidCiphertextException"));
    let keys = KmsKeys::new(mock_client!(aws_sdk_kms, RuleMode::Sequential, &[&rule]), "alias/drafts", None)
        .with_policy(fast());
    let sealed = shared::keys::Sealed {
        key_id: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
        wrapped_key: vec![1; 16],
        nonce: vec![0; 12],
        ciphertext: vec![0; 32],
    };
    let result = keys.open(&session(), &sealed, &EncryptionContext::draft("org-1", "pn-1", "d-2")).await;
    assert_eq!(result.unwrap_err(), KeyError::Integrity);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn pseudonyms_need_a_configured_mac_key() {
    let keys = KmsKeys::new(
        mock_client!(aws_sdk_kms, RuleMode::Sequential, &[] as &[&aws_smithy_mocks::Rule]),
        "alias/drafts",
        None,
    );
    assert_eq!(keys.pseudonym(&session(), "patient-1").await.unwrap_err(), KeyError::Rejected);
}

#[tokio::test]
async fn secrets_manager_throttling_is_retried_then_unavailable_and_never_echoes_the_body() {
    let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .sequence()
        .http_response(json_error(400, "ThrottlingException"))
        .times(5)
        .build();
    let secrets = SecretsManagerSecrets::new(
        mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, &[&rule]),
        Duration::from_secs(60),
    )
    .with_policy(fast());
    let error = secrets.get(&session(), "pseudonymisation-key").await.unwrap_err();
    assert_eq!(error, SecretsError::Unavailable);
    assert_eq!(rule.num_calls(), 3);
    assert!(!error.to_string().contains("Jane"));
}

#[tokio::test]
async fn a_missing_secret_is_not_found_and_not_retried() {
    let rule = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .then_http_response(json_error(400, "ResourceNotFoundException"));
    let secrets = SecretsManagerSecrets::new(
        mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, &[&rule]),
        Duration::from_secs(60),
    )
    .with_policy(fast());
    assert_eq!(secrets.get(&session(), "payer/acme").await.unwrap_err(), SecretsError::NotFound("payer/acme".into()));
    assert_eq!(rule.num_calls(), 1);
}
