//! The summary's arguments, as the model writes them and once checked.

use schemars::JsonSchema;
use serde::Deserialize;
use shared::ToolError;
use shared::fhir::FhirId;
use shared::tool::{Action, ToolInput};

// The agent-facing schemas (`schemas/`) are generated from this type, so what the model is told and what the
// shell accepts cannot drift apart; doc comments here are read by the model.
/// Which patient to summarise.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryInput {
    /// FHIR id of the Patient resource to summarise (the id in `Patient/<id>`, not an MRN or a name).
    pub patient_id: String,
}

impl ToolInput for SummaryInput {
    const NAME: &'static str = "patient_summary";
    const DESCRIPTION: &'static str = "Pre-visit summary of one patient for the signed-in clinician: active problems, \
        medications, allergies, recent results with trends and care gaps, each fact citing its FHIR resource. \
        Read-only. Access needs a care relationship (or break-glass through the front end); the caller is \
        identified by their sign-in, never by an argument.";
    const ACTION: Action = Action::PatientSummaryRead;
    const CHANNEL_ONLY: &'static [&'static str] = &["break_glass", "break_glass_reason"];
}

/// The checked arguments.
#[derive(Debug)]
pub struct SummaryArgs {
    pub patient: FhirId,
}

impl SummaryArgs {
    pub fn from_input(input: SummaryInput) -> Result<Self, ToolError> {
        Ok(Self { patient: FhirId::argument("patient_id", &input.patient_id)? })
    }
}
