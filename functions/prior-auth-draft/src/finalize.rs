//! `prior_auth_finalize`: the treating clinician's sign-off. Cedar on the care relationship and the draft's
//! unmet criteria; then the sealed draft is opened (which proves its flags were not edited), checked against
//! the content the clinician signed, attested and replaced only if nobody changed it since.
//!
//! The attestation and any override come from the clinician through the application (`Call::channel`),
//! bound to the draft id and the hash of the content they reviewed; the model only names the draft.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use shared::ToolError;
use shared::audit::Detail;
use shared::envelope::ToolReply;
use shared::fhir::relationship::care_relationship;
use shared::fhir::{FhirId, FhirStore};
use shared::keys::Keys;
use shared::phi;
use shared::tool::{Action, Call, CedarContext, Permit, Resource, Signoff, ToolAction};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use tracing::error;

use crate::args::{FinalizeArgs, FinalizeRequest};
use crate::reply;
use crate::service::{DraftContent, PriorAuth, now_rfc3339};
use crate::store::{DraftStatus, DraftStore, StoredDraft, Versioned};

/// The finalize action over the function's shared state.
pub struct PriorAuthFinalize<P>(pub Arc<P>);

/// The context of `prior_auth.finalize`.
#[derive(Debug, Serialize)]
pub struct FinalizeContext {
    pub care_relationship: bool,
    pub unmet_criteria: bool,
    /// The clinician's sign-off carries an override reason.
    pub override_reason: bool,
}

impl CedarContext for FinalizeContext {
    const ACTION: Action = Action::PriorAuthFinalize;
    fn ceiling() -> Self {
        Self { care_relationship: true, unmet_criteria: false, override_reason: true }
    }
}

/// What the decision read, for the run step: the draft (still sealed), its version and the sign-off.
pub struct Decided {
    draft: StoredDraft,
    version: String,
    patient: FhirId,
    signoff: Signoff,
}

impl<S, K, W, D, C> ToolAction for PriorAuthFinalize<PriorAuth<S, K, W, D, C>>
where
    S: FhirStore,
    D: DraftStore,
    C: Keys,
{
    type Input = FinalizeArgs;
    type Args = FinalizeRequest;
    type Facts = Decided;

    fn check(input: FinalizeArgs) -> Result<FinalizeRequest, ToolError> {
        FinalizeRequest::from_input(input)
    }

    async fn authorize(&self, call: &Call<'_>, args: &FinalizeRequest) -> Result<Permit<Decided>, ToolError> {
        let pa = &*self.0;
        call.audit.detail(finalize_detail(&args.draft_id, false, None));
        // Could anything allow this caller? If not (not a clinician), deny before reading even the draft.
        call.gate.require_ceiling::<FinalizeContext>(Resource::AnyPatient)?;
        let signoff = signoff_for(call, &args.draft_id)?;
        call.audit.detail(finalize_detail(&args.draft_id, false, Some(&signoff)));
        // The draft's clear metadata (patient, unmet flag) is what the decision needs; nothing is opened yet.
        let Versioned { draft, version } = pa
            .drafts
            .get(&call.session, &args.draft_id)
            .await?
            .filter(|v| v.draft.tenant == pa.tenant)
            .ok_or(ToolError::NotFound)?;
        let patient = FhirId::parse(&draft.patient).map_err(|_| ToolError::Internal)?;
        call.audit.patient(&patient);
        let since = pa.today() - Duration::days(i64::from(pa.care_lookback_days));
        let practitioner = call.principal.practitioner_id.as_ref();
        let relationship = care_relationship(&pa.store, &call.session, &patient, practitioner, since).await?;
        call.audit.relationship_reads(&relationship.reads);
        let context = FinalizeContext {
            care_relationship: relationship.established,
            unmet_criteria: draft.unmet_criteria,
            override_reason: signoff.override_reason.is_some(),
        };
        let permit = call.gate.require(Resource::Patient(&patient), &context)?;
        Ok(permit.with(Decided { draft, version, patient, signoff }))
    }

    async fn run(
        &self,
        call: &Call<'_>,
        permit: Permit<Decided>,
        args: FinalizeRequest,
    ) -> Result<ToolReply, ToolError> {
        let pa = &*self.0;
        let Decided { draft, version, patient, signoff } = permit.into_facts();
        if draft.status == DraftStatus::Final {
            return Err(ToolError::invalid("the draft is already finalized"));
        }
        let draft_patient = pa.draft_patient(&call.session, &patient).await?;
        // Opening proves the clear status and unmet flag are the sealed ones (they are in the encryption
        // context); the content must also agree with them, and carry no attestation yet.
        let mut content = pa.open(&call.session, &draft, &draft_patient).await?;
        let sealed_unmet = content.evaluation.get("overall").and_then(|o| o.as_str()) != Some("met");
        if sealed_unmet != draft.unmet_criteria || content.attestation.is_some() {
            error!("a draft's sealed evaluation or attestation disagrees with its metadata");
            return Err(ToolError::Internal);
        }
        if content.content_hash()? != signoff.content_hash {
            return Err(ToolError::invalid(
                "the sign-off is for other content than this draft holds; show the clinician the draft again",
            ));
        }
        attest(&mut content, call, &signoff, draft.unmet_criteria)?;
        call.audit.detail(finalize_detail(&args.draft_id, true, Some(&signoff)));
        let sealed = pa
            .seal(&call.session, &draft.id, &draft_patient, DraftStatus::Final, draft.unmet_criteria, &content)
            .await?;
        // Only if nobody finalized (or changed) it since our read: of two concurrent finalizes, one wins.
        pa.drafts.replace(&call.session, &args.draft_id, &sealed, &version).await?;
        Ok(reply::finalized(&args.draft_id, &content, signoff.override_reason.is_some()))
    }
}

