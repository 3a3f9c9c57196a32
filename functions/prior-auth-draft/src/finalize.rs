//! `prior_auth_finalize`: the treating clinician's sign-off. Cedar on the care relationship and the draft's
//! unmet criteria; then the sealed draft is opened, attested and replaced only if nobody changed it since.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use shared::ToolError;
use shared::audit::Detail;
use shared::envelope::ToolReply;
use shared::fhir::relationship::care_relationship;
use shared::fhir::{FhirId, FhirStore};
use shared::keys::{EncryptionContext, Keys};
use shared::tool::{Action, Call, CedarContext, Permit, Resource, ToolAction};
use time::Duration;

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
    pub override_reason: bool,
}

impl CedarContext for FinalizeContext {
    const ACTION: Action = Action::PriorAuthFinalize;
    fn ceiling() -> Self {
        Self { care_relationship: true, unmet_criteria: false, override_reason: true }
    }
}

/// What the decision read, for the run step: the draft (still sealed) and its version.
pub struct Decided {
    draft: StoredDraft,
    version: Option<String>,
    patient: FhirId,
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
        call.audit.detail(Detail::PriorAuthFinalize {
            draft_id: args.draft_id.clone(),
            attested: false,
            override_reason: None,
        });
        // Could anything allow this caller? If not (not a clinician), deny before reading even the draft.
        call.gate.require_ceiling::<FinalizeContext>(Resource::AnyPatient)?;
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
            override_reason: args.override_reason.is_some(),
        };
        let permit = call.gate.require(Resource::Patient(&patient), &context)?;
        Ok(permit.with(Decided { draft, version, patient }))
    }

    async fn run(
        &self,
        call: &Call<'_>,
        permit: Permit<Decided>,
        args: FinalizeRequest,
    ) -> Result<ToolReply, ToolError> {
        let pa = &*self.0;
        let Decided { draft, version, patient } = permit.into_facts();
        if draft.status == DraftStatus::Final {
            return Err(ToolError::invalid("the draft is already finalized"));
        }
        let context = EncryptionContext::draft(&pa.tenant, patient.as_str(), &draft.id);
        let plaintext = pa.keys.open(&call.session, &draft.sealed, &context).await?;
        let mut content: DraftContent = serde_json::from_slice(&plaintext).map_err(|_| ToolError::Internal)?;
        attest(&mut content, call, &args, draft.unmet_criteria)?;
        // An override is the clinician's, so only the reason is kept beside the attestation it qualifies.
        call.audit.detail(Detail::PriorAuthFinalize {
            draft_id: args.draft_id.clone(),
            attested: true,
            override_reason: args.override_reason.clone(),
        });
        let sealed = pa
            .seal(&call.session, &draft.id, patient.as_str(), DraftStatus::Final, draft.unmet_criteria, &content)
            .await?;
        // Only if nobody finalized (or changed) it since our read: of two concurrent finalizes, one wins.
        pa.drafts.replace(&call.session, &args.draft_id, &sealed, version.as_deref()).await?;
        Ok(reply::finalized(&args.draft_id, &content, args.override_reason.is_some()))
    }
}

/// The Claim becomes active and the attestation (who, when, what they stated) is sealed beside it.
fn attest(content: &mut DraftContent, call: &Call<'_>, args: &FinalizeRequest, unmet: bool) -> Result<(), ToolError> {
    let claim = content.bundle["entry"]
        .get_mut(0)
        .map(|e| &mut e["resource"])
        .filter(|r| r["resourceType"] == "Claim")
        .ok_or(ToolError::Internal)?;
    claim["status"] = json!("active");
    content.attestation = Some(json!({
        "attested_by": call.principal.subject,
        "practitioner": call.principal.practitioner_id.as_ref().map(|p| format!("Practitioner/{p}")),
        "attested_at": now_rfc3339()?,
        "statement": args.attestation,
        "override_reason": args.override_reason,
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
