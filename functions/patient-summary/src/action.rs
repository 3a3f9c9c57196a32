//! The patient-summary action: Cedar on the care relationship (or break-glass), then the narrow clinical
//! reads, the summary and its narrative. Envelope, identity, arguments, audit and reply are the shell's.

use serde::Serialize;
use serde_json::json;
use shared::ToolError;
use shared::envelope::ToolReply;
use shared::fhir::FhirStore;
use shared::phi;
use shared::tool::{Action, BreakGlass, Call, CedarContext, Permit, Resource, ToolAction};
use shared::writer::{ClinicalWriter, Purpose, WritingRequest};
use time::{Date, Duration, OffsetDateTime};
use tracing::warn;

use crate::args::{SummaryArgs, SummaryInput};
use crate::{fetch, summary};

/// The pre-visit summary, built once at cold start.
pub struct PatientSummary<S, W> {
    pub store: S,
    pub writer: W,
    pub care_lookback_days: u32,
    /// Fixes "today" for tests and benches; `None` in production.
    pub as_of: Option<Date>,
}

/// The context of `patient_summary.read` (see `policies/schema.cedarschema`).
#[derive(Debug, Serialize)]
pub struct SummaryContext {
    pub care_relationship: bool,
    pub break_glass: bool,
}

impl CedarContext for SummaryContext {
    const ACTION: Action = Action::PatientSummaryRead;
    fn ceiling() -> Self {
        Self { care_relationship: true, break_glass: true }
    }
}

impl<S: FhirStore, W: ClinicalWriter> ToolAction for PatientSummary<S, W> {
    type Input = SummaryInput;
    type Args = SummaryArgs;
    type Facts = ();

    fn check(input: SummaryInput) -> Result<SummaryArgs, ToolError> {
        SummaryArgs::from_input(input)
    }

    async fn authorize(&self, call: &Call<'_>, args: &SummaryArgs) -> Result<Permit, ToolError> {
        let now = OffsetDateTime::now_utc();
        let grant = call.channel.break_glass.as_deref().map(|raw| BreakGlass::parse(raw, now)).transpose()?;
        call.audit.patient(&args.patient);
        call.gate.require_ceiling::<SummaryContext>(Resource::Patient(&args.patient))?;
        let since = self.today() - Duration::days(i64::from(self.care_lookback_days));
        let practitioner = call.principal.practitioner_id.as_ref();
        let relationship =
            fetch::care_relationship(&self.store, &call.session, &args.patient, practitioner, since).await?;
        call.audit.relationship_reads(&relationship.reads);
        // Break-glass is used, and flagged, only when no relationship already allows the read, and only for the
        // patient the grant names, before it expires.
        let reason = grant.filter(|g| g.covers(&args.patient, now)).map(|g| g.reason);
        if call.channel.break_glass.is_some() && reason.is_none() {
            warn!("a break-glass grant for another patient, or an expired one, was not used");
        }
        let break_glass = !relationship.established && reason.is_some();
        let context = SummaryContext { care_relationship: relationship.established, break_glass };
        let permit = call.gate.require(Resource::Patient(&args.patient), &context)?;
        if let Some(reason) = reason.filter(|_| break_glass) {
            warn!("break-glass access granted; flagged for review");
            // The reason is free text a clinician typed in a hurry: identifiers are redacted before it is kept.
            call.audit.break_glass(&phi::redact_free_text(&reason));
        }
        Ok(permit)
    }

    async fn run(&self, call: &Call<'_>, _permit: Permit, args: SummaryArgs) -> Result<ToolReply, ToolError> {
        let fetched = fetch::chart(&self.store, &call.session, &args.patient).await?;
        call.audit.reads(fetched.reads);
        if fetched.unparsed > 0 {
            warn!(unparsed = fetched.unparsed, "some resources did not parse and were left out");
        }
        let summary = summary::summarize(&fetched.chart, self.today());
        let request = WritingRequest { purpose: Purpose::PreVisitSummary, statements: summary::statements(&summary) };
        let narrative = self.writer.write(&call.session, &request).await.map_err(|_| ToolError::UpstreamUnavailable)?;
        call.audit.writer(&narrative);
        let text = format!("{}\n\n{}", summary::render_text(&summary), narrative.paragraph());
        let result = json!({ "summary": summary, "narrative": narrative, "unparsed_resources": fetched.unparsed });
        Ok(ToolReply { result, text })
    }
}

impl<S, W> PatientSummary<S, W> {
    fn today(&self) -> Date {
        self.as_of.unwrap_or_else(|| OffsetDateTime::now_utc().date())
    }
}

#[cfg(test)]
mod tests {
    use shared::authz::Authorizer;
    use shared::tool::context_matches_schema;

    use super::*;

    #[test]
    fn the_context_matches_the_cedar_schema() {
        assert!(context_matches_schema::<SummaryContext>(&Authorizer::embedded().unwrap()));
    }
}