/// The sign-off the application sent for this draft. Missing, malformed, stale or for another draft: the
/// call is invalid, before any read.
fn signoff_for(call: &Call<'_>, draft_id: &str) -> Result<Signoff, ToolError> {
    let raw = call.channel.signoff.as_deref().ok_or_else(|| {
        ToolError::invalid(
            "no clinician sign-off for this draft came from the application: the clinician reviews and signs the \
             draft there first",
        )
    })?;
    let signoff = Signoff::parse(raw, OffsetDateTime::now_utc())?;
    if signoff.draft_id != draft_id {
        return Err(ToolError::invalid("the clinician's sign-off names another draft"));
    }
    Ok(signoff)
}

/// The audit detail: the override reason pseudonymised, the attestation itself left out (it stays sealed).
fn finalize_detail(draft_id: &str, attested: bool, signoff: Option<&Signoff>) -> Detail {
    Detail::PriorAuthFinalize {
        draft_id: draft_id.to_owned(),
        attested,
        content_hash: signoff.map(|s| s.content_hash.clone()),
        override_reason: signoff.and_then(|s| s.override_reason.as_deref()).map(phi::redact_free_text),
    }
}

/// The Claim becomes active and the attestation (who, when, what they stated, which content) is sealed
/// beside it.
fn attest(content: &mut DraftContent, call: &Call<'_>, signoff: &Signoff, unmet: bool) -> Result<(), ToolError> {
    let claim = content.bundle["entry"]
        .get_mut(0)
        .map(|e| &mut e["resource"])
        .filter(|r| r["resourceType"] == "Claim")
        .ok_or(ToolError::Internal)?;
    claim["status"] = json!("active");
    content.attestation = Some(json!({
        "attested_by": call.principal.subject,
        "practitioner": call.principal.practitioner_id.as_ref().map(|p| format!("Practitioner/{p}")),
        "signed_at": signoff.signed_at.format(&Rfc3339).map_err(|_| ToolError::Internal)?,
        "recorded_at": now_rfc3339()?,
        "content_hash": signoff.content_hash,
        "statement": signoff.attestation,
        "override_reason": signoff.override_reason,
        "unmet_criteria": unmet,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use shared::authz::Authorizer;
    use shared::tool::context_matches_schema;

    use super::*;

    #[test]
    fn the_context_matches_the_cedar_schema() {
        assert!(context_matches_schema::<FinalizeContext>(&Authorizer::embedded().unwrap()));
    }
}
