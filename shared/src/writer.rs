//! The clinical-writer port: turns structured, cited facts into prose.
//!
//! Implementations receive only statements that already carry their FHIR citations, so every sentence
//! they return can be traced back. The local writer is deterministic; the Bedrock writer (`shared-aws`)
//! goes through a Guardrail and a contextual grounding check.

use std::future::Future;

use serde::Serialize;

use crate::session::SessionContext;

/// One fact in plain clinical words, with the FHIR references (`Type/id`) it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub text: String,
    pub sources: Vec<String>,
}

/// What the prose is for; writers may phrase differently per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    PreVisitSummary,
    /// A prior-authorization letter of medical necessity, from evaluated criteria only.
    PriorAuthLetter,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WritingRequest {
    pub purpose: Purpose,
    pub statements: Vec<Statement>,
}

/// Prose split into sentences, each keeping the citations of the statements it was written from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Narrative {
    pub sentences: Vec<Statement>,
    /// Which writer produced it (`local-deterministic`, or a model id).
    pub writer: String,
    /// What the Guardrail did, when a model was asked: `none`, `intervened` or `grounding_blocked` (the
    /// latter two with the deterministic sentences in place of the model's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_action: Option<String>,
}

impl Narrative {
    pub fn paragraph(&self) -> String {
        self.sentences.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the clinical writer is unavailable")]
    Unavailable,
}

pub trait ClinicalWriter: Send + Sync {
    fn write(
        &self,
        session: &SessionContext,
        request: &WritingRequest,
    ) -> impl Future<Output = Result<Narrative, WriterError>> + Send;
}

/// Deterministic writer for the local stack and tests: one sentence per statement, in the order given,
/// so the prose says nothing the facts do not.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalWriter;

impl ClinicalWriter for LocalWriter {
    async fn write(&self, _session: &SessionContext, request: &WritingRequest) -> Result<Narrative, WriterError> {
        let sentences = request
            .statements
            .iter()
            .filter(|s| !s.text.trim().is_empty())
            .map(|s| Statement { text: sentence(&s.text), sources: s.sources.clone() })
            .collect();
        Ok(Narrative { sentences, writer: "local-deterministic".to_owned(), guardrail_action: None })
    }
}

fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut out = String::with_capacity(text.len() + 1);
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}
