//! The clinical writer on Bedrock: Converse (with the Guardrail) rewrites the cited facts as prose, then
//! `ApplyGuardrail` checks that prose for contextual grounding against the facts. Prose that the Guardrail
//! blocks, that is below the grounding or relevance threshold, or that does not keep one sentence per fact
//! is never returned: the deterministic sentences are, and the narrative says why.

use aws_sdk_bedrockruntime::operation::apply_guardrail::ApplyGuardrailOutput;
use aws_sdk_bedrockruntime::types::{
    GuardrailAction, GuardrailContentBlock, GuardrailContentQualifier, GuardrailContentSource,
    GuardrailContextualGroundingPolicyAction, GuardrailTextBlock,
};
use shared::model::{LanguageModel, ModelError, ModelOutcome, ModelRequest};
use shared::session::SessionContext;
use shared::writer::{ClinicalWriter, LocalWriter, Narrative, Statement, WriterError, WritingRequest};
use tracing::{Instrument, info, info_span, warn};

use crate::bedrock::{BedrockModel, query_text};
use crate::{Upstream, classify, error_code};

const SYSTEM: &str = "You are a clinical documentation assistant. You rewrite the numbered facts you are given \
as plain, concise sentences for a clinician. You never add, infer or omit facts, numbers, dates or units.";

/// Room for a short sentence per fact.
const TOKENS_PER_FACT: u32 = 80;

/// What the grounding check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounding {
    Grounded,
    /// Below a grounding or relevance threshold, or intervened for another policy.
    Blocked,
}

/// Runs the contextual grounding check of `guardrail` on `candidate`, against `sources` for `query`.
///
/// A reply without a contextual grounding assessment counts as blocked: a Guardrail without a grounding
/// policy cannot vouch for the text.
pub async fn check_grounding(
    model: &BedrockModel,
    session: &SessionContext,
    sources: &str,
    query: &str,
    candidate: &str,
) -> Result<Grounding, ModelError> {
    let span = info_span!("bedrock_apply_guardrail", otel.kind = "client", session_id = %session.session_id);
    async {
        let config = model.call_config(session).map_err(to_model_error)?;
        let output = model
            .client()
            .apply_guardrail()
            .guardrail_identifier(model.guardrail().identifier())
            .guardrail_version(model.guardrail().version())
            .source(GuardrailContentSource::Output)
            .content(text_block(sources, GuardrailContentQualifier::GroundingSource)?)
            .content(text_block(query_text(query.trim())?, GuardrailContentQualifier::Query)?)
            .content(text_block(candidate, GuardrailContentQualifier::GuardContent)?)
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| {
                warn!(error = error_code(&e), "apply guardrail failed");
                to_model_error(classify(&e))
            })?;
        let grounding = grounding_of(&output);
        info!(grounded = grounding == Grounding::Grounded, "grounding checked");
        Ok(grounding)
    }
    .instrument(span)
    .await
}

fn grounding_of(output: &ApplyGuardrailOutput) -> Grounding {
    if output.action == GuardrailAction::GuardrailIntervened {
        return Grounding::Blocked;
    }
    let filters: Vec<_> = output
        .assessments
        .iter()
        .filter_map(|a| a.contextual_grounding_policy.as_ref())
        .flat_map(|p| p.filters.iter().flatten())
        .collect();
    let grounded = !filters.is_empty()
        && filters
            .iter()
            .all(|f| f.action != GuardrailContextualGroundingPolicyAction::Blocked && f.score >= f.threshold);
    if grounded { Grounding::Grounded } else { Grounding::Blocked }
}

fn text_block(text: &str, qualifier: GuardrailContentQualifier) -> Result<GuardrailContentBlock, ModelError> {
    GuardrailTextBlock::builder()
        .text(text)
        .qualifiers(qualifier)
        .build()
        .map(GuardrailContentBlock::Text)
        .map_err(|_| ModelError::Rejected)
}

fn to_model_error(upstream: Upstream) -> ModelError {
    match upstream {
        Upstream::Unavailable => ModelError::Unavailable,
        Upstream::Rejected => ModelError::Rejected,
    }
}

/// [`ClinicalWriter`] on Bedrock, falling back to [`LocalWriter`] whenever the model's prose cannot be
/// shown. The fallback is a degraded answer, not an error: the summary is still complete and cited.
#[derive(Debug)]
pub struct BedrockWriter {
    model: BedrockModel,
}

impl BedrockWriter {
    pub fn new(model: BedrockModel) -> Self {
        Self { model }
    }

    async fn fallback(
        &self,
        session: &SessionContext,
        request: &WritingRequest,
        action: &str,
    ) -> Result<Narrative, WriterError> {
        let mut narrative = LocalWriter.write(session, request).await?;
        narrative.writer = format!("local-deterministic (fallback from {})", self.model.model_id());
        narrative.guardrail_action = Some(action.to_owned());
        Ok(narrative)
    }
}

