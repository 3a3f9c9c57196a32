//! What the front end says through its own channel, which the model cannot write (Bedrock session attributes
//! set by the application calling InvokeAgent, Gateway headers the agent host sets, the direct event):
//! a break-glass grant for one patient, and a clinician's sign-off of one draft.
//!
//! Both are JSON objects. The front end sets them only after the clinician acted in its own UI; a tool never
//! takes them from tool arguments, which the model writes.

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ToolError;
use crate::fhir::FhirId;

/// The longest a break-glass grant may run: one clinical emergency, not a shift.
pub const BREAK_GLASS_MAX_MINUTES: i64 = 240;

/// `{"patient_id": "…", "reason": "…", "expires_at": "<RFC 3339>"}`: emergency access to one patient,
/// for a limited time, with the clinician's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    pub patient: FhirId,
    pub reason: String,
    pub expires_at: OffsetDateTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassWire {
    patient_id: String,
    reason: String,
    expires_at: String,
}

impl BreakGlass {
    /// Parses a grant. A malformed one is `invalid_input` (the front end is broken, not the model); one that
    /// runs longer than `BREAK_GLASS_MAX_MINUTES` from `now` is refused too.
    pub fn parse(raw: &str, now: OffsetDateTime) -> Result<Self, ToolError> {
        let invalid = || {
            ToolError::invalid(
                "the break-glass grant must be {\"patient_id\", \"reason\" (10 to 500 printable characters), \"expires_at\" (RFC 3339, at most 4 hours ahead)}",
            )
        };
        let wire: BreakGlassWire = serde_json::from_str(raw).map_err(|_| invalid())?;
        let patient = FhirId::parse(wire.patient_id.trim()).map_err(|_| invalid())?;
        let reason = wire.reason.trim();
        let length = reason.chars().count();
        if !(10..=500).contains(&length) || reason.chars().any(char::is_control) {
            return Err(invalid());
        }
        let expires_at = OffsetDateTime::parse(wire.expires_at.trim(), &Rfc3339).map_err(|_| invalid())?;
        if expires_at - now > time::Duration::minutes(BREAK_GLASS_MAX_MINUTES) {
            return Err(invalid());
        }
        Ok(Self { patient, reason: reason.to_owned(), expires_at })
    }

    /// The reason, if this grant covers `patient` at `now`: another patient's grant, or an expired one,
    /// covers nothing.
    pub fn covers(&self, patient: &FhirId, now: OffsetDateTime) -> bool {
        &self.patient == patient && now < self.expires_at
    }
}

/// How long a clinician's sign-off stays good: long enough to reach the tool, too short to be replayed
/// into a later finalize of the same session.
pub const SIGNOFF_MAX_AGE_MINUTES: i64 = 15;

/// `{"draft_id": "…", "content_hash": "<the hex SHA-256 the draft reply showed>", "attestation": "…",
/// "override_reason": "…"?, "signed_at": "<RFC 3339>"}`: the clinician read that exact draft and signed it,
/// at `signed_at`. It covers one draft with one content; a draft is finalized once, so a sign-off is used
/// once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signoff {
    pub draft_id: String,
    pub content_hash: String,
    pub attestation: String,
    pub override_reason: Option<String>,
    pub signed_at: OffsetDateTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignoffWire {
    draft_id: String,
    content_hash: String,
    attestation: String,
    #[serde(default)]
    override_reason: Option<String>,
    signed_at: String,
}

