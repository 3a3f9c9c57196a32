//! The patient-summary tool: envelope → verified identity → Cedar → minimal FHIR reads → summary → reply,
//! with one audit record per call whatever the outcome.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::ToolError;
use shared::audit::{AuditRecord, AuditSink, Outcome};
use shared::authz::Authorizer;
use shared::envelope::{self, Envelope, ToolCall, ToolReply};
use shared::fhir::{FhirId, FhirStore};
use shared::identity::JwtVerifier;
use shared::runtime::{Handler, Invocation};
use shared::session::{SessionContext, SessionId};
use shared::writer::{ClinicalWriter, Purpose, WritingRequest};
use time::{Date, Duration, OffsetDateTime};
use tracing::{Instrument, info, info_span, warn};

use crate::fetch;
use crate::summary;

/// The Cedar action this tool asks about.
pub const ACTION: &str = "patient_summary.read";
/// Names the tool answers to in each envelope.
const TOOL_NAMES: &[&str] = &["patient_summary", "/patient-summary", "/patient_summary"];
/// Break-glass reasons are kept in the audit for review: long enough to say why, short enough to read.
const BREAK_GLASS_MIN: usize = 10;
const BREAK_GLASS_MAX: usize = 500;

/// Everything the tool needs, built once at cold start.
pub struct SummaryTool<S, W, A> {
    pub store: S,
    pub writer: W,
    pub audit: A,
    pub verifier: JwtVerifier,
    pub authorizer: Authorizer,
    pub function_name: String,
    pub care_lookback_days: u32,
    /// Fixes "today" for tests and benches; `None` in production.
    pub as_of: Option<Date>,
}

// The tool's arguments, from whichever envelope. The agent-facing schemas (`schemas/`) are generated from this
// type, so what the model is told and what the handler accepts cannot drift apart; doc comments here are read
// by the model.
/// Which patient to summarise.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryInput {
    /// FHIR id of the Patient resource to summarise (the id in `Patient/<id>`, not an MRN or a name).
    pub patient_id: String,
}

/// The argument names `SummaryInput` accepts, for the unknown-argument check (which names the field).
const ARGUMENTS: &[&str] = &["patient_id"];

/// The validated arguments.
#[derive(Debug)]
struct SummaryArgs {
    patient: FhirId,
}

impl SummaryArgs {
    fn from_call(call: &ToolCall) -> Result<Self, ToolError> {
        if let Some(unknown) = call.arguments.keys().find(|k| !ARGUMENTS.contains(&k.as_str())) {
            // Field names are ours to echo; values never are.
            return Err(ToolError::invalid(format!("unknown argument `{}`", sanitize_name(unknown))));
        }
        // serde's message could quote the value; ours names the field only.
        let input: SummaryInput = serde_json::from_value(Value::Object(call.arguments.clone()))
            .map_err(|_| ToolError::invalid("`patient_id` is missing"))?;
        Ok(Self { patient: FhirId::argument("patient_id", &input.patient_id)? })
    }
}

impl<S: FhirStore, W: ClinicalWriter, A: AuditSink> Handler for SummaryTool<S, W, A> {
    async fn call(&self, invocation: Invocation) -> Value {
        let started = Instant::now();
        let span =
            info_span!("patient_summary", request_id = %invocation.request_id, session_id = tracing::field::Empty);
        async {
            let call = match envelope::parse(&invocation.payload, invocation.client_context.as_ref()) {
                Ok(call) => call,
                Err(error) => {
                    let mut audit = AuditRecord::new(&self.function_name, "unknown", ACTION, "unknown", &invocation.request_id);
                    audit.outcome = Outcome::Error(error.kind());
                    audit.latency_ms = elapsed_ms(started);
                    shared::metrics::emit(&audit);
                    self.audit.write(audit);
                    return envelope::render(&Envelope::Direct, &Err(error), &invocation.request_id);
                }
            };
            let mut audit =
                AuditRecord::new(&self.function_name, "patient_summary", ACTION, envelope_name(&call.envelope), &invocation.request_id);
            let outcome = self.summarize(&call, &invocation, &mut audit).await;
            audit.outcome = match &outcome {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Error(e.kind()),
            };
            audit.latency_ms = elapsed_ms(started);
            info!(outcome = ?audit.outcome, latency_ms = audit.latency_ms, reads = audit.resources_read.len(), "tool call finished");
            // Metrics come from the finished audit record, so alarms and evidence count the same calls.
            shared::metrics::emit(&audit);
            self.audit.write(audit);
            envelope::render(&call.envelope, &outcome, &invocation.request_id)
        }
        .instrument(span)
        .await
    }
}

