//! Per-call metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per tool call, which
//! CloudWatch Logs turns into metrics in the namespace the template's alarms watch (`ClinicalAgentTools`).
//!
//! Metrics: `Invocations`, `Denies`, `GuardrailInterventions`, `UpstreamErrors` (counts) and `Latency`
//! (milliseconds), under the dimension sets `[Function]` (what the alarms use) and `[Function, Tool]`.
//! The line carries only the function name, the tool name, counts and a latency: never a patient, a
//! subject, a session id or any text — it is derived from the audit record but copies none of its ids.
//!
//! # How a tool calls it
//!
//! Right after its audit record is complete, next to `AuditSink::write`:
//!
//! ```ignore
//! shared::metrics::emit(&audit);   // reads METRICS_NAMESPACE once; "off" disables
//! self.audit.write(audit);
//! ```
//!
//! What counts as what comes from the audit record, so metrics and evidence cannot disagree: a deny is an
//! outcome of `denied`, an upstream error an outcome of `upstream_unavailable`, and a guardrail
//! intervention any `guardrail_action` other than `none` (e.g. Bedrock's `GUARDRAIL_INTERVENED`).
//!
//! Why hand-written: `metrics_cloudwatch_embedded` (kept, 0.10) is a backend for the `metrics` facade with a
//! process-global recorder, flushed by its own wrapper around `lambda_runtime::run`; our tools run their own
//! runtime loop (`runtime`) and emit exactly one fixed document per call, which is fifty lines of
//! `serde_json` the crate would not save.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::audit::{AuditRecord, Outcome};
use crate::error::ErrorKind;

/// Environment variable naming the namespace; `off` disables emission (tests, benches).
pub const NAMESPACE_ENV: &str = "METRICS_NAMESPACE";
/// The namespace when the variable is unset (the template sets the same value).
pub const DEFAULT_NAMESPACE: &str = "ClinicalAgentTools";

/// The metric names, as the template's alarms refer to them.
pub const INVOCATIONS: &str = "Invocations";
pub const DENIES: &str = "Denies";
pub const GUARDRAIL_INTERVENTIONS: &str = "GuardrailInterventions";
pub const UPSTREAM_ERRORS: &str = "UpstreamErrors";
pub const LATENCY: &str = "Latency";
/// Break-glass accesses granted: every one is alarmed (template `BreakGlassUsesAlarm`).
pub const BREAK_GLASS_USES: &str = "BreakGlassUses";

/// What one tool call contributes to the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMetrics {
    pub function: String,
    pub tool: String,
    pub denied: bool,
    pub guardrail_intervened: bool,
    pub upstream_error: bool,
    pub break_glass: bool,
    pub latency_ms: u64,
}

impl CallMetrics {
    /// The metrics of a finished call, from its audit record (ids and content are not copied).
    pub fn from_audit(record: &AuditRecord) -> Self {
        let error = match record.outcome {
            Outcome::Ok | Outcome::Pending => None,
            Outcome::Error(kind) => Some(kind),
        };
        let guardrail_intervened =
            record.guardrail_action.as_deref().is_some_and(|action| !action.eq_ignore_ascii_case("none"));
        Self {
            function: record.function.clone(),
            tool: record.tool.clone(),
            denied: error == Some(ErrorKind::Denied),
            guardrail_intervened,
            upstream_error: error == Some(ErrorKind::UpstreamUnavailable),
            break_glass: record.break_glass,
            latency_ms: record.latency_ms,
        }
    }

    /// The EMF document for this call at `timestamp_ms` (milliseconds since the epoch).
    pub fn document(&self, namespace: &str, timestamp_ms: u64) -> Value {
        let count = |flag: bool| u32::from(flag);
        json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    // `[Tool]` too: the break-glass alarm and the dashboard sum per tool across stacks.
                    "Dimensions": [["Function"], ["Function", "Tool"], ["Tool"]],
                    "Metrics": [
                        { "Name": INVOCATIONS, "Unit": "Count" },
                        { "Name": DENIES, "Unit": "Count" },
                        { "Name": GUARDRAIL_INTERVENTIONS, "Unit": "Count" },
                        { "Name": UPSTREAM_ERRORS, "Unit": "Count" },
                        { "Name": BREAK_GLASS_USES, "Unit": "Count" },
                        { "Name": LATENCY, "Unit": "Milliseconds" },
                    ],
                }],
            },
            // Kept apart from the audit subscription filter, which matches record_type = tool_audit.
            "record_type": "tool_metrics",
            "Function": self.function,
            "Tool": self.tool,
            INVOCATIONS: 1,
            DENIES: count(self.denied),
            GUARDRAIL_INTERVENTIONS: count(self.guardrail_intervened),
            UPSTREAM_ERRORS: count(self.upstream_error),
            BREAK_GLASS_USES: count(self.break_glass),
            LATENCY: self.latency_ms,
        })
    }
}

