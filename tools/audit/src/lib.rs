//! The `audit` command's library: a session's timeline built from audit records, the FHIR server's request
//! journal and exported spans, and the reading of those sources.
//!
//! The timeline joins on what every hop carries: the session id (audit records, the `x-session-id` header
//! the journal keeps, the `session.id` span attribute) and, within a session, the request id of each call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use shared::audit::verify::{Located, Position, audit_json};

pub mod aws;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("`{0}` could not be read")]
    Read(String),
    #[error("the FHIR journal could not be fetched or parsed")]
    Journal,
    #[error("the spans file `{0}` could not be read")]
    Spans(String),
    #[error("CloudWatch Logs: {0}")]
    Logs(String),
    #[error("the session id is not a valid session id")]
    SessionId,
}

/// One FHIR request as the local server journals it (`GET /__journal`); extra fields are ignored.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JournalEntry {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Journal {
    requests: Vec<JournalEntry>,
}

/// Parses the journal's JSON answer.
pub fn parse_journal(text: &str) -> Result<Vec<JournalEntry>, AuditError> {
    serde_json::from_str::<Journal>(text).map(|j| j.requests).map_err(|_| AuditError::Journal)
}

/// A span of the session, from a file of OTLP/JSON export requests (see [`read_spans`]).
#[derive(Debug, Clone, Serialize)]
pub struct SpanLine {
    pub trace_id: String,
    pub name: String,
    pub duration_ms: f64,
    pub request_id: Option<String>,
}

/// Every line of the files under `paths` (a directory: its files, sorted by name, so time-named bucket
/// objects come in order), each with its position. A line that is a CloudWatch Logs subscription envelope (what
/// the audit Firehose writes to the bucket: `{"logGroup", "logStream", "logEvents": [{"message"}]}`) gives one
/// line per event, its message exactly as the function wrote it, positioned `file[event n]:line`.
pub fn read_lines(paths: &[PathBuf]) -> Result<Vec<Located>, AuditError> {
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files)?;
    }
    let mut out = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|_| AuditError::Read(file.display().to_string()))?;
        let bytes = gunzip_if_gzip(bytes).map_err(|_| AuditError::Read(file.display().to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let source = file.display().to_string();
        for (i, line) in text.lines().enumerate() {
            match envelope_messages(line) {
                Some(messages) => out.extend(messages.into_iter().enumerate().map(|(n, message)| Located {
                    position: Position { source: format!("{source}[event {}]", n + 1), line: i + 1 },
                    text: message,
                })),
                None => out.push(Located {
                    position: Position { source: source.clone(), line: i + 1 },
                    text: line.to_owned(),
                }),
            }
        }
    }
    Ok(out)
}

/// Bucket objects as Firehose delivered them are gzip (RFC 1952, possibly several members): inflated; any
/// other file as it is.
fn gunzip_if_gzip(bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice()).read_to_end(&mut out)?;
    Ok(out)
}

/// The event messages of a CloudWatch Logs subscription envelope ("Using CloudWatch Logs subscription filters":
/// `messageType`, `logGroup`, `logStream`, `logEvents[].message`), or `None` for any other line.
fn envelope_messages(line: &str) -> Option<Vec<String>> {
    if !line.contains("\"logEvents\"") {
        return None;
    }
    let envelope: Value = serde_json::from_str(line.trim()).ok()?;
    let events = envelope.get("logEvents")?.as_array()?;
    Some(events.iter().filter_map(|e| e.get("message")?.as_str().map(str::to_owned)).collect())
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), AuditError> {
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|_| AuditError::Read(path.display().to_string()))?;
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            collect_files(&child, out)?;
        }
        Ok(())
    } else if path.is_file() {
        out.push(path.to_owned());
        Ok(())
    } else {
        Err(AuditError::Read(path.display().to_string()))
    }
}