impl Signoff {
    /// Parses a sign-off made at most [`SIGNOFF_MAX_AGE_MINUTES`] before `now` (and not in the future beyond
    /// a minute of clock skew). Anything else is `invalid_input` that names the fields, never their values.
    pub fn parse(raw: &str, now: OffsetDateTime) -> Result<Self, ToolError> {
        let invalid = || {
            ToolError::invalid(format!(
                "the clinician sign-off must be {{\"draft_id\", \"content_hash\" (64 hex digits), \"attestation\" (10 to 1000 characters), \"override_reason\"? (10 to 500), \"signed_at\" (RFC 3339, within the last {SIGNOFF_MAX_AGE_MINUTES} minutes)}}"
            ))
        };
        let wire: SignoffWire = serde_json::from_str(raw).map_err(|_| invalid())?;
        let printable = |text: &str, min: usize, max: usize| {
            let text = text.trim();
            let n = text.chars().count();
            ((min..=max).contains(&n) && !text.chars().any(|c| c.is_control() && c != '\n')).then(|| text.to_owned())
        };
        let attestation = printable(&wire.attestation, 10, 1000).ok_or_else(invalid)?;
        let override_reason = match wire.override_reason.as_deref() {
            None => None,
            Some(reason) => Some(printable(reason, 10, 500).ok_or_else(invalid)?),
        };
        let hex = wire.content_hash.len() == 64 && wire.content_hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || FhirId::parse(&wire.draft_id).is_err() {
            return Err(invalid());
        }
        let signed_at = OffsetDateTime::parse(wire.signed_at.trim(), &Rfc3339).map_err(|_| invalid())?;
        let age = now - signed_at;
        if age > time::Duration::minutes(SIGNOFF_MAX_AGE_MINUTES) || age < -time::Duration::minutes(1) {
            return Err(invalid());
        }
        Ok(Self {
            draft_id: wire.draft_id,
            content_hash: wire.content_hash.to_ascii_lowercase(),
            attestation,
            override_reason,
            signed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

    #[test]
    fn a_grant_covers_one_patient_until_it_expires() {
        let raw = r#"{"patient_id": "p1", "reason": "unresponsive in the ED, no chart access", "expires_at": "2026-12-01T11:00:00Z"}"#;
        let grant = BreakGlass::parse(raw, NOW).unwrap();
        let (p1, p2) = (FhirId::parse("p1").unwrap(), FhirId::parse("p2").unwrap());
        assert!(grant.covers(&p1, NOW));
        assert!(!grant.covers(&p2, NOW), "another patient");
        assert!(!grant.covers(&p1, datetime!(2026-12-01 11:00 UTC)), "expired");
    }

    #[test]
    fn malformed_or_long_grants_are_refused_without_echo() {
        for raw in [
            "Pt Jane Doe unresponsive",
            r#"{"patient_id": "p1", "reason": "short", "expires_at": "2026-12-01T11:00:00Z"}"#,
            r#"{"patient_id": "p1", "reason": "unresponsive in the ED", "expires_at": "2026-12-02T11:00:00Z"}"#,
            r#"{"patient_id": "p 1", "reason": "unresponsive in the ED", "expires_at": "2026-12-01T11:00:00Z"}"#,
        ] {
            let err = BreakGlass::parse(raw, NOW).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.starts_with("invalid input"), "{raw}: {err}");
            assert!(!err.contains("Jane") && !err.contains("ED"), "{err}");
        }
    }

    #[test]
    fn a_signoff_names_a_draft_its_hash_and_when() {
        let hash = "A".repeat(64);
        let raw = |signed_at: &str| {
            format!(
                r#"{{"draft_id": "d1", "content_hash": "{hash}", "attestation": "I reviewed this request.", "signed_at": "{signed_at}"}}"#
            )
        };
        let signoff = Signoff::parse(&raw("2026-12-01T09:55:00Z"), NOW).unwrap();
        assert_eq!((signoff.draft_id.as_str(), signoff.override_reason), ("d1", None));
        assert_eq!(signoff.content_hash, "a".repeat(64), "hex is compared in lower case");
        for stale_or_future in ["2026-12-01T09:40:00Z", "2026-12-01T10:05:00Z", "yesterday"] {
            assert!(Signoff::parse(&raw(stale_or_future), NOW).is_err(), "{stale_or_future}");
        }
        let bad_hash = r#"{"draft_id": "d1", "content_hash": "xyz", "attestation": "I reviewed this.", "signed_at": "2026-12-01T09:55:00Z"}"#;
        assert!(Signoff::parse(bad_hash, NOW).is_err());
        let err = Signoff::parse("I attest, Dr Jane Roe", NOW).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("invalid input") && !err.contains("Jane"), "{err}");
    }
}
