//! The ICD-10 coding action: Cedar on the organisation (or, for a cross-check, on the patient), then the
//! deterministic coder, the (pseudonymised) model path and the FHIR history cross-check. Envelope,
//! identity, arguments, audit and reply are the shell's.
//!
//! Minimum necessary: a patient's history is read only when Cedar allows the cross-check for that patient
//! (a coder needs the encounter the note documents to be the patient's; a clinician that, or a care
//! relationship), and the reply shows what the history says about each proposal, with references, never
//! the history list itself.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use shared::ToolError;
use shared::envelope::ToolReply;
use shared::fhir::FhirStore;
use shared::fhir::relationship::{CareRelationship, care_relationship, encounter_of_patient};
use shared::identity::Role;
use shared::knowledge::KnowledgeBase;
use shared::model::LanguageModel;
use shared::phi;
use shared::tool::{Action, Call, CedarContext, ModelUse, Permit, Resource, ToolAction};
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

use crate::args::{CodingArgs, CodingInput};
use crate::model_path::{merge, model_path};
use crate::table::CodeTable;
use crate::{coder, history, reply};

/// The coding tool, built once at cold start.
pub struct Icd10Coding<S, M, K> {
    pub store: S,
    /// The care-relationship window for a clinician's cross-check (`CARE_RELATIONSHIP_LOOKBACK_DAYS`).
    pub care_lookback_days: u32,
    /// `None`: the deterministic coder alone (the local default).
    pub model: Option<M>,
    pub knowledge: K,
}

/// The context of `icd10_coding.propose`: the links to the patient that a cross-check rests on (both false
/// when no patient is named and the resource is the organisation).
#[derive(Debug, Serialize)]
pub struct CodingContext {
    /// The encounter the note documents is one of the patient's encounters.
    pub encounter_of_patient: bool,
    /// The caller's practitioner record is linked to the patient (as for `patient_summary.read`).
    pub care_relationship: bool,
}

impl CedarContext for CodingContext {
    const ACTION: Action = Action::Icd10CodingPropose;
    fn ceiling() -> Self {
        Self { encounter_of_patient: true, care_relationship: true }
    }
}

impl<S: FhirStore, M: LanguageModel, K: KnowledgeBase> ToolAction for Icd10Coding<S, M, K> {
    type Input = CodingInput;
    type Args = CodingArgs;
    type Facts = ();

    fn check(input: CodingInput) -> Result<CodingArgs, ToolError> {
        CodingArgs::from_input(input)
    }

    async fn authorize(&self, call: &Call<'_>, args: &CodingArgs) -> Result<Permit, ToolError> {
        let Some(patient) = &args.patient else {
            let context = CodingContext { encounter_of_patient: false, care_relationship: false };
            return call.gate.require(Resource::Organization, &context);
        };
        call.audit.patient(patient);
        call.gate.require_ceiling::<CodingContext>(Resource::Patient(patient))?;
        // The cheapest link first: the note's encounter. Only a clinician without it has a care relationship
        // looked up (a coder's never counts).
        let encounter = match &args.encounter {
            Some(encounter) => encounter_of_patient(&self.store, &call.session, patient, encounter).await?,
            None => CareRelationship { established: false, reads: Vec::new() },
        };
        call.audit.relationship_reads(&encounter.reads);
        let care = if !encounter.established && call.principal.roles.contains(&Role::Clinician) {
            let since = OffsetDateTime::now_utc().date() - Duration::days(i64::from(self.care_lookback_days));
            let practitioner = call.principal.practitioner_id.as_ref();
            let care = care_relationship(&self.store, &call.session, patient, practitioner, since).await?;
            call.audit.relationship_reads(&care.reads);
            care.established
        } else {
            false
        };
        let context = CodingContext { encounter_of_patient: encounter.established, care_relationship: care };
        call.gate.require(Resource::Patient(patient), &context)
    }

