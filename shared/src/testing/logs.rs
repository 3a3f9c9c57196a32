//! The PHI-canary harness: every tracing event of a test (every level, dependencies included, with the
//! current span and its parents) captured as JSON lines, and one check that planted values appear in none of
//! them nor in the audit records.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// Captures the logs of the current thread while the guard of [`LogCapture::install`] lives (use a
/// current-thread runtime: `#[tokio::test]`'s default).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Starts capturing at `trace`, JSON, with span fields: the most a deployed function could ever print.
    #[must_use = "capturing stops when the guard is dropped"]
    pub fn install() -> (Self, DefaultGuard) {
        let capture = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("trace")
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(capture.clone())
            .finish();
        (capture.clone(), tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Fails, naming the value and where it was found (never the whole line, which may hold more), when any
    /// planted value is in a log line or in one of `audit_lines`. Also fails when fewer than `min_lines` were
    /// logged: a harness that captured nothing would pass every check.
    #[expect(clippy::panic, reason = "a test assertion")]
    pub fn assert_absent(&self, planted: &[&str], audit_lines: &[String], min_lines: usize) {
        let logs = self.text();
        let count = logs.lines().count();
        assert!(count >= min_lines, "only {count} log lines were captured (expected at least {min_lines})");
        for value in planted {
            if let Some(n) = logs.lines().position(|line| line.contains(value)) {
                panic!("`{value}` is in log line {n}");
            }
            if let Some(n) = audit_lines.iter().position(|line| line.contains(value)) {
                panic!("`{value}` is in audit record {n}");
            }
        }
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
