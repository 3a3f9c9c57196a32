//! The tool's arguments. The model fills these in, so they never name the caller, and unknown fields are
//! rejected rather than ignored.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::ToolError;

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

/// Finalise (attest) a stored draft.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalizeArgs {
    /// The id `draft` returned.
    pub draft_id: String,
    /// The clinician's attestation, in their words (10 to 1000 characters).
    pub attestation: String,
    /// Why the request should go ahead although criteria are unmet (10 to 500 characters); required then.
    #[serde(default)]
    pub override_reason: Option<String>,
}

pub fn from_arguments<T: serde::de::DeserializeOwned>(arguments: &Map<String, Value>) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(arguments.clone())).map_err(|e| {
        // serde names the field in backticks; values never appear in its messages for these types.
        let text = e.to_string();
        let field = text
            .split('`')
            .nth(1)
            .filter(|f| f.len() <= 40 && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match field {
            Some(field) if text.starts_with("unknown field") => {
                ToolError::invalid(format!("unknown argument `{field}`"))
            }
            Some(field) if text.starts_with("missing field") => ToolError::invalid(format!("`{field}` is missing")),
            _ => ToolError::invalid("the arguments do not match the tool's schema"),
        }
    })
}

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
