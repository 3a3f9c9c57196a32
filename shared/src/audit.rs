//! Audit records (schema version 2): one `intent` record when a call is first allowed, one `final` record
//! when it ends, written to stdout as their own record type so the log subscription routes them to the
//! audit store.
//!
//! Every line of a function instance carries the instance id, a sequence number and the SHA-256 of the
//! previous line of the instance; every so often a `checkpoint` line carries a keyed MAC (KMS `GenerateMac`
//! on AWS, a local HMAC key at home) over the chain head. A removed, edited or reordered record breaks the
//! chain or the sequence; a chain forged from zero has no valid checkpoint; a cut tail ends without one.
//! [`verify`] checks all of that.
//!
//! Records hold ids, roles, decisions, counts and timings: never names, note text or FHIR content.

pub mod mac;
pub mod verify;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::mac::{ChainMac, LocalChainMac, MacError, checkpoint_message};
use crate::authz::AuthzDecision;
use crate::error::ErrorKind;

/// The value of `record_type` that log routing matches on.
pub const RECORD_TYPE: &str = "tool_audit";
/// The version of the record layout documented in the README ("Audit").
pub const SCHEMA_VERSION: u32 = 2;
/// Records between two checkpoints when nothing else asks for one.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 64;

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub record_type: &'static str,
    pub schema_version: u32,
    /// `intent` (written at the first permit, before any downstream call), `final` (when the call ends) or
    /// `checkpoint` (a keyed MAC over the chain head, no call data).
    pub record_kind: RecordKind,
    pub timestamp: String,
    /// Random at cold start, prefixed by the Lambda log stream name when there is one: the chain's name.
    pub instance_id: String,
    /// Position of the line in its instance's chain, from 0, checkpoints included.
    pub seq: u64,
    /// The trace the call ran in (W3C form, 32 hex digits), to find its spans.
    pub trace_id: Option<String>,
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
    /// What an upstream did wrong that the reply does not say (`fhir_foreign_resource` and the resource).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstream_faults: Vec<crate::session::UpstreamFault>,
    /// `ok`, the error kind the caller saw, or `pending` (intent and checkpoint records).
    pub outcome: Outcome,
    pub latency_ms: u64,
    /// Hex SHA-256 of the previous line of this instance (zeros for the first).
    pub prev_hash: String,
    /// Checkpoints only: the chain head the MAC covers (equal to `prev_hash`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_head: Option<String>,
    /// Checkpoints only: hex MAC over [`checkpoint_message`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Checkpoints only: the key that made the MAC (a KMS key ARN, or `local:<fingerprint>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_key_id: Option<String>,
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
    Checkpoint,
}

/// Tool-specific facts of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A prior-auth draft was stored under this id, with the hash of the content the clinician reviews.
    PriorAuthDraft { draft_id: String, content_hash: String },
    /// A prior-auth draft was (or was to be) finalised: `attested` once the clinician's sign-off is on it;
    /// `content_hash` is the content the sign-off named; the override reason is pseudonymised (the
    /// clinician's own words stay sealed in the draft).
    PriorAuthFinalize {
        draft_id: String,
        attested: bool,
        content_hash: Option<String>,
        override_reason: Option<String>,
    },
}

impl AuditRecord {
    /// A record with who/what filled in later by the tool; outcome defaults to internal error so that a
    /// path that forgets to set it does not claim success. The sink fills in instance, sequence, chain and
    /// (when the caller left it empty) the trace id.
    pub fn new(function: &str, tool: &str, action: &str, envelope: &'static str, request_id: &str) -> Self {
        Self {
            record_type: RECORD_TYPE,
            schema_version: SCHEMA_VERSION,
            record_kind: RecordKind::Final,
            timestamp: String::new(),
            instance_id: String::new(),
            seq: 0,
            trace_id: None,
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
            upstream_faults: Vec::new(),
            outcome: Outcome::Error(ErrorKind::Internal),
            latency_ms: 0,
            prev_hash: String::new(),
            chain_head: None,
            mac: None,
            mac_key_id: None,
        }
    }
}

/// Why a checkpoint is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointWhen {
    /// Only if [`DEFAULT_CHECKPOINT_EVERY`] (or the sink's setting) records passed since the last one:
    /// cheap to call after every call.
    IfDue,
    /// Now, if any record is not yet covered: before the deadline, at shutdown.
    Now,
}