/// Spans of `session_id` from a local trace file: OTLP/JSON export requests, one per line, as the functions
/// write them (`OTEL_TRACES_EXPORTER=file`) and as an OpenTelemetry Collector's file exporter does. Lines that
/// are not export requests are skipped.
pub fn read_spans(path: &Path, session_id: &str) -> Result<Vec<SpanLine>, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|_| AuditError::Spans(path.display().to_string()))?;
    let mut spans = Vec::new();
    for line in text.lines() {
        let Ok(request) = serde_json::from_str::<Value>(line) else { continue };
        let scopes = request["resourceSpans"].as_array().into_iter().flatten();
        let all = scopes.flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten());
        for span in all.flat_map(|s| s["spans"].as_array().into_iter().flatten()) {
            if otlp_attribute(span, "session.id") != Some(session_id) {
                continue;
            }
            // OTLP/JSON carries 64-bit integers as decimal strings.
            let nanos = |name: &str| span[name].as_str().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            spans.push(SpanLine {
                trace_id: span["traceId"].as_str().unwrap_or_default().to_owned(),
                name: span["name"].as_str().unwrap_or_default().to_owned(),
                duration_ms: std::time::Duration::from_nanos(
                    nanos("endTimeUnixNano").saturating_sub(nanos("startTimeUnixNano")),
                )
                .as_secs_f64()
                    * 1000.0,
                request_id: otlp_attribute(span, "faas.invocation_id").map(str::to_owned),
            });
        }
    }
    Ok(spans)
}

/// A string attribute of an OTLP/JSON span (`attributes: [{key, value: {stringValue}}]`).
fn otlp_attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"]["stringValue"].as_str()
}

/// One tool call of the session: its intent and final records, merged.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub request_id: String,
    pub started: String,
    pub function: String,
    pub tool: String,
    pub action: String,
    pub subject: Option<String>,
    pub roles: Vec<String>,
    pub organization: Option<String>,
    pub patient: Option<String>,
    pub allowed: Option<bool>,
    pub policies: Vec<String>,
    pub relationship_reads: Vec<String>,
    pub resources_read: Vec<String>,
    pub break_glass: bool,
    pub model: Option<String>,
    pub guardrail_action: Option<String>,
    /// `ok`, an error kind, or `died` when only the intent record exists.
    pub outcome: String,
    pub latency_ms: Option<u64>,
    pub trace_id: Option<String>,
    pub intent_record: bool,
    pub final_record: bool,
    /// The FHIR requests the server journaled for this call (matched on session and request id).
    pub fhir_requests: Vec<JournalEntry>,
    pub spans: Vec<SpanLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub session_id: String,
    pub calls: Vec<Call>,
    /// Journaled requests of this session that no audit record accounts for (a call without a record).
    pub unattributed_fhir_requests: Vec<JournalEntry>,
    pub fhir_requests_total: usize,
}