    async fn run(&self, call: &Call<'_>, _permit: Permit, args: CodingArgs) -> Result<ToolReply, ToolError> {
        let note = args.note.as_str();
        // Read since cold start on a background thread (`code_data::warm_up`); a test checks it is readable.
        let table = CodeTable::embedded().map_err(|_| ToolError::Internal)?;
        // Locally nothing leaves the process, so the coder reads the note as written; what goes to a model (and
        // any log) is the pseudonymised text.
        let coding = coder::code_note(table, note);
        let pseudo = phi::pseudonymise(note);
        let history = async {
            match &args.patient {
                None => Ok(None),
                Some(patient) => history::read(&self.store, &call.session, patient).await.map(Some),
            }
        };
        let model = model_path(self.model.as_ref(), &self.knowledge, table, &call.session, &pseudo);
        let (history, model) = tokio::join!(history, model);
        let history = history?;
        if let Some(h) = &history {
            call.audit.reads(h.reads.iter().cloned());
            if h.unparsed > 0 {
                warn!(unparsed = h.unparsed, "some history resources did not parse and were left out");
            }
        }
        call.audit.model(model.stats.model.as_deref(), model_use(model.stats.status));

        let proposals = merge(table, note, &pseudo, &coding, &model.selected, history.as_ref());
        let codes: Vec<&str> = proposals.iter().map(|p| p.code).collect();
        let unaddressed = history.as_ref().map(|h| history::unaddressed(h, note, &codes)).unwrap_or_default();
        let cross_check = match &history {
            None => "skipped: no patient id".to_owned(),
            Some(h) => format!(
                "done: {} history facts mapped ({} unmapped conditions, {} inactive) with {}",
                h.facts.len(),
                h.unmapped_conditions,
                h.inactive_conditions,
                history::MAP_NAME
            ),
        };
        info!(
            proposals = proposals.len(),
            skipped = coding.skipped.len(),
            phi_tokens = pseudo.replacements.len(),
            model_status = model.stats.status,
            model_dropped = model.stats.dropped,
            "coding finished"
        );
        let phi_counts: BTreeMap<String, usize> =
            pseudo.counts().into_iter().map(|(kind, n)| (reply::name_of(&kind), n)).collect();
        let text = reply::card(&proposals, &cross_check, &unaddressed, &model.stats);
        let result = json!({
            "proposals": proposals,
            "skipped": reply::skipped_summary(&coding.skipped),
            "cross_check": cross_check,
            // Per proposal: its history status and references. The history itself is not listed (minimum
            // necessary): only the facts the note or a proposal touches are shown.
            "history": history.as_ref().map(|h| json!({
                "map": history::MAP_NAME, "facts_read": h.facts.len(), "unaddressed_chronic_conditions": unaddressed,
            })),
            "model": model.stats,
            "pseudonymisation": {"replaced": phi_counts, "applies_to": "every model request and log line"},
            "offsets": reply::OFFSETS,
            "grounding_formula": reply::GROUNDING_FORMULA,
            "patient": args.patient.as_ref().map(|p| format!("Patient/{p}")),
            "encounter": args.encounter.as_ref().map(|e| format!("Encounter/{e}")),
            "status": "proposal: review before use; nothing was written to the record",
        });
        Ok(ToolReply { result, text })
    }
}

/// The model path's status, as the audit record's model use.
fn model_use(status: &str) -> ModelUse {
    match status {
        "used" => ModelUse::Used,
        "guardrail_intervened" => ModelUse::GuardrailIntervened,
        "unavailable" => ModelUse::Unavailable,
        "unreadable_answer" => ModelUse::UnreadableAnswer,
        _ => ModelUse::NotConfigured,
    }
}

#[cfg(test)]
mod tests {
    use shared::authz::Authorizer;
    use shared::tool::context_matches_schema;

    use super::*;

    #[test]
    fn the_context_matches_the_cedar_schema() {
        assert!(context_matches_schema::<CodingContext>(&Authorizer::embedded().unwrap()));
    }
}
