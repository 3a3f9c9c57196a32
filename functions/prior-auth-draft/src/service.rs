//! What both prior-auth actions share: the adapters, the tenant, and sealing a draft's content.
//!
//! A draft is sealed under an encryption context that binds everything finalize decides on: the tenant, the
//! patient (as its keyed pseudonym: CloudTrail records contexts in clear), the seal id, the status and the
//! unmet-criteria flag. The flags also sit in clear beside the ciphertext, for the decision before any key
//! call; whoever edits them in storage gets a draft that no longer opens.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::ToolError;
use shared::fhir::FhirId;
use shared::keys::{EncryptionContext, KeyError, Keys};
use shared::session::SessionContext;
use time::{Date, OffsetDateTime};

use crate::store::{DraftStatus, StoredDraft};

/// The prior-auth function's state, built once at cold start and shared by its two actions.
pub struct PriorAuth<S, K, W, D, C> {
    pub store: S,
    pub knowledge: K,
    pub writer: W,
    pub drafts: D,
    pub keys: C,
    /// The organisation whose datastore this deployment serves.
    pub tenant: String,
    pub care_lookback_days: u32,
    /// The FHIR base the Bundle's `fullUrl`s are formed from.
    pub fhir_base: String,
    /// Fixes "today" for tests; `None` in production.
    pub as_of: Option<Date>,
}

/// A draft's patient: the FHIR id (the store's `securityContext`, the relationship check) and its keyed
/// pseudonym (the encryption context).
pub struct DraftPatient {
    pub id: FhirId,
    pub pseudonym: String,
}

/// The sealed part of a draft.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftContent {
    pub bundle: Value,
    pub evaluation: Value,
    pub letter: Value,
    pub attestation: Option<Value>,
}

impl DraftContent {
    /// Hex SHA-256 of what the clinician reviews (the Bundle, the evaluation and the letter, as canonical
    /// JSON: `serde_json` maps keep their keys sorted). The draft reply shows it; the clinician's sign-off
    /// must name it, so a sign-off covers exactly the content that was on their screen.
    pub fn content_hash(&self) -> Result<String, ToolError> {
        let reviewed =
            serde_json::to_vec(&(&self.bundle, &self.evaluation, &self.letter)).map_err(|_| ToolError::Internal)?;
        Ok(hex::encode(Sha256::digest(reviewed)))
    }
}

/// The encryption context of a draft in a given state.
pub fn draft_context(
    tenant: &str,
    patient_pseudonym: &str,
    draft_id: &str,
    status: DraftStatus,
    unmet: bool,
) -> EncryptionContext {
    EncryptionContext::draft(tenant, patient_pseudonym, draft_id)
        .with("status", status.as_str())
        .with("unmet_criteria", if unmet { "true" } else { "false" })
}

impl<S, K, W, D, C: Keys> PriorAuth<S, K, W, D, C> {
    pub fn today(&self) -> Date {
        self.as_of.unwrap_or_else(|| OffsetDateTime::now_utc().date())
    }

    /// The draft's patient with its keyed pseudonym (one key call).
    pub async fn draft_patient(&self, session: &SessionContext, id: &FhirId) -> Result<DraftPatient, ToolError> {
        let pseudonym = self.keys.pseudonym(session, &format!("Patient/{id}")).await?;
        Ok(DraftPatient { id: id.clone(), pseudonym })
    }

    pub async fn seal(
        &self,
        session: &SessionContext,
        draft_id: &str,
        patient: &DraftPatient,
        status: DraftStatus,
        unmet: bool,
        content: &DraftContent,
    ) -> Result<StoredDraft, ToolError> {
        let plaintext = serde_json::to_vec(content).map_err(|_| ToolError::Internal)?;
        let context = draft_context(&self.tenant, &patient.pseudonym, draft_id, status, unmet);
        let sealed = self.keys.seal(session, &context, &plaintext).await?;
        Ok(StoredDraft {
            id: draft_id.to_owned(),
            tenant: self.tenant.clone(),
            patient: patient.id.as_str().to_owned(),
            status,
            unmet_criteria: unmet,
            sealed,
        })
    }

    /// Opens a stored draft under the context its clear metadata claims: a flag or status edited in
    /// storage, or a draft moved to another patient or tenant, fails here (`Internal`, logged).
    pub async fn open(
        &self,
        session: &SessionContext,
        draft: &StoredDraft,
        patient: &DraftPatient,
    ) -> Result<DraftContent, ToolError> {
        let context = draft_context(&self.tenant, &patient.pseudonym, &draft.id, draft.status, draft.unmet_criteria);
        let plaintext = match self.keys.open(session, &draft.sealed, &context).await {
            Ok(plaintext) => plaintext,
            Err(KeyError::Integrity) => {
                tracing::error!("a stored draft does not open under its own metadata: it was changed in storage");
                return Err(ToolError::Internal);
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&plaintext).map_err(|_| ToolError::Internal)
    }
}

/// 128 random bits as hex: unguessable enough for an id that Cedar still guards.
pub fn new_draft_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

pub fn now_rfc3339() -> Result<String, ToolError> {
    OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).map_err(|_| ToolError::Internal)
}
