//! Structured logs on stderr: ids, counts, timings and decisions only. Payloads are never logged; spans
//! carry the session id so every line of an invocation can be correlated.
//!
//! The trace id of the running invocation is kept here so the audit record can name the trace its spans
//! belong to: [`begin_trace`] at the start of each invocation, [`current_trace_id`] from the audit sink.

use std::sync::RwLock;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

// One invocation runs at a time in a Lambda instance, so the current trace is a process-wide value.
static CURRENT_TRACE: RwLock<Option<String>> = RwLock::new(None);

/// Starts the trace of an invocation and returns its id (32 lowercase hex digits, the W3C / OpenTelemetry
/// form). `xray_header` is Lambda's `Lambda-Runtime-Trace-Id` (or `_X_AMZN_TRACE_ID`):
/// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=...;Sampled=1`; X-Ray's root id is the same 128 bits,
/// so the audit record and X-Ray name one trace. Without a header a random id is used.
pub fn begin_trace(xray_header: Option<&str>) -> String {
    let id = xray_header.and_then(xray_root_as_w3c).unwrap_or_else(random_trace_id);
    if let Ok(mut current) = CURRENT_TRACE.write() {
        *current = Some(id.clone());
    }
    id
}

/// The trace id of the running invocation, if [`begin_trace`] was called.
pub fn current_trace_id() -> Option<String> {
    CURRENT_TRACE.read().ok().and_then(|c| c.clone())
}

/// `Root=1-{8 hex epoch}-{24 hex}` → the 32 hex digits of the W3C trace id (X-Ray: "Using the W3C trace
/// format" in the X-Ray developer guide, trace id = epoch and unique parts concatenated).
fn xray_root_as_w3c(header: &str) -> Option<String> {
    let root = header.split(';').find_map(|part| part.trim().strip_prefix("Root="))?;
    let mut parts = root.split('-');
    let (Some("1"), Some(epoch), Some(unique), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let id = format!("{epoch}{unique}").to_ascii_lowercase();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

fn random_trace_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_root_becomes_the_w3c_trace_id() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(xray_root_as_w3c(header).as_deref(), Some("5759e988bd862e3fe1be46a994272793"));
        assert_eq!(xray_root_as_w3c("Root=2-5759e988-bd862e3fe1be46a994272793"), None);
        assert_eq!(xray_root_as_w3c("Parent=53995c3f42cd8ad8"), None);
        assert_eq!(xray_root_as_w3c("Root=1-zz59e988-bd862e3fe1be46a994272793"), None);
        let id = begin_trace(None);
        assert_eq!(id.len(), 32);
        assert_eq!(current_trace_id(), Some(id));
    }
}
