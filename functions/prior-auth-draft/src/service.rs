//! What both prior-auth actions share: the adapters, the tenant, and sealing a draft's content.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::ToolError;
use shared::keys::{EncryptionContext, Keys};
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

/// The sealed part of a draft.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftContent {
    pub bundle: Value,
    pub evaluation: Value,
    pub letter: Value,
    pub attestation: Option<Value>,
}

impl<S, K, W, D, C: Keys> PriorAuth<S, K, W, D, C> {
    pub fn today(&self) -> Date {
        self.as_of.unwrap_or_else(|| OffsetDateTime::now_utc().date())
    }

    pub async fn seal(
        &self,
        session: &SessionContext,
        draft_id: &str,
        patient: &str,
        status: DraftStatus,
        unmet: bool,
        content: &DraftContent,
    ) -> Result<StoredDraft, ToolError> {
        let plaintext = serde_json::to_vec(content).map_err(|_| ToolError::Internal)?;
        let context = EncryptionContext::draft(&self.tenant, patient, draft_id);
        let sealed = self.keys.seal(session, &context, &plaintext).await?;
        Ok(StoredDraft {
            id: draft_id.to_owned(),
            tenant: self.tenant.clone(),
            patient: patient.to_owned(),
            status,
            unmet_criteria: unmet,
            sealed,
        })
    }
}

/// 128 random bits as hex: unguessable enough for an id that Cedar still guards.
pub fn new_draft_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

pub fn now_rfc3339() -> Result<String, ToolError> {
    OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).map_err(|_| ToolError::Internal)
}