/// A boxed future, so that the sink stays usable as `dyn AuditSink`.
pub type CheckpointFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait AuditSink: Send + Sync {
    /// Writes the record at once (no I/O but the write itself): records are never held back for a MAC.
    fn write(&self, record: AuditRecord);

    /// Writes a keyed checkpoint over the chain head. Never fails: a MAC that cannot be made (key service
    /// down, timeout) leaves the records written and the checkpoint due, so the next one covers them.
    /// Bound the wait with a timeout; the MAC adapter bounds its own call too.
    fn checkpoint(&self, _when: CheckpointWhen) -> CheckpointFuture<'_> {
        Box::pin(async {})
    }
}

/// Random at cold start; prefixed with the log stream name on Lambda so records in the audit bucket can be
/// traced back to the stream (and the stream's platform lines) they came from.
pub fn new_instance_id() -> String {
    use aes_gcm::aead::OsRng;
    use aes_gcm::aead::rand_core::RngCore;
    let mut random = [0u8; 12];
    OsRng.fill_bytes(&mut random);
    let random = hex::encode(random);
    match std::env::var("AWS_LAMBDA_LOG_STREAM_NAME") {
        Ok(stream) if !stream.is_empty() => format!("{stream}#{random}"),
        _ => random,
    }
}

/// The hash of a line as the chain links it: SHA-256 of the exact JSON text (no newline), hex.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug)]
struct ChainState {
    next_seq: u64,
    head: String,
    since_checkpoint: u64,
    function: String,
}

/// The hash chain of one function instance.
#[derive(Debug)]
pub struct AuditChain {
    instance_id: String,
    state: Mutex<ChainState>,
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::with_instance_id(new_instance_id())
    }
}

impl AuditChain {
    pub fn with_instance_id(instance_id: String) -> Self {
        let state =
            ChainState { next_seq: 0, head: ZERO_HASH.to_owned(), since_checkpoint: 0, function: String::new() };
        Self { instance_id, state: Mutex::new(state) }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Stamps `record` with the instance, sequence number, time, trace id and previous hash, and returns its
    /// JSON line. The lock is held until `emit` has written the line, so lines reach the log in
    /// sequence order.
    pub fn seal_and(&self, record: AuditRecord, emit: impl FnOnce(&str)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let line = self.seal_locked(&mut state, record);
        emit(&line);
    }

    /// Like [`Self::seal_and`], returning the line (tests, benches).
    pub fn seal(&self, record: AuditRecord) -> String {
        let mut out = String::new();
        self.seal_and(record, |line| line.clone_into(&mut out));
        out
    }

    fn seal_locked(&self, state: &mut ChainState, mut record: AuditRecord) -> String {
        record.schema_version = SCHEMA_VERSION;
        self.instance_id.clone_into(&mut record.instance_id);
        record.seq = state.next_seq;
        record.prev_hash.clone_from(&state.head);
        if record.timestamp.is_empty() {
            record.timestamp = now_rfc3339();
        }
        if record.trace_id.is_none() && record.record_kind != RecordKind::Checkpoint {
            record.trace_id = crate::telemetry::current_trace_id();
        }
        if record.record_kind == RecordKind::Checkpoint {
            state.since_checkpoint = 0;
        } else {
            state.since_checkpoint += 1;
            if !record.function.is_empty() {
                record.function.clone_into(&mut state.function);
            }
        }
        // A record of strings, numbers and enums always serialises; the default is never reached.
        let line = serde_json::to_string(&record).unwrap_or_default();
        state.head = line_hash(&line);
        state.next_seq += 1;
        line
    }

    /// A checkpoint over the current head: the MAC is made without holding the lock, and the line is
    /// written only if no record slipped in meanwhile (the next checkpoint then covers it).
    async fn checkpoint_and(&self, mac: &dyn ChainMac, when: CheckpointWhen, every: u64, emit: impl FnOnce(&str)) {
        let (seq, head, function, timestamp) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let due = match when {
                CheckpointWhen::IfDue => state.since_checkpoint >= every,
                CheckpointWhen::Now => state.since_checkpoint > 0,
            };
            if !due {
                return;
            }
            (state.next_seq, state.head.clone(), state.function.clone(), now_rfc3339())
        };
        let message = checkpoint_message(&self.instance_id, seq, &timestamp, &head, mac.key_id());
        let tag = match mac.mac(&message).await {
            Ok(tag) => tag,
            Err(error) => {
                tracing::warn!(error = %error, seq, "audit checkpoint mac failed; records stay written, checkpoint stays due");
                return;
            }
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.next_seq != seq {
            return;
        }
        let mut record = AuditRecord::new(&function, "", "", "", "");
        record.record_kind = RecordKind::Checkpoint;
        record.outcome = Outcome::Pending;
        record.timestamp = timestamp;
        record.chain_head = Some(head);
        record.mac = Some(hex::encode(tag));
        record.mac_key_id = Some(mac.key_id().to_owned());
        let line = self.seal_locked(&mut state, record);
        emit(&line);
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Writes each record as one JSON line on stdout.
pub struct StdoutAuditSink {
    chain: AuditChain,
    mac: Option<Arc<dyn ChainMac>>,
    every: u64,
}

impl std::fmt::Debug for StdoutAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutAuditSink").field("instance_id", &self.chain.instance_id).finish_non_exhaustive()
    }
}

/// Chained but never checkpointed, which `audit verify` reports as `unanchored`; a deployment builds its sink
/// with [`StdoutAuditSink::with_mac`] from its settings (`shared_aws::config::Ports::audit_sink`).
impl Default for StdoutAuditSink {
    fn default() -> Self {
        Self { chain: AuditChain::default(), mac: None, every: DEFAULT_CHECKPOINT_EVERY }
    }
}

impl StdoutAuditSink {
    /// Checkpoints keyed by `mac` every `every` records (and whenever [`CheckpointWhen::Now`] is asked).
    pub fn with_mac(mac: Arc<dyn ChainMac>, every: u64) -> Self {
        Self { chain: AuditChain::default(), mac: Some(mac), every: every.max(1) }
    }

