//! The correlation key of every hop: the agent's session id, and the Lambda request id beside it.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::ToolError;

/// Longest session id accepted: AgentCore runtime session ids are at most 256 characters.
const SESSION_ID_MAX: usize = 256;
/// Bedrock Agent session ids are at least 2 characters.
const SESSION_ID_MIN: usize = 2;

/// A validated agent session id.
///
/// The charset is the intersection of what every hop accepts unescaped: an HTTP header value, Converse
/// `requestMetadata`, an STS role session name (after truncation) and a Cedar/JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(raw: &str) -> Result<Self, ToolError> {
        if raw.is_empty() {
            return Err(ToolError::invalid("the session id is missing"));
        }
        if raw.len() < SESSION_ID_MIN || raw.len() > SESSION_ID_MAX {
            return Err(ToolError::invalid("the session id must be 2 to 256 characters long"));
        }
        let charset_ok = raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !charset_ok || !raw.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(ToolError::invalid(
                "the session id may contain only letters, digits, `-`, `_`, `.` and `:`, and must start with a letter or digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What every downstream call needs to know about the invocation it serves.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub session_id: SessionId,
    /// The Lambda request id (or a local one): not PHI, safe for logs and headers.
    pub request_id: String,
    /// When the invocation must have answered; retries and timeouts are bounded by it.
    pub deadline: Instant,
    /// The verified caller's subject, once the identity token has been verified: per-session credentials
    /// carry it as the STS source identity so CloudTrail names the person behind each AWS call.
    pub caller: Option<String>,
    /// Upstream faults met during the call, for its audit record.
    pub faults: Faults,
}

/// What an upstream did wrong during a call that the caller's reply does not say (a search that returned
/// another patient's resource): adapters note it here, and the shell writes it into the call's final audit
/// record. Every clone of a call's context shares one list.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<UpstreamFault>>>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamFault {
    /// A stable, PHI-free name (`fhir_foreign_resource`).
    pub reason: &'static str,
    /// The offending `Type/id`, when there is one (a reference, never content).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A call meets few faults; a server that returns thousands is recorded by its first ones.
const MAX_FAULTS: usize = 8;

impl Faults {
    pub fn record(&self, fault: UpstreamFault) {
        let mut faults = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if faults.len() < MAX_FAULTS && !faults.contains(&fault) {
            faults.push(fault);
        }
    }

    pub fn take(&self) -> Vec<UpstreamFault> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl SessionContext {
    pub fn new(session_id: SessionId, request_id: impl Into<String>, deadline: Instant) -> Self {
        Self { session_id, request_id: request_id.into(), deadline, caller: None, faults: Faults::default() }
    }

    /// Notes faults into `faults` (the shell's, for the audit record) instead of a list of its own.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Records the verified caller (the JWT subject); never a name typed by the model.
    pub fn with_caller(mut self, subject: impl Into<String>) -> Self {
        self.caller = Some(subject.into());
        self
    }

    /// Time left before the deadline, less a margin to write the reply and the audit record.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()).saturating_sub(REPLY_MARGIN)
    }
}

/// Kept free at the end of an invocation for rendering the reply and writing the audit record.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// Converts the runtime API's deadline (epoch milliseconds) to a monotonic instant.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    let left = u128::from(deadline_ms).saturating_sub(now_ms);
    Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_agentcore_and_bedrock_shaped_ids() {
        for ok in ["ab", "0f3c1e9a-5d1b-4c1e-9d6f-2a7b8c9d0e1f-demo", "sess:2026.11_23", &"a".repeat(256)] {
            assert_eq!(SessionId::parse(ok).map(|s| s.as_str().to_owned()).ok().as_deref(), Some(ok));
        }
    }

    #[test]
    fn rejects_empty_long_and_odd_ids() {
        for bad in ["", "a", &"a".repeat(257), "has space", "semi;colon", "-leading", "new\nline", "é-accent", "x\"y"]
        {
            let err = SessionId::parse(bad).err();
            assert!(matches!(err, Some(ToolError::InvalidInput(_))), "{bad:?} was accepted");
        }
    }

    #[test]
    fn error_message_does_not_echo_the_input() {
        let err = SessionId::parse("patient John Smith").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!err.contains("John"));
    }

    #[test]
    fn deadline_in_the_past_leaves_no_time() {
        let ctx = SessionContext::new(SessionId("ab".into()), "r", deadline_from_epoch_ms(1));
        assert_eq!(ctx.remaining(), Duration::ZERO);
    }
}
