//! The model path of a coding call and the merge of its proposals with the deterministic coder's: retrieval,
//! a Converse call on the pseudonymised note, validation of every proposed code against the note and the
//! table, and the union with its `source`. Any failure falls back to the deterministic proposals.

use std::collections::BTreeMap;

use shared::knowledge::{KnowledgeBase, RetrievalQuery};
use shared::model::{LanguageModel, ModelOutcome};
use shared::phi::Pseudonymised;
use shared::session::SessionContext;
use tracing::warn;

use crate::coder::{self, Coding};
use crate::history::{self, History};
use crate::reply::{self, ModelStats, ProposalOut, Source};
use crate::select::{self, Selected};
use crate::table::CodeTable;

/// Passages the model is given.
const RETRIEVED_PASSAGES: u32 = 20;

/// What the model path produced.
pub struct ModelPath {
    pub stats: ModelStats,
    pub selected: Vec<Selected>,
}

/// Retrieval and model selection; any failure falls back to the deterministic coder, and the reply says so.
pub async fn model_path<M: LanguageModel, K: KnowledgeBase>(
    model: Option<&M>,
    knowledge: &K,
    table: &CodeTable,
    session: &SessionContext,
    pseudo: &Pseudonymised,
) -> ModelPath {
    let mut stats = ModelStats {
        status: "not_configured",
        model: None,
        retrieved_passages: 0,
        proposed: 0,
        accepted: 0,
        dropped: 0,
        dropped_by_reason: BTreeMap::new(),
        merge: reply::MERGE_RULE,
    };
    let Some(model) = model else { return ModelPath { stats, selected: Vec::new() } };
    // The same rules, run on the text the model sees, so its quotes and the checks share offsets.
    let check = coder::code_note(table, &pseudo.text);
    let query = RetrievalQuery {
        text: select::retrieval_text(&pseudo.text, &check),
        max_results: RETRIEVED_PASSAGES,
        filters: Vec::new(),
    };
    let passages = match knowledge.retrieve(session, &query).await {
        Ok(passages) => passages,
        Err(e) => {
            warn!(error = %e, "retrieval failed; the model selects without passages");
            Vec::new()
        }
    };
    stats.retrieved_passages = passages.len();
    let selected = match model.converse(session, &select::request(&pseudo.text, &passages)).await {
        Err(e) => {
            warn!(error = %e, "model unavailable; deterministic proposals only");
            stats.status = "unavailable";
            Vec::new()
        }
        Ok(ModelOutcome::GuardrailIntervened { model }) => {
            warn!("guardrail intervened; deterministic proposals only");
            stats.status = "guardrail_intervened";
            stats.model = Some(model);
            Vec::new()
        }
        Ok(ModelOutcome::Text { text, model }) => {
            stats.model = Some(model);
            match select::parse(&text) {
                None => {
                    warn!("model answer is not the required json; deterministic proposals only");
                    stats.status = "unreadable_answer";
                    Vec::new()
                }
                Some(answers) => {
                    stats.status = "used";
                    stats.proposed = answers.len();
                    let (selected, dropped) = select::validate(table, &pseudo.text, &check, answers);
                    stats.accepted = selected.len();
                    stats.dropped = dropped.len();
                    for reason in dropped {
                        *stats.dropped_by_reason.entry(reason).or_insert(0) += 1;
                    }
                    selected
                }
            }
        }
    };
    ModelPath { stats, selected }
}

/// Union of the deterministic proposals and the validated model codes (see `reply::MERGE_RULE`).
pub fn merge(
    table: &CodeTable,
    note: &str,
    pseudo: &Pseudonymised,
    coding: &Coding,
    selected: &[Selected],
    history: Option<&History>,
) -> Vec<ProposalOut> {
    let status = |code: &str| history.map(|h| history::status_of(h, code));
    let mut out: Vec<ProposalOut> = coding
        .proposals
        .iter()
        .map(|p| {
            let source = if selected.iter().any(|s| s.code == p.code) { Source::Both } else { Source::Deterministic };
            let (status, refs) = split(status(p.code));
            reply::from_deterministic(note, p, source, status, refs)
        })
        .collect();
    for s in selected.iter().filter(|s| !coding.proposals.iter().any(|p| p.code == s.code)) {
        let Some(entry) = table.billable(s.code) else { continue };
        let original = pseudo.to_original(s.span.start..s.span.end);
        let Some(evidence) = reply::evidence(note, coder::Span { start: original.start, end: original.end }) else {
            continue;
        };
        let (status, refs) = split(status(s.code));
        let evidence_match = reply::word_overlap(entry.description, &evidence.quote);
        out.push(ProposalOut {
            code: entry.code,
            description: entry.description,
            source: Source::Model,
            assertion: None,
            basis: None,
            evidence: vec![evidence],
            grounding: reply::grounding(evidence_match, Source::Model, status, &refs),
            cross_check: reply::cross_check_label(status),
            fhir_references: refs,
        });
    }
    out
}

fn split(status: Option<(history::HistoryStatus, Vec<String>)>) -> (Option<history::HistoryStatus>, Vec<String>) {
    match status {
        Some((s, refs)) => (Some(s), refs),
        None => (None, Vec::new()),
    }
}