/// Writes the EMF line of a finished call to stdout, in the namespace from `METRICS_NAMESPACE` (read once).
/// A failed write is reported on the tracing log without content: metrics must never fail a call.
pub fn emit(record: &AuditRecord) {
    static NAMESPACE: OnceLock<Option<String>> = OnceLock::new();
    let namespace = NAMESPACE.get_or_init(|| namespace_from(std::env::var(NAMESPACE_ENV).ok()));
    let Some(namespace) = namespace else { return };
    let line = CallMetrics::from_audit(record).document(namespace, now_ms());
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        tracing::warn!("metrics line could not be written");
    }
}

/// `None` when metrics are switched off.
fn namespace_from(raw: Option<String>) -> Option<String> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Some(DEFAULT_NAMESPACE.to_owned()),
        Some("off") => None,
        Some(namespace) => Some(namespace.to_owned()),
    }
}

fn now_ms() -> u64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    u64::try_from(now).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, guardrail: Option<&str>) -> AuditRecord {
        let mut record = AuditRecord::new("stack-icd10-coding", "icd10_coding", "icd10.propose", "direct", "req-1");
        record.outcome = outcome;
        record.guardrail_action = guardrail.map(str::to_owned);
        record.latency_ms = 42;
        record.patient = Some("Patient/p-123".to_owned());
        record.subject = Some("dr-who".to_owned());
        record.session_id = Some("session-abc".to_owned());
        record
    }

    fn parse(doc: &Value) -> Value {
        // Round-trip through text, as CloudWatch Logs sees it.
        serde_json::from_str(&doc.to_string()).unwrap_or(Value::Null)
    }

    #[test]
    fn document_has_the_emf_shape() {
        let doc = parse(&CallMetrics::from_audit(&record(Outcome::Ok, Some("none"))).document("NS", 1_700_000_000_000));
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000_u64);
        let directives = aws["CloudWatchMetrics"].as_array().cloned().unwrap_or_default();
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], "NS");
        assert_eq!(directive["Dimensions"], json!([["Function"], ["Function", "Tool"], ["Tool"]]));
        let metrics = directive["Metrics"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = metrics.iter().filter_map(|m| m["Name"].as_str()).collect();
        assert_eq!(names, [INVOCATIONS, DENIES, GUARDRAIL_INTERVENTIONS, UPSTREAM_ERRORS, BREAK_GLASS_USES, LATENCY]);
        // Every declared dimension and metric has a member of the right type at the root.
        for dimension in ["Function", "Tool"] {
            assert!(doc[dimension].is_string(), "{dimension}");
        }
        for metric in &metrics {
            let name = metric["Name"].as_str().unwrap_or_default();
            assert!(doc[name].is_u64(), "{name}");
            assert!(matches!(metric["Unit"].as_str(), Some("Count" | "Milliseconds")));
        }
        assert_eq!(doc["Function"], "stack-icd10-coding");
        assert_eq!(doc["Tool"], "icd10_coding");
        assert_eq!(doc[INVOCATIONS], 1);
        assert_eq!(doc[LATENCY], 42);
        assert_eq!(doc["record_type"], "tool_metrics");
    }

    #[test]
    fn outcomes_map_to_denies_upstream_errors_and_interventions() {
        let denied = CallMetrics::from_audit(&record(Outcome::Error(ErrorKind::Denied), None));
        assert!(denied.denied && !denied.upstream_error && !denied.guardrail_intervened);
        let upstream = CallMetrics::from_audit(&record(Outcome::Error(ErrorKind::UpstreamUnavailable), None));
        assert!(upstream.upstream_error && !upstream.denied);
        let intervened = CallMetrics::from_audit(&record(Outcome::Ok, Some("GUARDRAIL_INTERVENED")));
        assert!(intervened.guardrail_intervened);
        let clean = CallMetrics::from_audit(&record(Outcome::Ok, Some("NONE")));
        assert!(!clean.guardrail_intervened && !clean.denied && !clean.upstream_error);
        let doc = parse(&denied.document("NS", 0));
        assert_eq!((doc[DENIES].as_u64(), doc[UPSTREAM_ERRORS].as_u64()), (Some(1), Some(0)));
    }

    #[test]
    fn document_carries_no_ids_from_the_audit_record() {
        let line = CallMetrics::from_audit(&record(Outcome::Ok, None)).document("NS", 0).to_string();
        for id in ["p-123", "dr-who", "session-abc", "req-1"] {
            assert!(!line.contains(id), "{id} leaked into the metrics line");
        }
    }

    #[test]
    fn namespace_defaults_and_can_be_switched_off() {
        assert_eq!(namespace_from(None).as_deref(), Some(DEFAULT_NAMESPACE));
        assert_eq!(namespace_from(Some(String::new())).as_deref(), Some(DEFAULT_NAMESPACE));
        assert_eq!(namespace_from(Some("Other".to_owned())).as_deref(), Some("Other"));
        assert_eq!(namespace_from(Some("off".to_owned())), None);
    }
}
