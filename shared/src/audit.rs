//! Audit records: one per tool call, written to stdout as their own record type so the log subscription
//! routes them to the audit store. Each carries the SHA-256 of the previous record of this function
//! instance, so a removed or edited record breaks the chain.
//!
//! Records hold ids, roles, decisions, counts and timings: never names, note text or FHIR content.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::authz::AuthzDecision;
use crate::error::ErrorKind;

/// The value of `record_type` that log routing matches on.
pub const RECORD_TYPE: &str = "tool_audit";

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub record_type: &'static str,
    pub schema_version: u32,
    /// `intent` (written at the first permit, before any downstream call) or `final` (when the call ends).
    pub record_kind: RecordKind,
    pub timestamp: String,
    pub function: String,
    pub tool: String,
    pub action: String,
    pub envelope: &'static str,
    pub session_id: Option<String>,
    pub request_id: String,
    pub subject: Option<String>,
    pub roles: Vec<&'static str>,
    pub organization: Option<String>,
    /// `Patient/<id>` of the patient concerned, once the id was valid.
    pub patient: Option<String>,
    /// The decision and the policies that made it; `None` when the call ended before a decision.
    pub decision: Option<AuthzDecision>,
    /// Relationship facts read to make the decision (reference elements only), as `Type/id`.
    pub relationship_reads: Vec<String>,
    /// Every clinical resource read to answer, as `Type/id`.
    pub resources_read: Vec<String>,
    pub break_glass: bool,
    /// The clinician's stated reason, kept for break-glass review; capped in length at the edge.
    pub break_glass_reason: Option<String>,
    /// The writer or model that produced prose, and what the guardrail did (`none` when no model ran).
    pub model: Option<String>,
    pub guardrail_action: Option<String>,
    /// What only one tool knows (a draft id, an attestation); absent for the others.
    pub detail: Option<Detail>,
    /// `ok`, or the error kind the caller saw.
    pub outcome: Outcome,
    pub latency_ms: u64,
    /// Hex SHA-256 of the previous record line of this instance (zeros for the first).
    pub prev_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error(ErrorKind),
    /// An intent record: the call was allowed and has not ended yet.
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Intent,
    #[default]
    Final,
}

/// Tool-specific facts of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A prior-auth draft was stored under this id.
    PriorAuthDraft { draft_id: String },
    /// A prior-auth draft was (or was to be) finalised: `attested` once the clinician's sign-off is on it.
    PriorAuthFinalize { draft_id: String, attested: bool, override_reason: Option<String> },
}

impl AuditRecord {
    /// A record with who/what filled in later by the tool; outcome defaults to internal error so that a
    /// path that forgets to set it does not claim success.
    pub fn new(function: &str, tool: &str, action: &str, envelope: &'static str, request_id: &str) -> Self {
        Self {
            record_type: RECORD_TYPE,
            schema_version: 1,
            record_kind: RecordKind::Final,
            timestamp: String::new(),
            function: function.to_owned(),
            tool: tool.to_owned(),
            action: action.to_owned(),
            envelope,
            session_id: None,
            request_id: request_id.to_owned(),
            subject: None,
            roles: Vec::new(),
            organization: None,
            patient: None,
            decision: None,
            relationship_reads: Vec::new(),
            resources_read: Vec::new(),
            break_glass: false,
            break_glass_reason: None,
            model: None,
            guardrail_action: None,
            detail: None,
            outcome: Outcome::Error(ErrorKind::Internal),
            latency_ms: 0,
            prev_hash: String::new(),
        }
    }
}

pub trait AuditSink: Send + Sync {
    fn write(&self, record: AuditRecord);
}

/// The hash chain of one function instance.
#[derive(Debug, Default)]
pub struct AuditChain {
    prev: Mutex<[u8; 32]>,
}

impl AuditChain {
    /// Stamps `record` with the time and the previous hash, and returns its JSON line.
    pub fn seal(&self, mut record: AuditRecord) -> String {
        let Ok(mut prev) = self.prev.lock() else { return String::new() };
        record.prev_hash = hex::encode(*prev);
        if record.timestamp.is_empty() {
            record.timestamp = now_rfc3339();
        }
        let line = serde_json::to_string(&record).unwrap_or_default();
        *prev = Sha256::digest(line.as_bytes()).into();
        line
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Writes each record as one JSON line on stdout.
#[derive(Debug, Default)]
pub struct StdoutAuditSink {
    chain: AuditChain,
}

impl AuditSink for StdoutAuditSink {
    fn write(&self, record: AuditRecord) {
        let line = self.chain.seal(record);
        let mut out = std::io::stdout().lock();
        // A lost audit line must not go unnoticed: report on stderr (no content) if stdout fails.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            tracing::error!("audit record could not be written");
        }
    }
}

/// Keeps records in memory: tests and benches.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    chain: AuditChain,
    lines: Mutex<Vec<String>>,
}

impl MemoryAuditSink {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl AuditSink for MemoryAuditSink {
    fn write(&self, record: AuditRecord) {
        let line = self.chain.seal(record);
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }
}

/// Checks a sequence of record lines for an unbroken chain; returns the index of the first break.
pub fn verify_chain(lines: &[String]) -> Result<(), usize> {
    let mut prev = [0u8; 32];
    for (i, line) in lines.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|_| i)?;
        if value.get("prev_hash").and_then(|v| v.as_str()) != Some(hex::encode(prev).as_str()) {
            return Err(i);
        }
        prev = Sha256::digest(line.as_bytes()).into();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_links_records_and_detects_tampering() {
        let sink = MemoryAuditSink::default();
        for i in 0..3 {
            sink.write(AuditRecord::new("f", "t", "a", "direct", &format!("req-{i}")));
        }
        let mut lines = sink.lines();
        assert_eq!(verify_chain(&lines), Ok(()));
        assert!(lines[0].contains(&"0".repeat(64)));
        lines[1] = lines[1].replace("req-1", "req-X");
        assert_eq!(verify_chain(&lines), Err(2));
        lines.remove(1);
        assert_eq!(verify_chain(&lines), Err(1));
    }

    #[test]
    fn record_type_is_routable() {
        let line = AuditChain::default().seal(AuditRecord::new("f", "t", "a", "direct", "r"));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["record_type"], RECORD_TYPE);
        assert_eq!(value["outcome"]["error"], "internal");
    }
}
