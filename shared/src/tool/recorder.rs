//! The audit recorder of one call: methods for what happened, instead of a bag of public fields passed
//! around as `&mut`. The shell fills in the envelope, session and caller; the gate the decisions; a tool
//! step only what it alone knows (its patient, its reads, its writer or model outcome, its detail).
//!
//! `guardrail_action` is derived here, in one place, from the writer's narrative or the model's outcome,
//! so the audit record and the `GuardrailInterventions` metric agree for every tool.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::audit::{AuditRecord, AuditSink, Detail, Outcome};
use crate::authz::AuthzDecision;
use crate::error::ToolError;
use crate::fhir::FhirId;
use crate::identity::Principal;
use crate::session::{Faults, SessionId};
use crate::writer::Narrative;

/// What the model path of a call came to (tools that call a model directly rather than through a writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelUse {
    /// No model is configured: the deterministic path alone.
    NotConfigured,
    /// The model answered and its answer was used.
    Used,
    /// The Guardrail intervened; the deterministic path was used instead.
    GuardrailIntervened,
    /// The model could not be reached.
    Unavailable,
    /// The model answered with something unusable.
    UnreadableAnswer,
}

impl ModelUse {
    /// The audit record's `guardrail_action`, in the writer's vocabulary (`shared::writer::Narrative`).
    pub fn guardrail_action(self) -> &'static str {
        match self {
            Self::NotConfigured | Self::Used => "none",
            Self::GuardrailIntervened => "intervened",
            Self::Unavailable => "model_unavailable",
            Self::UnreadableAnswer => "unparseable",
        }
    }
}

pub struct Recorder<'a> {
    sink: &'a dyn AuditSink,
    record: Mutex<AuditRecord>,
    intent_written: AtomicBool,
    started: Instant,
    /// The call's session context notes upstream faults here (`SessionContext::with_faults`).
    faults: Faults,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(sink: &'a dyn AuditSink, record: AuditRecord, started: Instant) -> Self {
        Self {
            sink,
            record: Mutex::new(record),
            intent_written: AtomicBool::new(false),
            started,
            faults: Faults::default(),
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults.clone()
    }

    fn with(&self, f: impl FnOnce(&mut AuditRecord)) {
        // A poisoned lock still holds the record; evidence is kept even after a panic elsewhere.
        let mut guard = self.record.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    pub(crate) fn session(&self, session: &SessionId) {
        self.with(|r| r.session_id = Some(session.to_string()));
    }

    pub(crate) fn caller(&self, principal: &Principal) {
        self.with(|r| {
            r.subject = Some(principal.subject.clone());
            r.roles = principal.roles.iter().map(|role| role.as_str()).collect();
            r.organization.clone_from(&principal.organization);
        });
    }

    pub(crate) fn tool(&self, tool: &str, action: &str) {
        self.with(|r| {
            tool.clone_into(&mut r.tool);
            action.clone_into(&mut r.action);
        });
    }

    pub(crate) fn decision(&self, decision: AuthzDecision) {
        self.with(|r| r.decision = Some(decision));
    }

    /// The audit intent record: written once, at the first permit, before any downstream call, so a call
    /// that dies after its reads still leaves a trace of who was allowed to do what.
    pub(crate) fn intent(&self) {
        if self.intent_written.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut record = self.snapshot();
        record.record_kind = crate::audit::RecordKind::Intent;
        record.outcome = Outcome::Pending;
        self.sink.write(record);
    }

    fn snapshot(&self) -> AuditRecord {
        let mut out = None;
        self.with(|r| out = Some(r.clone()));
        out.unwrap_or_else(|| AuditRecord::new("unknown", "unknown", "unknown", "unknown", ""))
    }

    /// The patient the call concerns, once its id is valid.
    pub fn patient(&self, patient: &FhirId) {
        self.with(|r| r.patient = Some(format!("Patient/{patient}")));
    }

    /// The relationship facts read to make a decision (`Type/id`).
    pub fn relationship_reads(&self, reads: &[String]) {
        self.with(|r| r.relationship_reads.extend_from_slice(reads));
    }

    /// Clinical resources read to answer (`Type/id`).
    pub fn reads(&self, reads: impl IntoIterator<Item = String>) {
        self.with(|r| r.resources_read.extend(reads));
    }

    /// Break-glass access was used; the reason is kept for review.
    pub fn break_glass(&self, reason: &str) {
        self.with(|r| {
            r.break_glass = true;
            r.break_glass_reason = Some(reason.to_owned());
        });
    }

    /// The prose came from a clinical writer: which one, and what its Guardrail did (a fallback to the
    /// deterministic text shows here).
    pub fn writer(&self, narrative: &Narrative) {
        self.with(|r| {
            r.model = Some(narrative.writer.clone());
            r.guardrail_action = Some(narrative.guardrail_action.clone().unwrap_or_else(|| "none".to_owned()));
        });
    }

    /// The call asked a model directly (not through a writer).
    pub fn model(&self, model: Option<&str>, outcome: ModelUse) {
        self.with(|r| {
            r.model = Some(model.unwrap_or("local-deterministic").to_owned());
            r.guardrail_action = Some(outcome.guardrail_action().to_owned());
        });
    }

    /// What only this tool knows (a draft id, an attestation).
    pub fn detail(&self, detail: Detail) {
        self.with(|r| r.detail = Some(detail));
    }

    /// Closes the record with the call's outcome and latency, and writes it with its metrics.
    pub(crate) fn finish<T>(self, outcome: &Result<T, ToolError>) {
        let sink = self.sink;
        let started = self.started;
        let faults = self.faults;
        let mut record = self.record.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        record.upstream_faults = faults.take();
        record.outcome = match outcome {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(e.kind()),
        };
        record.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            outcome = ?record.outcome,
            latency_ms = record.latency_ms,
            reads = record.resources_read.len(),
            "tool call finished"
        );
        // Metrics come from the finished record, so alarms and evidence count the same calls.
        crate::metrics::emit(&record);
        sink.write(record);
    }
}
