//! `prior_auth_draft`: Cedar on the patient (the ordering practitioner must treat them: the draft reads the
//! patient's name, identifiers and birth date for the Claim), then the minimal FHIR reads, the evaluation,
//! the PAS Bundle and the letter, sealed and stored as a draft.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use shared::ToolError;
use shared::audit::Detail;
use shared::envelope::ToolReply;
use shared::fhir::relationship::care_relationship;
use shared::fhir::{FhirId, FhirStore};
use shared::identity::{Principal, Role};
use shared::keys::Keys;
use shared::knowledge::KnowledgeBase;
use shared::tool::{Action, Call, CedarContext, Permit, Resource, ToolAction};
use shared::writer::{ClinicalWriter, Purpose, WritingRequest};
use tracing::warn;

use crate::args::{DraftArgs, DraftRequest};
use crate::domain::chart::Chart;
use crate::domain::evaluate::{Evaluation, evaluate};
use crate::domain::letter;
use crate::domain::logic::Status;
use crate::domain::pas::{self, Parties};
use crate::domain::policy::CoveragePolicy;
use crate::policies::find_policy;
use crate::queries::{self, Fetched, reference_of};
use crate::reply;
use crate::service::{DraftContent, PriorAuth, new_draft_id, now_rfc3339};
use crate::store::{DraftStatus, DraftStore};

/// The draft action over the function's shared state.
pub struct PriorAuthDraft<P>(pub Arc<P>);

/// The context of `prior_auth.draft`.
#[derive(Debug, Serialize)]
pub struct DraftContext {
    /// The ordering practitioner (the clinician themselves, or the one a specialist names) has a care
    /// relationship with the patient: the minimum necessary for reading the patient's demographics.
    pub ordering_care_relationship: bool,
}

impl CedarContext for DraftContext {
    const ACTION: Action = Action::PriorAuthDraft;
    fn ceiling() -> Self {
        Self { ordering_care_relationship: true }
    }
}

/// What the decision rests on, for the run step: the ordering practitioner and the payer policy.
pub struct Ordered {
    practitioner: FhirId,
    policy: CoveragePolicy,
}

