//! The model port: one guarded model call, returning our own types.
//!
//! Text that came from a person (a user's question, a clinical note) is kept apart from the tool's own
//! instructions so that an adapter can put only the former under a Guardrail's content filters and the
//! retrieved sources in as grounding sources. A Guardrail intervention is an outcome, not an error: the tool
//! falls back to its deterministic output and says so in the reply and the audit record.

use std::future::Future;
use std::sync::Mutex;

use crate::error::ToolError;
use crate::session::SessionContext;

/// One model call. Identifiers the model does not need are replaced by tokens before a request is built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelRequest {
    /// The system prompt: the tool's own words.
    pub system: String,
    /// Text written by a person (user question, note text): checked by the Guardrail as guard content.
    pub guarded_text: String,
    /// The tool's own prompt text around the guarded text; not subject to the Guardrail's input filters.
    pub instructions: String,
    /// Retrieved or structured sources the answer must be grounded in.
    pub grounding_sources: Vec<String>,
    pub max_tokens: u32,
}

/// What a model call ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOutcome {
    /// The model answered and the Guardrail let the answer through.
    Text { text: String, model: String },
    /// The Guardrail blocked the input or the output; no model text may be shown.
    GuardrailIntervened { model: String },
}

impl ModelOutcome {
    /// The model id, for the audit record.
    pub fn model(&self) -> &str {
        match self {
            Self::Text { model, .. } | Self::GuardrailIntervened { model } => model,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Throttled, timed out or failed after the bounded retries.
    #[error("the model service is unavailable")]
    Unavailable,
    /// The service refused the request as built (validation, access, missing model or guardrail).
    #[error("the model service rejected the request")]
    Rejected,
    /// The reply had no usable content.
    #[error("the model reply could not be read")]
    Decode,
}

impl From<ModelError> for ToolError {
    fn from(error: ModelError) -> Self {
        match error {
            // A refused request is a configuration problem the caller cannot fix by retrying, but from the
            // caller's side the dependency is still not serving them.
            ModelError::Unavailable | ModelError::Rejected | ModelError::Decode => ToolError::UpstreamUnavailable,
        }
    }
}

pub trait LanguageModel: Send + Sync {
    fn converse(
        &self,
        session: &SessionContext,
        request: &ModelRequest,
    ) -> impl Future<Output = Result<ModelOutcome, ModelError>> + Send;
}

/// A test double: answers every call with the same outcome and keeps the requests it saw, so tests can
/// assert on what a tool would have sent to a model.
#[derive(Debug)]
pub struct ScriptedModel {
    outcome: Result<ModelOutcome, ModelError>,
    seen: Mutex<Vec<ModelRequest>>,
}

impl ScriptedModel {
    pub fn new(outcome: Result<ModelOutcome, ModelError>) -> Self {
        Self { outcome, seen: Mutex::new(Vec::new()) }
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.seen.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

impl LanguageModel for ScriptedModel {
    async fn converse(&self, _session: &SessionContext, request: &ModelRequest) -> Result<ModelOutcome, ModelError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request.clone());
        }
        self.outcome.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::session::SessionId;

    #[tokio::test]
    async fn scripted_model_records_requests_and_replays_the_outcome() {
        let session =
            SessionContext::new(SessionId::parse("s-1").unwrap(), "r", Instant::now() + Duration::from_secs(5));
        let model = ScriptedModel::new(Ok(ModelOutcome::GuardrailIntervened { model: "m".into() }));
        let request = ModelRequest { guarded_text: "note".into(), max_tokens: 10, ..ModelRequest::default() };
        let outcome = model.converse(&session, &request).await.unwrap();
        assert_eq!(outcome.model(), "m");
        assert_eq!(model.requests(), vec![request]);
    }

    #[test]
    fn every_model_error_is_upstream_unavailable_to_the_caller() {
        for e in [ModelError::Unavailable, ModelError::Rejected, ModelError::Decode] {
            assert_eq!(ToolError::from(e), ToolError::UpstreamUnavailable);
        }
    }
}
