//! The tamper suite: each way of damaging an audit log is found, with the position of the damage.
//!
//! Lines are numbered from 1 as `audit verify` prints them (`source:line`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
use std::sync::Arc;

use shared::audit::verify::{Finding, FindingKind, Keyring, Report, numbered, verify_lines};
use shared::audit::{
    AuditRecord, AuditSink, ChainMac, CheckpointWhen, LocalChainMac, MemoryAuditSink, Outcome, RecordKind,
    StdoutAuditSink,
};

fn key() -> Arc<dyn ChainMac> {
    Arc::new(LocalChainMac::from_bytes(&[42u8; 32]).unwrap())
}

fn record(i: usize) -> AuditRecord {
    let mut r = AuditRecord::new("patient-summary", "patient_summary", "summarize", "direct", &format!("req-{i}"));
    r.session_id = Some(format!("session-{}", i % 2));
    r.outcome = Outcome::Ok;
    r
}

/// An instance that writes `calls` records with a checkpoint every 4 and a closing one at shutdown.
async fn instance(calls: usize) -> Vec<String> {
    let sink = MemoryAuditSink::with_mac(key(), 4);
    for i in 0..calls {
        sink.write(record(i));
        sink.checkpoint(CheckpointWhen::IfDue).await;
    }
    sink.checkpoint(CheckpointWhen::Now).await;
    sink.lines()
}

async fn verify(lines: &[String]) -> Report {
    verify_lines(numbered("audit.log", lines), &Keyring::local(key())).await
}

fn only(report: &Report, kind: FindingKind) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.kind == kind).collect()
}

fn line_of(f: &Finding) -> usize {
    f.position.as_ref().map(|p| p.line).unwrap_or(0)
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn an_untouched_log_has_no_findings() {
    let lines = instance(10).await;
    // 10 records, checkpoints after records 4 and 8, and the closing one.
    assert_eq!(lines.len(), 13);
    let report = verify(&lines).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.instances.len(), 1);
    assert_eq!(report.instances[0].checkpoints, 3);
}

#[tokio::test]
async fn one_record_deleted() {
    let mut lines = instance(10).await;
    let removed = lines.remove(6);
    let report = verify(&lines).await;
    let missing = only(&report, FindingKind::Missing);
    assert_eq!(missing.len(), 1, "{:?}", report.findings);
    assert_eq!(missing[0].seq, Some(seq_of(&removed)));
    // Reported before the line that now sits where the deleted one was.
    assert_eq!(line_of(missing[0]), 7);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
}

#[tokio::test]
async fn one_field_edited() {
    let mut lines = instance(10).await;
    assert!(lines[2].contains("\"req-2\""));
    lines[2] = lines[2].replace("session-0", "session-9");
    let report = verify(&lines).await;
    let edited = only(&report, FindingKind::Edited);
    assert_eq!(edited.len(), 1, "{:?}", report.findings);
    assert_eq!(line_of(edited[0]), 3);
    assert_eq!(edited[0].seq, Some(2));
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
}

#[tokio::test]
async fn the_last_record_edited_is_caught_by_the_closing_checkpoint() {
    let mut lines = instance(3).await;
    let last_call = lines.len() - 2;
    lines[last_call] = lines[last_call].replace("\"ok\"", "\"pending\"");
    let report = verify(&lines).await;
    let edited = only(&report, FindingKind::Edited);
    assert_eq!(edited.len(), 1, "{:?}", report.findings);
    assert_eq!(line_of(edited[0]), last_call + 1);
}

#[tokio::test]
async fn two_records_swapped() {
    let mut lines = instance(10).await;
    lines.swap(2, 3);
    let report = verify(&lines).await;
    let moved = only(&report, FindingKind::Reordered);
    assert_eq!(moved.len(), 1, "{:?}", report.findings);
    assert_eq!(moved[0].seq, Some(2));
    assert_eq!(line_of(moved[0]), 4);
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
}

#[tokio::test]
async fn the_tail_truncated() {
    let mut lines = instance(10).await;
    lines.truncate(lines.len() - 2);
    let report = verify(&lines).await;
    let unclosed = only(&report, FindingKind::Unclosed);
    assert_eq!(unclosed.len(), 1, "{:?}", report.findings);
    assert_eq!(line_of(unclosed[0]), lines.len());
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    // A live log is expected to have an open tail.
    let mut live = Keyring::local(key());
    live.open_tail_ok = true;
    assert!(verify_lines(numbered("audit.log", &lines), &live).await.findings.is_empty());
}