impl<S, K, W, D, C> ToolAction for PriorAuthDraft<PriorAuth<S, K, W, D, C>>
where
    S: FhirStore,
    K: KnowledgeBase,
    W: ClinicalWriter,
    D: DraftStore,
    C: Keys,
{
    type Input = DraftArgs;
    type Args = DraftRequest;
    type Facts = Ordered;

    fn check(input: DraftArgs) -> Result<DraftRequest, ToolError> {
        DraftRequest::from_input(input)
    }

    async fn authorize(&self, call: &Call<'_>, args: &DraftRequest) -> Result<Permit<Ordered>, ToolError> {
        let pa = &*self.0;
        call.audit.patient(&args.patient);
        // Role and organisation first: a coder or another organisation is denied before any read.
        call.gate.require_ceiling::<DraftContext>(Resource::Patient(&args.patient))?;
        let practitioner = ordering_practitioner(call.principal, args.named_practitioner.clone())?;
        // The payer policy (not PHI) before the relationship reads: an unknown policy or service is invalid
        // and reads nothing clinical.
        let (policy_id, system) = (args.policy_id.as_deref(), args.service_system.as_deref());
        let policy = find_policy(&pa.knowledge, &call.session, policy_id, system, &args.service_code).await?;
        let since = pa.today() - time::Duration::days(i64::from(pa.care_lookback_days));
        let relationship =
            care_relationship(&pa.store, &call.session, &args.patient, Some(&practitioner), since).await?;
        call.audit.relationship_reads(&relationship.reads);
        let context = DraftContext { ordering_care_relationship: relationship.established };
        let permit = call.gate.require(Resource::Patient(&args.patient), &context)?;
        Ok(permit.with(Ordered { practitioner, policy }))
    }

    async fn run(&self, call: &Call<'_>, permit: Permit<Ordered>, args: DraftRequest) -> Result<ToolReply, ToolError> {
        let pa = &*self.0;
        let Ordered { practitioner, policy } = permit.into_facts();
        let fetched = queries::fetch(&pa.store, &call.session, &args.patient, &practitioner, &policy).await?;
        call.audit.reads(fetched.reads.iter().cloned());
        let (chart, unparsed) = Chart::from_json(&fetched.evidence);
        if unparsed > 0 {
            warn!(unparsed, "some resources did not parse and were left out");
        }
        let evaluation = evaluate(&policy, &chart, pa.today());
        // The seal id binds the ciphertext to this draft; the store may hand out its own handle (a Binary id).
        let seal_id = new_draft_id();
        let bundle = bundle(pa, &seal_id, &policy, &evaluation, fetched)?;
        let request =
            WritingRequest { purpose: Purpose::PriorAuthLetter, statements: letter::statements(&policy, &evaluation) };
        let narrative = pa.writer.write(&call.session, &request).await.map_err(|_| ToolError::UpstreamUnavailable)?;
        call.audit.writer(&narrative);

        let unmet = evaluation.overall != Status::Met;
        let content = DraftContent {
            bundle,
            evaluation: serde_json::to_value(&evaluation).map_err(|_| ToolError::Internal)?,
            letter: serde_json::to_value(&narrative).map_err(|_| ToolError::Internal)?,
            attestation: None,
        };
        let content_hash = content.content_hash()?;
        let patient = pa.draft_patient(&call.session, &args.patient).await?;
        let stored = pa.seal(&call.session, &seal_id, &patient, DraftStatus::Draft, unmet, &content).await?;
        let draft_id = pa.drafts.create(&call.session, &stored).await?;
        call.audit.detail(Detail::PriorAuthDraft { draft_id: draft_id.clone(), content_hash: content_hash.clone() });
        let drafted = reply::Drafted { draft_id: &draft_id, content_hash: &content_hash, unparsed };
        Ok(reply::draft(&drafted, &policy, &evaluation, &content, &narrative))
    }
}

/// A clinician orders as themselves; a specialist drafts for a named practitioner.
fn ordering_practitioner(principal: &Principal, named: Option<FhirId>) -> Result<FhirId, ToolError> {
    match (principal.roles.contains(&Role::Clinician), principal.practitioner_id.clone()) {
        (true, Some(own)) => {
            if named.as_ref().is_some_and(|n| n != &own) {
                return Err(ToolError::invalid(
                    "a clinician orders as themselves; leave `ordering_practitioner_id` out",
                ));
            }
            Ok(own)
        }
        _ => named.ok_or_else(|| {
            ToolError::invalid("`ordering_practitioner_id` is required when the caller is not the ordering clinician")
        }),
    }
}

/// The PAS Bundle: the Claim, its parties and every cited resource, so each reference resolves inside it.
fn bundle<S, K, W, D, C>(
    pa: &PriorAuth<S, K, W, D, C>,
    seal_id: &str,
    policy: &CoveragePolicy,
    evaluation: &Evaluation,
    fetched: Fetched,
) -> Result<Value, ToolError> {
    let patient = fetched.patient.ok_or(ToolError::NotFound)?;
    let practitioner =
        fetched.practitioner.ok_or_else(|| ToolError::invalid("the ordering practitioner was not found"))?;
    let cited = evaluation.references();
    let evidence: Vec<Value> = fetched
        .evidence
        .into_iter()
        .filter(|r| reference_of(r).is_some_and(|reference| cited.contains(&reference)))
        .collect();
    let parties = Parties { base: &pa.fhir_base, patient, practitioner, provider_organization: &pa.tenant };
    Ok(pas::bundle(seal_id, &now_rfc3339()?, policy, evaluation, &parties, &evidence))
}

#[cfg(test)]
mod tests {
    use shared::authz::Authorizer;
    use shared::tool::context_matches_schema;

    use super::*;

    #[test]
    fn the_context_matches_the_cedar_schema() {
        assert!(context_matches_schema::<DraftContext>(&Authorizer::embedded().unwrap()));
    }
}
