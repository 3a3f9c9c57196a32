//! The audit checkpoint MAC on KMS at the wire: GenerateMac makes the checkpoint, VerifyMac checks it, a
//! wrong tag is a forged checkpoint, and a throttled KMS loses no record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
use std::sync::Arc;

use aws_sdk_kms::operation::generate_mac::GenerateMacOutput;
use aws_sdk_kms::operation::verify_mac::VerifyMacOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::Blob;
use aws_smithy_types::body::SdkBody;
use shared::audit::verify::{FindingKind, Keyring, numbered, verify_lines};
use shared::audit::{AuditRecord, AuditSink, ChainMac, CheckpointWhen, MemoryAuditSink, verify_chain};
use shared_aws::kms::KmsChainMac;

const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/mac-key";

fn json_error(status: u16, code: &'static str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || {
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(format!(r#"{{"__type":"{code}"}}"#)),
        );
        response.headers_mut().insert("content-type", "application/x-amz-json-1.1");
        response
    }
}

#[tokio::test]
async fn checkpoints_are_made_and_checked_by_kms() {
    let generate = mock!(aws_sdk_kms::Client::generate_mac)
        .match_requests(|r| {
            r.key_id() == Some(KEY_ARN)
                && r.message().is_some_and(|m| m.as_ref().starts_with(b"clinical-agent/audit-checkpoint/v2\n"))
        })
        .then_output(|| GenerateMacOutput::builder().mac(Blob::new(vec![9u8; 32])).key_id(KEY_ARN).build());
    let writer: Arc<dyn ChainMac> =
        Arc::new(KmsChainMac::new(mock_client!(aws_sdk_kms, RuleMode::Sequential, &[&generate]), KEY_ARN));
    let sink = MemoryAuditSink::with_mac(writer, 2);
    sink.write(AuditRecord::new("f", "t", "a", "direct", "r1"));
    sink.write(AuditRecord::new("f", "t", "a", "direct", "r2"));
    sink.checkpoint(CheckpointWhen::IfDue).await;
    let lines = sink.lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(generate.num_calls(), 1);
    let checkpoint: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(checkpoint["mac_key_id"], KEY_ARN);
    assert_eq!(checkpoint["mac"], "09".repeat(32));

    let valid = mock!(aws_sdk_kms::Client::verify_mac)
        .match_requests(|r| r.mac().is_some_and(|m| m.as_ref() == [9u8; 32]) && r.key_id() == Some(KEY_ARN))
        .then_output(|| VerifyMacOutput::builder().mac_valid(true).key_id(KEY_ARN).build());
    let verifier = KmsChainMac::new(mock_client!(aws_sdk_kms, RuleMode::Sequential, &[&valid]), KEY_ARN);
    let report = verify_lines(numbered("bucket", &lines), &Keyring::default().with(Arc::new(verifier))).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(valid.num_calls(), 1);

    // KMS says a wrong tag with KMSInvalidMacException: a forged checkpoint, at its line.
    let invalid = mock!(aws_sdk_kms::Client::verify_mac).then_http_response(json_error(400, "KMSInvalidMacException"));
    let verifier = KmsChainMac::new(mock_client!(aws_sdk_kms, RuleMode::Sequential, &[&invalid]), KEY_ARN);
    let report = verify_lines(numbered("bucket", &lines), &Keyring::default().with(Arc::new(verifier))).await;
    let forged: Vec<_> = report.findings.iter().filter(|f| f.kind == FindingKind::Forged).collect();
    assert_eq!(forged.len(), 1, "{:?}", report.findings);
    assert_eq!(forged[0].position.as_ref().unwrap().line, 3);
}

#[tokio::test]
async fn a_throttled_kms_loses_no_record_and_the_next_checkpoint_covers_it() {
    let generate = mock!(aws_sdk_kms::Client::generate_mac)
        .sequence()
        .http_response(json_error(400, "ThrottlingException"))
        .times(2)
        .output(|| GenerateMacOutput::builder().mac(Blob::new(vec![1u8; 32])).build())
        .build();
    let mac: Arc<dyn ChainMac> =
        Arc::new(KmsChainMac::new(mock_client!(aws_sdk_kms, RuleMode::Sequential, &[&generate]), KEY_ARN));
    let sink = MemoryAuditSink::with_mac(mac, 1);
    sink.write(AuditRecord::new("f", "t", "a", "direct", "r1"));
    sink.checkpoint(CheckpointWhen::IfDue).await;
    assert_eq!(sink.lines().len(), 1, "no checkpoint, the record kept");
    sink.write(AuditRecord::new("f", "t", "a", "direct", "r2"));
    sink.checkpoint(CheckpointWhen::IfDue).await;
    let lines = sink.lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(verify_chain(&lines), Ok(()));
    assert!(lines[2].contains("\"record_kind\":\"checkpoint\""));
}