/// The prompt: instructions (ours) and one numbered grounding source per fact.
fn prompt(statements: &[Statement]) -> ModelRequest {
    let facts: Vec<String> =
        statements.iter().enumerate().map(|(i, s)| format!("{}. {}", i + 1, s.text.trim())).collect();
    let instructions = format!(
        "Rewrite each of the {n} numbered facts as one sentence, in the same order. Answer with exactly {n} \
         lines, each starting with the fact's number and a period, and nothing else.",
        n = facts.len()
    );
    let max_tokens = TOKENS_PER_FACT.saturating_mul(u32::try_from(facts.len()).unwrap_or(u32::MAX));
    ModelRequest {
        system: SYSTEM.to_owned(),
        guarded_text: String::new(),
        instructions,
        grounding_sources: facts,
        max_tokens,
    }
}

/// The model's numbered lines back as sentences, each with the citations of its fact; `None` when the
/// lines do not map one to one onto the facts.
fn sentences(text: &str, statements: &[Statement]) -> Option<Vec<Statement>> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() != statements.len() {
        return None;
    }
    lines
        .iter()
        .zip(statements)
        .enumerate()
        .map(|(i, (line, statement))| {
            let sentence = line.strip_prefix(&format!("{}.", i + 1))?.trim();
            (!sentence.is_empty()).then(|| Statement { text: sentence.to_owned(), sources: statement.sources.clone() })
        })
        .collect()
}

impl ClinicalWriter for BedrockWriter {
    async fn write(&self, session: &SessionContext, request: &WritingRequest) -> Result<Narrative, WriterError> {
        let statements: Vec<Statement> =
            request.statements.iter().filter(|s| !s.text.trim().is_empty()).cloned().collect();
        if statements.is_empty() {
            return LocalWriter.write(session, request).await;
        }
        let prompt = prompt(&statements);
        let text = match self.model.converse(session, &prompt).await {
            Ok(ModelOutcome::Text { text, .. }) => text,
            Ok(ModelOutcome::GuardrailIntervened { .. }) => return self.fallback(session, request, "intervened").await,
            Err(e) => {
                warn!(error = %e, "model unavailable; deterministic narrative used");
                return self.fallback(session, request, "model_unavailable").await;
            }
        };
        let Some(sentences) = sentences(&text, &statements) else {
            warn!("model reply did not keep one sentence per fact; deterministic narrative used");
            return self.fallback(session, request, "unparseable").await;
        };
        let candidate = sentences.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
        let sources = prompt.grounding_sources.join("\n");
        match check_grounding(&self.model, session, &sources, &prompt.instructions, &candidate).await {
            Ok(Grounding::Grounded) => Ok(Narrative {
                sentences,
                writer: self.model.model_id().to_string(),
                guardrail_action: Some("none".to_owned()),
            }),
            Ok(Grounding::Blocked) => self.fallback(session, request, "grounding_blocked").await,
            Err(e) => {
                warn!(error = %e, "grounding check unavailable; deterministic narrative used");
                self.fallback(session, request, "grounding_unavailable").await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Vec<Statement> {
        vec![
            Statement { text: "type 2 diabetes since 2019".into(), sources: vec!["Condition/c1".into()] },
            Statement { text: "hba1c 7.9 % on 2026-10-01".into(), sources: vec!["Observation/o1".into()] },
        ]
    }

    #[test]
    fn numbered_lines_map_back_to_their_citations() {
        let out = sentences("1. Type 2 diabetes since 2019.\n\n2. HbA1c was 7.9 % on 1 Oct 2026.\n", &facts()).unwrap();
        assert_eq!(out[1].sources, vec!["Observation/o1".to_owned()]);
        assert_eq!(out[0].text, "Type 2 diabetes since 2019.");
    }

    #[test]
    fn extra_missing_or_reordered_lines_are_refused() {
        assert!(sentences("1. a\n2. b\n3. c", &facts()).is_none());
        assert!(sentences("1. a", &facts()).is_none());
        assert!(sentences("2. b\n1. a", &facts()).is_none());
        assert!(sentences("1. a\n2.", &facts()).is_none());
    }

    #[test]
    fn prompt_puts_facts_in_grounding_sources_and_nothing_in_guarded_text() {
        let p = prompt(&facts());
        assert_eq!(p.grounding_sources, vec!["1. type 2 diabetes since 2019", "2. hba1c 7.9 % on 2026-10-01"]);
        assert!(p.guarded_text.is_empty());
        assert!(p.instructions.contains("exactly 2 lines"));
        assert_eq!(p.max_tokens, 160);
    }
}
