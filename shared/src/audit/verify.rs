//! `audit verify`: groups audit lines by instance, then checks, per instance, the sequence (gaps,
//! reordering), the hash chain (edits) and the checkpoints (MAC, coverage of the tail).
//!
//! Lines are checked in the order they are given (file order, then line order), because a swap that keeps
//! every hash intact is only visible as a sequence number out of place. Identical lines are counted once:
//! Firehose delivers at least once, so a duplicate is a note, not a finding.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::mac::{ChainMac, checkpoint_message};
use super::{RECORD_TYPE, ZERO_HASH, line_hash};

/// Where a line was read: a file path or an S3 key, and its line number from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub source: String,
    pub line: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// A line as read, before it is known to be an audit record.
#[derive(Debug, Clone)]
pub struct Located {
    pub position: Position,
    pub text: String,
}

/// Numbers `lines` from 1 under `source`.
pub fn numbered(source: &str, lines: &[String]) -> Vec<Located> {
    lines
        .iter()
        .enumerate()
        .map(|(i, text)| Located { position: Position { source: source.to_owned(), line: i + 1 }, text: text.clone() })
        .collect()
}

/// The audit record JSON inside a log line, if it is one: the emulator and some log pipelines prefix the
/// function's output, so the record starts at the first brace; a Logs Insights export wraps it in
/// `{"@message": "..."}`. The text returned is exactly what the chain hashed.
pub fn audit_json(line: &str) -> Option<(Cow<'_, str>, serde_json::Value)> {
    let start = line.find('{')?;
    let text = line[start..].trim_end();
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("record_type").and_then(|v| v.as_str()) == Some(RECORD_TYPE) {
        return Some((Cow::Borrowed(text), value));
    }
    let inner = value.get("@message").and_then(|v| v.as_str())?.trim_end().to_owned();
    let value: serde_json::Value = serde_json::from_str(&inner).ok()?;
    (value.get("record_type").and_then(|v| v.as_str()) == Some(RECORD_TYPE)).then_some((Cow::Owned(inner), value))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Sequence numbers absent from the instance's chain.
    Missing,
    /// A line whose hash is not what the next line's `prev_hash` says, or two different lines with one seq.
    Edited,
    /// A line that comes after a line with a higher sequence number.
    Reordered,
    /// A checkpoint whose MAC does not verify, or that does not anchor the line before it.
    Forged,
    /// An instance with records but no valid checkpoint at all: nothing proves the key holder wrote it.
    Unanchored,
    /// Records after the last valid checkpoint: the tail may have been cut after them.
    Unclosed,
    /// A checkpoint made under a key the verifier does not hold, or a check that could not be made.
    Unverifiable,
    /// A line that claims to be an audit record but lacks the v2 chain fields.
    Unreadable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub instance_id: String,
    pub seq: Option<u64>,
    pub position: Option<Position>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceSummary {
    pub instance_id: String,
    pub records: usize,
    pub checkpoints: usize,
    pub first: Position,
    pub last: Position,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub records: usize,
    pub duplicates: usize,
    /// Version-1 records (no instance or sequence): listed, not checkable.
    pub legacy_records: usize,
    pub instances: Vec<InstanceSummary>,
    pub findings: Vec<Finding>,
}

/// The MAC keys the verifier may use, by `mac_key_id`.
#[derive(Default, Clone)]
pub struct Keyring {
    keys: Vec<Arc<dyn ChainMac>>,
    /// A tail after the last checkpoint is expected (a live log): reported as `unclosed` only when false.
    pub open_tail_ok: bool,
}

impl Keyring {
    pub fn local(key: Arc<dyn ChainMac>) -> Self {
        Self { keys: vec![key], open_tail_ok: false }
    }

    pub fn with(mut self, key: Arc<dyn ChainMac>) -> Self {
        self.keys.push(key);
        self
    }

    fn find(&self, key_id: &str) -> Option<&dyn ChainMac> {
        self.keys.iter().find(|k| k.key_id() == key_id).map(|k| k.as_ref())
    }
}

struct Line {
    position: Position,
    hash: String,
    seq: u64,
    prev_hash: String,
    checkpoint: Option<Checkpoint>,
}

struct Checkpoint {
    timestamp: String,
    chain_head: Option<String>,
    mac: Option<String>,
    mac_key_id: Option<String>,
}

fn text_field(value: &serde_json::Value, name: &str) -> Option<String> {
    value.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

/// Checks every instance found in `lines`.
pub async fn verify_lines(lines: Vec<Located>, keys: &Keyring) -> Report {
    let mut report = Report::default();
    let mut seen = HashSet::new();
    let mut order: Vec<String> = Vec::new();
    let mut instances: HashMap<String, Vec<Line>> = HashMap::new();
    for located in lines {
        let Some((text, value)) = audit_json(&located.text) else { continue };
        report.records += 1;
        let hash = line_hash(&text);
        if !seen.insert(hash.clone()) {
            report.duplicates += 1;
            continue;
        }
        if value.get("schema_version").and_then(serde_json::Value::as_u64) == Some(1) {
            report.legacy_records += 1;
            continue;
        }
        let (Some(instance_id), Some(seq), Some(prev_hash)) = (
            text_field(&value, "instance_id"),
            value.get("seq").and_then(serde_json::Value::as_u64),
            text_field(&value, "prev_hash"),
        ) else {
            report.findings.push(Finding {
                kind: FindingKind::Unreadable,
                instance_id: text_field(&value, "instance_id").unwrap_or_default(),
                seq: None,
                position: Some(located.position),
                detail: "an audit line without `instance_id`, `seq` or `prev_hash`".to_owned(),
            });
            continue;
        };
        let checkpoint =
            (value.get("record_kind").and_then(|v| v.as_str()) == Some("checkpoint")).then(|| Checkpoint {
                timestamp: text_field(&value, "timestamp").unwrap_or_default(),
                chain_head: text_field(&value, "chain_head"),
                mac: text_field(&value, "mac"),
                mac_key_id: text_field(&value, "mac_key_id"),
            });
        if !instances.contains_key(&instance_id) {
            order.push(instance_id.clone());
        }
        instances.entry(instance_id).or_default().push(Line {
            position: located.position,
            hash,
            seq,
            prev_hash,
            checkpoint,
        });
    }
    for instance_id in order {
        let Some(lines) = instances.remove(&instance_id) else { continue };
        verify_instance(&instance_id, &lines, keys, &mut report).await;
    }
    report
}

async fn verify_instance(instance_id: &str, lines: &[Line], keys: &Keyring, report: &mut Report) {
    let finding = |kind, seq: Option<u64>, position: Option<&Position>, detail: String| Finding {
        kind,
        instance_id: instance_id.to_owned(),
        seq,
        position: position.cloned(),
        detail,
    };
    let mut findings = Vec::new();

    // Order as read: a line after a higher sequence number was moved.
    let mut highest: Option<&Line> = None;
    for line in lines {
        match highest {
            Some(top) if line.seq < top.seq => findings.push(finding(
                FindingKind::Reordered,
                Some(line.seq),
                Some(&line.position),
                format!("seq {} comes after seq {} (at {})", line.seq, top.seq, top.position),
            )),
            _ => highest = Some(line),
        }
    }

    let mut by_seq: BTreeMap<u64, &Line> = BTreeMap::new();
    for line in lines {
        if let Some(other) = by_seq.get(&line.seq) {
            findings.push(finding(
                FindingKind::Edited,
                Some(line.seq),
                Some(&line.position),
                format!("a second, different line with seq {} (first at {})", line.seq, other.position),
            ));
            continue;
        }
        by_seq.insert(line.seq, line);
    }

    // Gaps, reported as ranges before the next line present.
    let mut expected = 0u64;
    for (&seq, line) in &by_seq {
        if seq > expected {
            let range =
                if seq - 1 == expected { format!("seq {expected}") } else { format!("seq {expected}..={}", seq - 1) };
            findings.push(finding(
                FindingKind::Missing,
                Some(expected),
                Some(&line.position),
                format!("{range} missing before this line (seq {seq})"),
            ));
        }
        expected = seq + 1;
    }

    // The chain, in sequence order: a line whose hash is not the next line's prev_hash was edited.
    for (&seq, line) in &by_seq {
        if seq == 0 {
            if line.prev_hash != ZERO_HASH {
                findings.push(finding(
                    FindingKind::Edited,
                    Some(0),
                    Some(&line.position),
                    "the first line of the instance does not start the chain from zeros".to_owned(),
                ));
            }
            continue;
        }
        let Some(before) = by_seq.get(&(seq - 1)) else { continue };
        if before.hash != line.prev_hash {
            findings.push(finding(
                FindingKind::Edited,
                Some(seq - 1),
                Some(&before.position),
                format!(
                    "this line (seq {}) does not hash to the `prev_hash` of seq {seq} (at {}): one of them was edited",
                    seq - 1,
                    line.position
                ),
            ));
        }
    }

    // Checkpoints: each must anchor the line before it under a key we hold.
    let mut last_valid: Option<&Line> = None;
    let mut checkpoints = 0;
    for line in by_seq.values().copied() {
        let Some(cp) = &line.checkpoint else { continue };
        checkpoints += 1;
        let forged = |why: &str| finding(FindingKind::Forged, Some(line.seq), Some(&line.position), why.to_owned());
        let (Some(head), Some(tag_hex), Some(key_id)) = (&cp.chain_head, &cp.mac, &cp.mac_key_id) else {
            findings.push(forged("a checkpoint without `chain_head`, `mac` or `mac_key_id`"));
            continue;
        };
        if *head != line.prev_hash {
            findings.push(forged("the checkpoint's `chain_head` is not its `prev_hash`"));
            continue;
        }
        let Some(key) = keys.find(key_id) else {
            findings.push(finding(
                FindingKind::Unverifiable,
                Some(line.seq),
                Some(&line.position),
                format!("no key for `mac_key_id` `{key_id}`"),
            ));
            continue;
        };
        let Ok(tag) = hex::decode(tag_hex) else {
            findings.push(forged("the checkpoint's `mac` is not hex"));
            continue;
        };
        let message = checkpoint_message(instance_id, line.seq, &cp.timestamp, head, key_id);
        match key.verify(&message, &tag).await {
            Ok(true) => last_valid = Some(line),
            Ok(false) => findings.push(forged("the checkpoint's MAC does not verify: not made with the key")),
            Err(error) => findings.push(finding(
                FindingKind::Unverifiable,
                Some(line.seq),
                Some(&line.position),
                format!("the MAC could not be checked: {error}"),
            )),
        }
    }

    // Coverage: every line must be followed by a valid checkpoint, or the tail may have been cut.
    let last = by_seq.values().next_back();
    match (last_valid, last) {
        (None, Some(last)) => findings.push(finding(
            FindingKind::Unanchored,
            None,
            Some(&last.position),
            format!("no valid checkpoint covers any of the {} line(s) of this instance", by_seq.len()),
        )),
        (Some(anchor), Some(last)) if last.seq > anchor.seq && !keys.open_tail_ok => findings.push(finding(
            FindingKind::Unclosed,
            Some(last.seq),
            Some(&last.position),
            format!(
                "{} line(s) after the last valid checkpoint (seq {} at {}): the tail may have been cut after this line",
                last.seq - anchor.seq,
                anchor.seq,
                anchor.position
            ),
        )),
        _ => {}
    }

    if let (Some(first), Some(last)) = (lines.first(), lines.last()) {
        report.instances.push(InstanceSummary {
            instance_id: instance_id.to_owned(),
            records: lines.len(),
            checkpoints,
            first: first.position.clone(),
            last: last.position.clone(),
        });
    }
    report.findings.extend(findings);
}
