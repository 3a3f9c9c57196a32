//! The `audit` command's AWS paths against moto's server (`MOTO_ENDPOINT`; run by `local/stack.sh test`):
//! Logs Insights over a log group for `audit session --aws-log-group`, and KMS `VerifyMac` for
//! `audit verify --kms-key`. moto's Logs Insights does not apply `filter`, so these also prove the command
//! keeps only the asked session's records whatever the store returns.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed step is a failed test")]

use std::process::Command;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::{Value, json};
use shared::audit::{AuditRecord, AuditSink, ChainMac, CheckpointWhen, MemoryAuditSink};

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT must name moto's server, e.g. http://127.0.0.1:8105")
}

fn sdk() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "moto",
        )))
        .endpoint_url(endpoint())
        .build()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

/// The `audit` binary with moto as every AWS endpoint.
fn audit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn record(session: &str, request: &str, kind: &str) -> String {
    json!({"record_type": "tool_audit", "schema_version": 2, "record_kind": kind, "timestamp": "2026-12-01T20:00:00Z",
        "session_id": session, "request_id": request, "function": "patient-summary", "tool": "patient_summary",
        "action": "summarize", "subject": "dr-a", "outcome": if kind == "final" { json!("ok") } else { json!("pending") }})
    .to_string()
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn logs_insights_gives_the_sessions_records_and_nothing_of_another_session() {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk());
    let group = unique("/aws/lambda/stack-patient-summary");
    logs.create_log_group().log_group_name(&group).send().await.unwrap();
    logs.create_log_stream().log_group_name(&group).log_stream_name("2026/12/01/[$LATEST]abc").send().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let messages = [
        record("sess-a", "r1", "intent"),
        r#"{"level":"INFO","fields":{"message":"tool call finished"}}"#.to_owned(),
        record("sess-b", "r2", "final"),
        // Lambda's JSON log format may wrap a line in `message`.
        json!({"timestamp": "t", "level": "INFO", "message": record("sess-a", "r1", "final")}).to_string(),
    ];
    let events: Vec<InputLogEvent> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| InputLogEvent::builder().timestamp(now + i as i64).message(m).build().unwrap())
        .collect();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("2026/12/01/[$LATEST]abc")
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();

    let lines = audit::aws::session_lines(&logs, std::slice::from_ref(&group), "sess-a", 1).await.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.text.contains("\"sess-a\"") && !l.text.contains("sess-b")));
    assert!(lines[0].position.source.starts_with("logs:2026/12/01/"));

    let (code, out) = audit(&["session", "sess-a", "--aws-log-group", &group, "--json"]);
    assert_eq!(code, 0, "{out}");
    let timeline: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(timeline["calls"].as_array().unwrap().len(), 1, "{timeline}");
    assert_eq!(timeline["calls"][0]["request_id"], "r1");
    let (code, _) = audit(&["session", "sess-none", "--aws-log-group", &group]);
    assert_eq!(code, 3, "a session without records");
    let (code, _) = audit(&["session", "bad\"id", "--aws-log-group", &group]);
    assert_ne!(code, 0, "an id that could leave the query's string is refused");
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn verify_checks_kms_checkpoints_and_finds_an_edit() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let kms = aws_sdk_kms::Client::new(&sdk());
    let key = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let mac: Arc<dyn ChainMac> = Arc::new(shared_aws::kms::KmsChainMac::new(kms, key.clone()));
    let sink = MemoryAuditSink::with_mac(mac, 8);
    sink.write(AuditRecord::new("patient-summary", "patient_summary", "summarize", "direct", "r1"));
    sink.write(AuditRecord::new("patient-summary", "patient_summary", "summarize", "direct", "r2"));
    sink.checkpoint(CheckpointWhen::Now).await;
    let lines = sink.lines();
    let dir = std::env::temp_dir().join(unique("audit-kms"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let path = file.to_str().unwrap();
    let (code, out) = audit(&["verify", path, "--kms-key", &key]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = audit(&["verify", path]);
    assert_eq!(code, 1, "without the key the checkpoint cannot be checked: {out}");
    let edited = lines.join("\n").replacen("\"r1\"", "\"r9\"", 1);
    std::fs::write(&file, edited).unwrap();
    let (code, out) = audit(&["verify", path, "--kms-key", &key]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("records.jsonl:1") || out.contains("records.jsonl:2"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