fn strings(value: &Value, name: &str) -> Vec<String> {
    value
        .get(name)
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

fn text(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn outcome(value: &Value) -> String {
    match value.get("outcome") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("error").and_then(Value::as_str).unwrap_or("error").to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The session's audit records from log lines: only `tool_audit` records whose `session_id` is exactly
/// `session_id`.
pub fn session_records(lines: &[Located], session_id: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| audit_json(&l.text).map(|(_, v)| v))
        .filter(|v| v.get("session_id").and_then(Value::as_str) == Some(session_id))
        .collect()
}

/// Merges the records, journal entries and spans of one session into calls, in the order they started.
pub fn timeline(session_id: &str, records: &[Value], journal: &[JournalEntry], spans: &[SpanLine]) -> Timeline {
    let mut calls: BTreeMap<String, Call> = BTreeMap::new();
    for record in records {
        if record.get("session_id").and_then(Value::as_str) != Some(session_id) {
            continue;
        }
        let request_id = text(record, "request_id").unwrap_or_default();
        let is_intent = record.get("record_kind").and_then(Value::as_str) == Some("intent");
        let call = calls.entry(request_id.clone()).or_insert_with(|| Call {
            request_id,
            started: String::new(),
            function: String::new(),
            tool: String::new(),
            action: String::new(),
            subject: None,
            roles: Vec::new(),
            organization: None,
            patient: None,
            allowed: None,
            policies: Vec::new(),
            relationship_reads: Vec::new(),
            resources_read: Vec::new(),
            break_glass: false,
            model: None,
            guardrail_action: None,
            outcome: "died".to_owned(),
            latency_ms: None,
            trace_id: None,
            intent_record: false,
            final_record: false,
            fhir_requests: Vec::new(),
            spans: Vec::new(),
        });
        let timestamp = text(record, "timestamp").unwrap_or_default();
        if call.started.is_empty() || timestamp < call.started {
            call.started = timestamp;
        }
        if is_intent {
            call.intent_record = true;
            if call.final_record {
                continue;
            }
        } else {
            call.final_record = true;
            call.outcome = outcome(record);
            call.latency_ms = record.get("latency_ms").and_then(Value::as_u64);
        }
        // The final record knows everything the intent knew and more; an intent alone still names the caller.
        call.function = text(record, "function").unwrap_or_default();
        call.tool = text(record, "tool").unwrap_or_default();
        call.action = text(record, "action").unwrap_or_default();
        call.subject = text(record, "subject");
        call.roles = strings(record, "roles");
        call.organization = text(record, "organization");
        call.patient = text(record, "patient");
        let decision = record.get("decision");
        call.allowed = decision.and_then(|d| d.get("allowed")).and_then(Value::as_bool);
        call.policies = decision.map(|d| strings(d, "policies")).unwrap_or_default();
        call.relationship_reads = strings(record, "relationship_reads");
        call.resources_read = strings(record, "resources_read");
        call.break_glass = record.get("break_glass").and_then(Value::as_bool).unwrap_or(false);
        call.model = text(record, "model");
        call.guardrail_action = text(record, "guardrail_action");
        call.trace_id = text(record, "trace_id").filter(|t| !t.is_empty());
    }

    let mine: Vec<&JournalEntry> = journal.iter().filter(|e| e.session_id.as_deref() == Some(session_id)).collect();
    let mut unattributed = Vec::new();
    for entry in &mine {
        match entry.request_id.as_deref().and_then(|id| calls.get_mut(id)) {
            Some(call) => call.fhir_requests.push((*entry).clone()),
            None => unattributed.push((*entry).clone()),
        }
    }
    for span in spans {
        let by_request = span.request_id.as_deref().and_then(|id| calls.get_mut(id));
        if let Some(call) = by_request {
            call.spans.push(span.clone());
        }
    }
    let mut calls: Vec<Call> = calls.into_values().collect();
    calls.sort_by(|a, b| a.started.cmp(&b.started));
    Timeline {
        session_id: session_id.to_owned(),
        calls,
        unattributed_fhir_requests: unattributed,
        fhir_requests_total: mine.len(),
    }
}

fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

/// The timeline for people: one block per call.
pub fn render(timeline: &Timeline) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "session {}: {} call(s), {} FHIR request(s)",
        timeline.session_id,
        timeline.calls.len(),
        timeline.fhir_requests_total
    );
    for (i, call) in timeline.calls.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n{}. {} {} {}/{} (request {})",
            i + 1,
            call.started,
            call.function,
            call.tool,
            call.action,
            call.request_id
        );
        let _ = writeln!(
            out,
            "   caller: {} roles [{}] org {}",
            or_dash(call.subject.as_deref()),
            call.roles.join(", "),
            or_dash(call.organization.as_deref())
        );
        let decision = match call.allowed {
            Some(true) => "permit",
            Some(false) => "deny",
            None => "no decision",
        };
        let _ = writeln!(
            out,
            "   decision: {decision} by [{}]{}",
            call.policies.join(", "),
            if call.break_glass { " (break-glass)" } else { "" }
        );
        let _ = writeln!(out, "   patient: {}", or_dash(call.patient.as_deref()));
        let _ = writeln!(out, "   relationship reads: [{}]", call.relationship_reads.join(", "));
        let _ = writeln!(out, "   resources read: [{}]", call.resources_read.join(", "));
        let _ = writeln!(
            out,
            "   model: {} guardrail: {}",
            or_dash(call.model.as_deref()),
            or_dash(call.guardrail_action.as_deref())
        );
        let latency = call.latency_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
        let records = match (call.intent_record, call.final_record) {
            (true, true) => "intent + final",
            (true, false) => "intent only: the call died before its final record",
            (false, true) => "final",
            (false, false) => "none",
        };
        let _ = writeln!(out, "   outcome: {} latency: {latency} records: {records}", call.outcome);
        if let Some(trace) = &call.trace_id {
            let _ = writeln!(out, "   trace: {trace} ({} span(s))", call.spans.len());
        }
        for span in &call.spans {
            let _ = writeln!(out, "     span {} {:.1} ms", span.name, span.duration_ms);
        }
        let _ = writeln!(out, "   FHIR requests ({}):", call.fhir_requests.len());
        for request in &call.fhir_requests {
            let _ = writeln!(
                out,
                "     {} {}{}{}",
                request.method,
                request.path,
                if request.query.is_empty() { "" } else { "?" },
                request.query
            );
        }
    }
    if !timeline.unattributed_fhir_requests.is_empty() {
        let _ = writeln!(
            out,
            "\nFHIR requests of this session with no audit record ({}):",
            timeline.unattributed_fhir_requests.len()
        );
        for request in &timeline.unattributed_fhir_requests {
            let _ = writeln!(
                out,
                "  {} {} (request {})",
                request.method,
                request.path,
                or_dash(request.request_id.as_deref())
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_envelopes_give_their_events_as_lines() {
        let dir = std::env::temp_dir().join(format!("audit-envelopes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let record = r#"{"record_type":"tool_audit","session_id":"s-1","request_id":"r1","seq":0}"#;
        let envelope = serde_json::json!({"messageType": "DATA_MESSAGE", "logGroup": "/aws/lambda/x",
            "logStream": "2026/12/01/[$LATEST]abc",
            "logEvents": [{"id": "1", "timestamp": 1, "message": record}, {"id": "2", "timestamp": 2, "message": "other"}]});
        // As the audit Firehose delivers an object: gzip.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, format!("{envelope}\nplain line\n").as_bytes()).unwrap();
        std::fs::write(dir.join("part-1"), gz.finish().unwrap()).unwrap();
        let lines = read_lines(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].text, record, "the message exactly as written: what the chain hashed");
        assert!(lines[0].position.to_string().ends_with("part-1[event 1]:1"), "{}", lines[0].position);
        assert_eq!(lines[2].text, "plain line");
        assert_eq!(session_records(&lines, "s-1").len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn spans_of_the_session_attach_to_their_call() {
        let path = std::env::temp_dir().join(format!("audit-spans-{}.jsonl", std::process::id()));
        let span = |session: &str, request: &str| {
            serde_json::json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
                "traceId": "5759e988bd862e3fe1be46a994272793", "spanId": "53995c3f42cd8ad8",
                "name": "fhir_search", "startTimeUnixNano": "1000000", "endTimeUnixNano": "3500000",
                "attributes": [{"key": "session.id", "value": {"stringValue": session}},
                               {"key": "faas.invocation_id", "value": {"stringValue": request}}]}]}]}]})
            .to_string()
        };
        std::fs::write(&path, [span("s-1", "r1"), "not a span".to_owned(), span("s-2", "r1")].join("\n")).unwrap();
        let spans = read_spans(&path, "s-1").unwrap();
        assert_eq!(spans.len(), 1);
        assert!((spans[0].duration_ms - 2.5).abs() < 1e-9);
        let record = serde_json::json!({"record_type": "tool_audit", "session_id": "s-1", "request_id": "r1",
            "record_kind": "final", "outcome": "ok", "timestamp": "t"});
        let timeline = timeline("s-1", &[record], &[], &spans);
        assert_eq!(timeline.calls[0].spans.len(), 1);
        assert_eq!(timeline.calls[0].spans[0].name, "fhir_search");
        let _ = std::fs::remove_file(path);
    }
}
