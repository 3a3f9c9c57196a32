//! `audit session` and `audit verify` through the binary, on a log written by the real sink (with the
//! emulator's prefixes and other sessions' records mixed in) and a journal holding several sessions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use shared::audit::{
    AuditRecord, AuditSink, ChainMac, CheckpointWhen, LocalChainMac, MemoryAuditSink, Outcome, RecordKind,
};
use shared::authz::AuthzDecision;

const SESSION: &str = "demo-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
const OTHER: &str = "demo-other-session-0000000000000000000000";
const KEY_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

fn call(session: &str, request: &str, kind: RecordKind, reads: &[&str]) -> AuditRecord {
    let mut r = AuditRecord::new("patient-summary", "patient_summary", "summarize", "direct", request);
    r.record_kind = kind;
    r.session_id = Some(session.to_owned());
    r.subject = Some("dr-alvarez".to_owned());
    r.roles = vec!["clinician"];
    r.patient = Some("Patient/p1".to_owned());
    r.decision = Some(AuthzDecision { allowed: true, policies: vec!["clinician-care-team".to_owned()], errors: 0 });
    r.relationship_reads = vec!["Patient/p1".to_owned()];
    r.resources_read = reads.iter().map(|s| (*s).to_owned()).collect();
    r.outcome = if kind == RecordKind::Intent { Outcome::Pending } else { Outcome::Ok };
    r
}

fn journal_entry(session: Option<&str>, request: &str, path: &str) -> serde_json::Value {
    serde_json::json!({"method": "GET", "path": path, "query": "_count=20", "session_id": session, "request_id": request, "body": null})
}

async fn fixture(dir: &Path) {
    let key: Arc<dyn ChainMac> = Arc::new(LocalChainMac::from_hex(KEY_HEX).unwrap());
    let sink = MemoryAuditSink::with_mac(key, 64);
    sink.write(call(SESSION, "req-a", RecordKind::Intent, &[]));
    sink.write(call(OTHER, "req-x", RecordKind::Intent, &[]));
    sink.write(call(SESSION, "req-a", RecordKind::Final, &["Condition/c1", "Observation/o1"]));
    sink.write(call(OTHER, "req-x", RecordKind::Final, &["Condition/c9"]));
    // A call that died after its reads: only its intent record exists.
    sink.write(call(SESSION, "req-b", RecordKind::Intent, &[]));
    sink.checkpoint(CheckpointWhen::Now).await;
    let mut log = String::from("Running `target/debug/patient-summary`\n");
    for (i, line) in sink.lines().iter().enumerate() {
        // The emulator prefixes some lines; tracing's JSON logs sit between the records.
        if i % 2 == 0 {
            log.push_str(&format!("  patient-summary  {line}\n"));
        } else {
            log.push_str(&format!("{line}\n"));
        }
        log.push_str(&format!(
            "{{\"level\":\"INFO\",\"fields\":{{\"message\":\"tool call finished\"}},\"session_id\":\"{SESSION}\"}}\n"
        ));
    }
    std::fs::write(dir.join("lambda.log"), log).unwrap();
    let journal = serde_json::json!({"requests": [
        journal_entry(Some(SESSION), "req-a", "/fhir/Patient/p1"),
        journal_entry(Some(OTHER), "req-x", "/fhir/Condition"),
        journal_entry(Some(SESSION), "req-a", "/fhir/Condition"),
        journal_entry(None, "req-z", "/fhir/metadata"),
        journal_entry(Some(SESSION), "req-b", "/fhir/Observation"),
        journal_entry(Some(&SESSION[..SESSION.len() - 1]), "req-a", "/fhir/Encounter"),
        journal_entry(Some(SESSION), "req-unknown", "/fhir/MedicationRequest"),
    ]});
    std::fs::write(dir.join("journal.json"), journal.to_string()).unwrap();
    std::fs::write(dir.join("key"), KEY_HEX).unwrap();
}

fn audit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audit")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("audit-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn session_shows_exactly_the_sessions_fhir_requests() {
    let dir = tempdir("session");
    fixture(&dir).await;
    let log = dir.join("lambda.log");
    let journal = dir.join("journal.json");
    let (code, out) =
        audit(&["session", SESSION, "--json", "--log", log.to_str().unwrap(), "--journal", journal.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let timeline: serde_json::Value = serde_json::from_str(&out).unwrap();
    let calls = timeline["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["request_id"], "req-a");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[0]["resources_read"], serde_json::json!(["Condition/c1", "Observation/o1"]));
    assert_eq!(calls[0]["policies"], serde_json::json!(["clinician-care-team"]));
    assert_eq!(calls[0]["intent_record"], true);
    assert_eq!(calls[0]["final_record"], true);
    assert_eq!(calls[1]["request_id"], "req-b");
    assert_eq!(calls[1]["outcome"], "died");

    // Every journaled request of the session, and nothing of another session (a prefix is another session).
    let mut paths: Vec<String> = calls
        .iter()
        .flat_map(|c| c["fhir_requests"].as_array().unwrap().iter())
        .chain(timeline["unattributed_fhir_requests"].as_array().unwrap().iter())
        .map(|r| format!("{} {}", r["request_id"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "req-a /fhir/Condition",
            "req-a /fhir/Patient/p1",
            "req-b /fhir/Observation",
            "req-unknown /fhir/MedicationRequest"
        ]
    );
    assert_eq!(timeline["fhir_requests_total"], 4);
    assert_eq!(timeline["unattributed_fhir_requests"][0]["path"], "/fhir/MedicationRequest");
    assert!(!out.contains(OTHER) && !out.contains("Condition/c9") && !out.contains("/fhir/Encounter"));

    let (code, text) =
        audit(&["session", SESSION, "--log", log.to_str().unwrap(), "--journal", journal.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(text.contains("intent only: the call died before its final record"), "{text}");
    assert!(text.contains("decision: permit by [clinician-care-team]"), "{text}");

    let (code, _) = audit(&["session", "no-such-session", "--log", log.to_str().unwrap(), "--journal", "none"]);
    assert_eq!(code, 3, "an unknown session is not a success");
}

#[tokio::test]
async fn verify_exit_code_follows_the_findings() {
    let dir = tempdir("verify");
    fixture(&dir).await;
    let log = dir.join("lambda.log");
    let key = dir.join("key");
    let (code, out) = audit(&["verify", log.to_str().unwrap(), "--key-file", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 finding(s)"), "{out}");

    // Without the key nothing is proven.
    let (code, out) = audit(&["verify", log.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");

    // One record deleted from the file: found, with its line.
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"seq\":2,")).collect();
    std::fs::write(&log, kept.join("\n")).unwrap();
    let (code, out) = audit(&["verify", log.to_str().unwrap(), "--key-file", key.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{out}");
    assert_eq!(findings[0]["kind"], "missing");
    assert_eq!(findings[0]["seq"], 2);
    assert_eq!(findings[0]["position"]["line"], 7, "reported at the line of seq 3, after the gap");
}