    pub fn instance_id(&self) -> &str {
        self.chain.instance_id()
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // A lost audit line must not go unnoticed: report on stderr (no content) if stdout fails.
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        tracing::error!("audit record could not be written");
    }
}

impl AuditSink for StdoutAuditSink {
    fn write(&self, record: AuditRecord) {
        self.chain.seal_and(record, print_line);
    }

    fn checkpoint(&self, when: CheckpointWhen) -> CheckpointFuture<'_> {
        Box::pin(async move {
            if let Some(mac) = &self.mac {
                self.chain.checkpoint_and(mac.as_ref(), when, self.every, print_line).await;
            }
        })
    }
}

/// Keeps records in memory: tests and benches.
pub struct MemoryAuditSink {
    chain: AuditChain,
    mac: Option<Arc<dyn ChainMac>>,
    every: u64,
    lines: Mutex<Vec<String>>,
}

impl std::fmt::Debug for MemoryAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAuditSink").field("instance_id", &self.chain.instance_id).finish_non_exhaustive()
    }
}

impl Default for MemoryAuditSink {
    fn default() -> Self {
        Self { chain: AuditChain::default(), mac: None, every: DEFAULT_CHECKPOINT_EVERY, lines: Mutex::default() }
    }
}

impl MemoryAuditSink {
    pub fn with_mac(mac: Arc<dyn ChainMac>, every: u64) -> Self {
        Self { mac: Some(mac), every: every.max(1), ..Self::default() }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn instance_id(&self) -> &str {
        self.chain.instance_id()
    }

    fn push(&self, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line.to_owned());
        }
    }
}

impl AuditSink for MemoryAuditSink {
    fn write(&self, record: AuditRecord) {
        self.chain.seal_and(record, |line| self.push(line));
    }

    fn checkpoint(&self, when: CheckpointWhen) -> CheckpointFuture<'_> {
        Box::pin(async move {
            if let Some(mac) = &self.mac {
                self.chain.checkpoint_and(mac.as_ref(), when, self.every, |line| self.push(line)).await;
            }
        })
    }
}