#[tokio::test]
async fn a_chain_forged_from_zero_without_the_key() {
    // The forger knows the format and writes a perfect chain with checkpoints under a key of their own.
    let theirs: Arc<dyn ChainMac> = Arc::new(LocalChainMac::from_bytes(&[1u8; 32]).unwrap());
    let forger = MemoryAuditSink::with_mac(theirs.clone(), 4);
    for i in 0..5 {
        forger.write(record(i));
    }
    forger.checkpoint(CheckpointWhen::Now).await;
    let forged = forger.lines();
    // Their key id is not ours: nothing verifies.
    let report = verify(&forged).await;
    assert!(!only(&report, FindingKind::Unverifiable).is_empty(), "{:?}", report.findings);
    assert_eq!(only(&report, FindingKind::Unanchored).len(), 1);

    // Claiming our key id with their tag: the MAC does not verify, at the checkpoint's line.
    let ours = key().key_id().to_owned();
    let relabelled: Vec<String> = forged.iter().map(|l| l.replace(theirs.key_id(), &ours)).collect();
    let report = verify(&relabelled).await;
    let bad = only(&report, FindingKind::Forged);
    assert_eq!(bad.len(), 1, "{:?}", report.findings);
    assert_eq!(line_of(bad[0]), 6);
    assert_eq!(only(&report, FindingKind::Unanchored).len(), 1);

    // Without any checkpoint: the whole instance is unanchored.
    let report = verify(&forged[..5]).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::Unanchored);
}

#[tokio::test]
async fn an_instance_restarted_mid_stream_is_a_new_chain_not_a_finding() {
    let before = instance(6).await;
    let after = instance(3).await;
    let mut log = before.clone();
    log.extend(after.iter().cloned());
    let report = verify(&log).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.instances.len(), 2);
    assert_ne!(report.instances[0].instance_id, report.instances[1].instance_id);

    // Two instances interleaved (two concurrent Lambda instances in one bucket object) also verify.
    let mut mixed = Vec::new();
    for i in 0..before.len().max(after.len()) {
        mixed.extend(before.get(i).cloned());
        mixed.extend(after.get(i).cloned());
    }
    assert!(verify(&mixed).await.findings.is_empty());

    // A restart does not excuse the old instance's cut tail.
    let mut cut = before[..before.len() - 1].to_vec();
    cut.extend(after.iter().cloned());
    let report = verify(&cut).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::Unclosed);
    assert_eq!(line_of(&report.findings[0]), before.len() - 1);
}

#[tokio::test]
async fn duplicates_from_at_least_once_delivery_are_counted_not_found() {
    let mut lines = instance(4).await;
    lines.insert(2, lines[1].clone());
    let report = verify(&lines).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.duplicates, 1);
}

/// The child half of the crash test: writes an intent record on stdout, then dies as a panic=abort
/// release build does, without writing the final record.
#[test]
fn crash_child() {
    if std::env::var("AUDIT_CRASH_CHILD").is_err() {
        return;
    }
    let sink = StdoutAuditSink::default();
    let mut intent = record(1);
    intent.record_kind = RecordKind::Intent;
    intent.outcome = Outcome::Pending;
    intent.resources_read = Vec::new();
    sink.write(intent);
    std::process::abort();
}

#[test]
fn a_call_that_dies_after_its_reads_still_has_its_intent_record() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("AUDIT_CRASH_CHILD", "1")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child must die");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let intent = stdout
        .lines()
        .filter_map(shared::audit::verify::audit_json)
        .map(|(_, v)| v)
        .find(|v| v["record_kind"] == "intent")
        .expect("the intent record reached stdout before the crash");
    assert_eq!(intent["outcome"], "pending");
    assert_eq!(intent["seq"], 0);
    assert_eq!(intent["session_id"], "session-1");
}

#[tokio::test]
async fn a_logs_insights_export_verifies_like_the_raw_log() {
    let lines = instance(5).await;
    let exported: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::json!({"@timestamp": "2026-12-01 09:00:00.000", "@logStream": "s", "@message": l}).to_string()
        })
        .collect();
    assert!(verify(&exported).await.findings.is_empty());
    let mut cut = exported.clone();
    cut.remove(1);
    let report = verify(&cut).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, FindingKind::Missing);
}