impl<S: FhirStore, W: ClinicalWriter, A: AuditSink> SummaryTool<S, W, A> {
    async fn summarize(
        &self,
        call: &ToolCall,
        invocation: &Invocation,
        audit: &mut AuditRecord,
    ) -> Result<ToolReply, ToolError> {
        if !TOOL_NAMES.contains(&call.tool.as_str()) {
            return Err(ToolError::invalid("this function serves only the `patient_summary` tool"));
        }
        let session_id = SessionId::parse(call.session_id.as_deref().unwrap_or_default())?;
        tracing::Span::current().record("session_id", session_id.as_str());
        audit.session_id = Some(session_id.to_string());

        let principal = self.verifier.verify(call.identity_token.as_deref()).await.map_err(|e| {
            warn!(reason = %e, "identity rejected");
            ToolError::Unauthenticated
        })?;
        audit.subject = Some(principal.subject.clone());
        audit.roles = principal.roles.iter().map(|r| r.as_str()).collect();
        audit.organization = principal.organization.clone();

        let args = SummaryArgs::from_call(call)?;
        let patient = args.patient;
        audit.patient = Some(format!("Patient/{patient}"));
        let break_glass_reason = break_glass_reason(call.break_glass_reason.as_deref())?;
        let resource = ("Patient", patient.as_str());

        // Could any relationship allow this caller? If not (a role that is never allowed), deny before any
        // FHIR request at all.
        let ceiling = self.authorizer.decide(
            &principal,
            ACTION,
            resource,
            json!({"care_relationship": true, "break_glass": break_glass_reason.is_some()}),
        );
        if !ceiling.allowed {
            info!(policies = ?ceiling.policies, "denied before any read");
            audit.decision = Some(ceiling);
            return Err(ToolError::Denied);
        }

        // The verified subject travels with the session: per-session AWS credentials carry it as source identity.
        let session = SessionContext::new(session_id, invocation.request_id.clone(), invocation.deadline)
            .with_caller(principal.subject.clone());
        let as_of = self.as_of.unwrap_or_else(|| OffsetDateTime::now_utc().date());
        let since = as_of - Duration::days(i64::from(self.care_lookback_days));
        let relationship =
            fetch::care_relationship(&self.store, &session, &patient, principal.practitioner_id.as_ref(), since)
                .await?;
        audit.relationship_reads = relationship.reads.clone();

        // Break-glass is used, and flagged, only when no relationship already allows the read.
        let break_glass = !relationship.established && break_glass_reason.is_some();
        let decision = self.authorizer.decide(
            &principal,
            ACTION,
            resource,
            json!({"care_relationship": relationship.established, "break_glass": break_glass}),
        );
        info!(allowed = decision.allowed, policies = ?decision.policies, break_glass, "authorization decided");
        let allowed = decision.allowed;
        audit.decision = Some(decision);
        if !allowed {
            return Err(ToolError::Denied);
        }
        if break_glass {
            warn!("break-glass access granted; flagged for review");
            audit.break_glass = true;
            audit.break_glass_reason = break_glass_reason;
        }

        let fetched = fetch::chart(&self.store, &session, &patient).await?;
        audit.resources_read = fetched.reads;
        if fetched.unparsed > 0 {
            warn!(unparsed = fetched.unparsed, "some resources did not parse and were left out");
        }
        let summary = summary::summarize(&fetched.chart, as_of);
        let request = WritingRequest { purpose: Purpose::PreVisitSummary, statements: summary::statements(&summary) };
        let narrative = self.writer.write(&session, &request).await.map_err(|_| ToolError::UpstreamUnavailable)?;
        audit.model = Some(narrative.writer.clone());
        audit.guardrail_action = Some(narrative.guardrail_action.clone().unwrap_or_else(|| "none".to_owned()));

        let text = format!("{}\n\n{}", summary::render_text(&summary), narrative.paragraph());
        let result = json!({ "summary": summary, "narrative": narrative, "unparsed_resources": fetched.unparsed });
        Ok(ToolReply { result, text })
    }
}

/// A break-glass reason comes only from a channel the model cannot write, and must say something.
fn break_glass_reason(raw: Option<&str>) -> Result<Option<String>, ToolError> {
    let Some(reason) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    let length = reason.chars().count();
    if !(BREAK_GLASS_MIN..=BREAK_GLASS_MAX).contains(&length) || reason.chars().any(char::is_control) {
        return Err(ToolError::invalid("the break-glass reason must be 10 to 500 printable characters"));
    }
    Ok(Some(reason.to_owned()))
}

fn sanitize_name(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(40).collect()
}

fn envelope_name(envelope: &Envelope) -> &'static str {
    match envelope {
        Envelope::BedrockOpenApi { .. } => "bedrock_openapi",
        Envelope::BedrockFunction { .. } => "bedrock_function",
        Envelope::Gateway => "agentcore_gateway",
        Envelope::Direct => "direct",
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_argument_check_knows_exactly_the_schema_fields() {
        let schema = shared::schema::schema_of::<SummaryInput>();
        let fields: Vec<&str> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(fields, ARGUMENTS);
    }
}