/// Checks one instance's lines, in order, for an unbroken chain; returns the index of the first break.
/// [`verify::verify_lines`] is the full check (instances, sequence, checkpoints).
pub fn verify_chain(lines: &[String]) -> Result<(), usize> {
    let mut prev = ZERO_HASH.to_owned();
    for (i, line) in lines.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|_| i)?;
        if value.get("prev_hash").and_then(|v| v.as_str()) != Some(prev.as_str()) {
            return Err(i);
        }
        prev = line_hash(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<dyn ChainMac> {
        Arc::new(LocalChainMac::from_bytes(&[7u8; 32]).unwrap())
    }

    #[test]
    fn chain_links_records_and_detects_tampering() {
        let sink = MemoryAuditSink::default();
        for i in 0..3 {
            sink.write(AuditRecord::new("f", "t", "a", "direct", &format!("req-{i}")));
        }
        let mut lines = sink.lines();
        assert_eq!(verify_chain(&lines), Ok(()));
        assert!(lines[0].contains(ZERO_HASH));
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
        assert_eq!(value["schema_version"], 2);
        assert_eq!(value["record_kind"], "final");
        assert_eq!(value["outcome"]["error"], "internal");
        assert!(value.get("mac").is_none(), "checkpoint fields stay off call records");
    }

    #[test]
    fn every_line_carries_instance_and_sequence() {
        let sink = MemoryAuditSink::default();
        sink.write(AuditRecord::new("f", "t", "a", "direct", "r1"));
        sink.write(AuditRecord::new("f", "t", "a", "direct", "r2"));
        let values: Vec<serde_json::Value> = sink.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(values[0]["seq"], 0);
        assert_eq!(values[1]["seq"], 1);
        assert_eq!(values[0]["instance_id"], sink.instance_id());
        assert_eq!(values[0]["instance_id"], values[1]["instance_id"]);
        assert_eq!(sink.instance_id().len(), 24);
        assert_ne!(MemoryAuditSink::default().instance_id(), sink.instance_id());
    }

    #[tokio::test]
    async fn checkpoints_come_when_due_or_asked_and_verify() {
        let sink = MemoryAuditSink::with_mac(key(), 3);
        sink.checkpoint(CheckpointWhen::Now).await;
        assert!(sink.lines().is_empty(), "nothing to cover yet");
        for i in 0..2 {
            sink.write(AuditRecord::new("f", "t", "a", "direct", &format!("r{i}")));
            sink.checkpoint(CheckpointWhen::IfDue).await;
        }
        assert_eq!(sink.lines().len(), 2);
        sink.write(AuditRecord::new("f", "t", "a", "direct", "r2"));
        sink.checkpoint(CheckpointWhen::IfDue).await;
        sink.checkpoint(CheckpointWhen::Now).await;
        let lines = sink.lines();
        assert_eq!(lines.len(), 4, "one checkpoint after three records, none for nothing new");
        let cp: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(cp["record_kind"], "checkpoint");
        assert_eq!(cp["seq"], 3);
        assert_eq!(cp["function"], "f");
        assert_eq!(cp["chain_head"], line_hash(&lines[2]));
        assert_eq!(cp["prev_hash"], cp["chain_head"]);
        assert!(cp["mac_key_id"].as_str().unwrap().starts_with("local:"));
        let report = verify::verify_lines(verify::numbered("mem", &lines), &verify::Keyring::local(key())).await;
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    struct FailingMac;
    impl ChainMac for FailingMac {
        fn key_id(&self) -> &str {
            "down"
        }
        fn mac<'a>(&'a self, _message: &'a [u8]) -> mac::MacFuture<'a> {
            Box::pin(async { Err(MacError::Unavailable) })
        }
        fn verify<'a>(&'a self, _message: &'a [u8], _tag: &'a [u8]) -> mac::VerifyFuture<'a> {
            Box::pin(async { Err(MacError::Unavailable) })
        }
    }

    #[tokio::test]
    async fn a_failed_mac_loses_no_record_and_stays_due() {
        let sink = MemoryAuditSink::with_mac(Arc::new(FailingMac), 1);
        sink.write(AuditRecord::new("f", "t", "a", "direct", "r0"));
        sink.checkpoint(CheckpointWhen::Now).await;
        sink.write(AuditRecord::new("f", "t", "a", "direct", "r1"));
        let lines = sink.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(verify_chain(&lines), Ok(()));
    }
}
