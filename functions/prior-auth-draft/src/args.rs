//! The tool's arguments. The model fills these in, so they never name the caller, and unknown fields are
//! rejected rather than ignored.

use schemars::JsonSchema;
use serde::Deserialize;
use shared::ToolError;
use shared::fhir::FhirId;
use shared::tool::{Action, ToolInput};

/// Draft a prior-authorization request for a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftArgs {
    /// FHIR id of the patient.
    pub patient_id: String,
    /// The requested service's code: CPT, HCPCS or RxNorm.
    pub service_code: String,
    /// The code system of `service_code` (a FHIR system URI); any system when absent.
    #[serde(default)]
    pub service_system: Option<String>,
    /// The payer's coverage policy id; found from the service when absent.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// FHIR id of the ordering practitioner. Only for a prior-auth specialist: a clinician's own
    /// practitioner record (from the verified identity) is always used for them.
    #[serde(default)]
    pub ordering_practitioner_id: Option<String>,
}

// The attestation and any override are the clinician's own: they reach the tool only through the
// application's sign-off channel (`shared::tool::Signoff`), never as arguments the model writes.
/// Finalize a stored draft that the clinician has signed in the application.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalizeArgs {
    /// The id `prior_auth_draft` returned.
    pub draft_id: String,
}

/// What only a person may say: refused by name when it arrives as an argument.
const SIGNOFF_FIELDS: &[&str] = &["attestation", "override_reason", "clinician_signoff", "content_hash"];

/// Service codes: CPT (5 digits), HCPCS (a letter and 4 digits) or RxNorm (digits).
pub fn check_service_code(code: &str) -> Result<(), ToolError> {
    let ok = (1..=12).contains(&code.len()) && code.chars().all(|c| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(ToolError::invalid("`service_code` is not a CPT, HCPCS or RxNorm code")) }
}

pub fn check_policy_id(id: &str) -> Result<(), ToolError> {
    let ok = (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(ToolError::invalid("`policy_id` is not a valid policy id")) }
}

/// Draft ids are the draft store's handles, checked as FHIR ids before they reach a path or URL.
pub fn check_draft_id(id: &str) -> Result<(), ToolError> {
    // A draft id is the store's handle: 32 hex characters from the file store, a FHIR id (a UUID on
    // HealthLake) from the FHIR store; both fit the FHIR id syntax, which is safe in a URL path.
    let ok = shared::fhir::FhirId::parse(id).is_ok();
    if ok { Ok(()) } else { Err(ToolError::invalid("`draft_id` is not a draft id")) }
}

pub fn check_text(name: &str, text: &str, min: usize, max: usize) -> Result<String, ToolError> {
    let text = text.trim();
    let length = text.chars().count();
    if !(min..=max).contains(&length) || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ToolError::invalid(format!("`{name}` must be {min} to {max} printable characters")));
    }
    Ok(text.to_owned())
}

impl ToolInput for DraftArgs {
    const NAME: &'static str = "prior_auth_draft";
    const DESCRIPTION: &'static str = "Drafts a prior-authorization request (a Da Vinci PAS-shaped FHIR Bundle and a \
        letter of medical necessity) for a patient and a requested service: each payer criterion is checked against \
        the record and reported met, not met or insufficient evidence, with the FHIR resources it rests on. The \
        draft is not final until a treating clinician finalizes it.";
    const ACTION: Action = Action::PriorAuthDraft;
    const CHANNEL_ONLY: &'static [&'static str] = SIGNOFF_FIELDS;
}

impl ToolInput for FinalizeArgs {
    const NAME: &'static str = "prior_auth_finalize";
    const DESCRIPTION: &'static str = "Finalizes a stored prior-authorization draft after the treating clinician \
        signed it in the application (the sign-off, and any override of unmet criteria, reach the tool from the \
        application, never from you). Call it only once the clinician says they signed the draft; without their \
        sign-off for this draft and its content the call is refused.";
    const ACTION: Action = Action::PriorAuthFinalize;
    const CHANNEL_ONLY: &'static [&'static str] = SIGNOFF_FIELDS;
    // The application's confirmation step is where the clinician signs (README, "Clinician sign-off").
    const REQUIRE_CONFIRMATION: bool = true;
}

/// A checked draft request.
#[derive(Debug)]
pub struct DraftRequest {
    pub patient: FhirId,
    pub service_code: String,
    pub service_system: Option<String>,
    pub policy_id: Option<String>,
    pub named_practitioner: Option<FhirId>,
}

impl DraftRequest {
    pub fn from_input(input: DraftArgs) -> Result<Self, ToolError> {
        let patient = FhirId::argument("patient_id", &input.patient_id)?;
        check_service_code(&input.service_code)?;
        if let Some(id) = &input.policy_id {
            check_policy_id(id)?;
        }
        let named_practitioner = input
            .ordering_practitioner_id
            .as_deref()
            .map(|p| FhirId::argument("ordering_practitioner_id", p))
            .transpose()?;
        Ok(Self {
            patient,
            service_code: input.service_code,
            service_system: input.service_system,
            policy_id: input.policy_id,
            named_practitioner,
        })
    }
}

/// A checked finalize request.
#[derive(Debug)]
pub struct FinalizeRequest {
    pub draft_id: String,
}

impl FinalizeRequest {
    pub fn from_input(input: FinalizeArgs) -> Result<Self, ToolError> {
        check_draft_id(&input.draft_id)?;
        Ok(Self { draft_id: input.draft_id })
    }
}
