//! The reply: proposals with evidence as character offsets into the submitted note, a deterministic grounding
//! score with its explanation, the FHIR cross-check, what was skipped and what the model did.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::coder::{Assertion, Basis, Proposal, Span};
use crate::history::{HistoryStatus, Unaddressed};
use crate::index::tokens;
use crate::select::DropReason;

/// Weights of the grounding score; they sum to 1.
pub const W_EVIDENCE: f64 = 0.5;
pub const W_CONTEXT: f64 = 0.3;
pub const W_HISTORY: f64 = 0.2;
/// Context component of a model-only proposal: it passed the coder's skip rules at its quote, but the coder's
/// own assertion rules did not confirm it.
const MODEL_ONLY_CONTEXT: f64 = 0.6;

pub const OFFSETS: &str = "unicode scalar values (Rust chars / Python str indices), half-open [start, end)";
pub const GROUNDING_FORMULA: &str = "score = 0.5 x evidence_match + 0.3 x context + 0.2 x history_support; \
evidence_match: share of the code description's significant words documented at the evidence (coder match strength); \
context: 1.0 when the coder's rules found the concept asserted for the patient (not negated, not uncertain or \
hypothetical, not a relative's unless coded as family history), 0.6 for a model-only code that passed the same \
rules' exclusions; history_support: 1.0 supported by an active Condition or a medication, 0.5 new in the note or \
no history read, 0.0 conflicts with the history";

/// Where a proposal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Deterministic,
    Model,
    /// The deterministic coder and the model agree.
    Both,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Character offsets into the note as submitted (see `offsets`).
    pub start: usize,
    pub end: usize,
    pub quote: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Components {
    pub evidence_match: f64,
    pub context: f64,
    pub history_support: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grounding {
    pub score: f64,
    pub components: Components,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposalOut {
    pub code: &'static str,
    pub description: &'static str,
    pub source: Source,
    pub assertion: Option<Assertion>,
    pub basis: Option<Basis>,
    pub evidence: Vec<Evidence>,
    pub grounding: Grounding,
    /// `supported_by_history`, `new_in_note`, `conflicts_with_history`, or `skipped` without a patient.
    pub cross_check: String,
    /// FHIR resources that decided the cross-check status.
    pub fhir_references: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedSummary {
    pub total: usize,
    pub by_reason: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStats {
    /// `not_configured`, `used`, `guardrail_intervened`, `unavailable`, `unreadable_answer`.
    pub status: &'static str,
    pub model: Option<String>,
    pub retrieved_passages: usize,
    pub proposed: usize,
    pub accepted: usize,
    pub dropped: usize,
    pub dropped_by_reason: BTreeMap<DropReason, usize>,
    pub merge: &'static str,
}

pub const MERGE_RULE: &str = "union: every deterministic proposal is kept; a validated model code the coder did not \
propose is added with source `model` and a lower context score; a model code the coder also proposed is marked `both`";

/// Converts a byte offset of `text` to a character offset.
pub fn char_offset(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or_else(|| text.chars().count(), |prefix| prefix.chars().count())
}

pub fn evidence(note: &str, span: Span) -> Option<Evidence> {
    let quote = note.get(span.start..span.end)?;
    Some(Evidence { start: char_offset(note, span.start), end: char_offset(note, span.end), quote: quote.to_owned() })
}

/// The share of the description's significant words found in the quote: the evidence match of a model code.
pub fn word_overlap(description: &str, quote: &str) -> f64 {
    let wanted: Vec<String> = tokens(description).collect();
    if wanted.is_empty() {
        return 0.0;
    }
    let have: Vec<String> = tokens(quote).collect();
    let found = wanted.iter().filter(|w| have.contains(w)).count();
    found as f64 / wanted.len() as f64
}

pub fn history_component(status: Option<HistoryStatus>) -> f64 {
    match status {
        Some(HistoryStatus::SupportedByHistory) => 1.0,
        Some(HistoryStatus::NewInNote) | None => 0.5,
        Some(HistoryStatus::ConflictsWithHistory) => 0.0,
    }
}

pub fn grounding(
    evidence_match: f64,
    source: Source,
    status: Option<HistoryStatus>,
    references: &[String],
) -> Grounding {
    let evidence_match = round(evidence_match.clamp(0.0, 1.0));
    let context = if source == Source::Model { MODEL_ONLY_CONTEXT } else { 1.0 };
    let history_support = history_component(status);
    let score = round(W_EVIDENCE * evidence_match + W_CONTEXT * context + W_HISTORY * history_support);
    let context_text = if source == Source::Model {
        "context not confirmed by the coder's assertion rules (model-only code; no negation, uncertainty or injected text found at its quote)"
    } else {
        "asserted for the patient, not negated, not uncertain or hypothetical"
    };
    let history_text = match status {
        Some(HistoryStatus::SupportedByHistory) => format!("supported by {}", references.join(", ")),
        Some(HistoryStatus::ConflictsWithHistory) => format!("conflicts with {}", references.join(", ")),
        Some(HistoryStatus::NewInNote) => "not in the patient's active history".to_owned(),
        None => "no history read (no patient id)".to_owned(),
    };
    Grounding {
        score,
        components: Components { evidence_match, context, history_support },
        explanation: format!(
            "{:.0}% of the code's significant words documented; {context_text}; {history_text}",
            evidence_match * 100.0
        ),
    }
}

/// The snake_case name an enum serialises to (the coder's enums are not `Ord`, so maps key on names).
pub fn name_of<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn skipped_summary(skipped: &[crate::coder::Skipped]) -> SkippedSummary {
    let mut by_reason = BTreeMap::new();
    for s in skipped {
        *by_reason.entry(name_of(&s.reason)).or_insert(0) += 1;
    }
    SkippedSummary { total: skipped.len(), by_reason }
}

/// From a deterministic proposal: evidence spans are byte ranges of the original note.
pub fn from_deterministic(
    note: &str,
    p: &Proposal,
    source: Source,
    status: Option<HistoryStatus>,
    refs: Vec<String>,
) -> ProposalOut {
    ProposalOut {
        code: p.code,
        description: p.description,
        source,
        assertion: Some(p.assertion),
        basis: Some(p.basis),
        evidence: p.evidence.iter().filter_map(|s| evidence(note, *s)).collect(),
        grounding: grounding(f64::from(p.match_strength), source, status, &refs),
        cross_check: cross_check_label(status),
        fhir_references: refs,
    }
}

pub fn cross_check_label(status: Option<HistoryStatus>) -> String {
    match status {
        Some(HistoryStatus::SupportedByHistory) => "supported_by_history",
        Some(HistoryStatus::NewInNote) => "new_in_note",
        Some(HistoryStatus::ConflictsWithHistory) => "conflicts_with_history",
        None => "skipped",
    }
    .to_owned()
}

/// The short text card for the agent.
pub fn card(proposals: &[ProposalOut], cross_check: &str, unaddressed: &[Unaddressed], model: &ModelStats) -> String {
    let mut out =
        format!("ICD-10-CM proposals for coder review ({}); nothing was written to the record.\n", proposals.len());
    for p in proposals {
        let quote = p.evidence.first().map(|e| e.quote.as_str()).unwrap_or_default();
        out.push_str(&format!(
            "- {} {} (grounding {:.2}, {}): \"{}\"\n",
            p.code,
            p.description,
            p.grounding.score,
            p.cross_check.replace('_', " "),
            quote.chars().take(80).collect::<String>()
        ));
    }
    if proposals.is_empty() {
        out.push_str("- no codable diagnosis found\n");
    }
    out.push_str(&format!("Cross-check: {cross_check}.\n"));
    for u in unaddressed {
        out.push_str(&format!("Mentioned but not coded: {} ({}, {}).\n", u.label, u.icd10, u.reference));
    }
    out.push_str(&format!(
        "Model: {} ({} proposed, {} accepted, {} dropped).",
        model.status, model.proposed, model.accepted, model.dropped
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offsets_count_unicode_scalars() {
        let note = "Naïve — zoster";
        let byte = note.find("zoster").unwrap();
        assert_eq!(char_offset(note, byte), 8);
        let e = evidence(note, Span { start: byte, end: note.len() }).unwrap();
        assert_eq!(note.chars().skip(e.start).take(e.end - e.start).collect::<String>(), e.quote);
        assert!(evidence(note, Span { start: 3, end: 4 }).is_none(), "not a char boundary");
    }

    #[test]
    fn the_score_follows_its_formula_and_orders_sensibly() {
        let supported =
            grounding(1.0, Source::Deterministic, Some(HistoryStatus::SupportedByHistory), &["Condition/1".into()]);
        assert!((supported.score - 1.0).abs() < 1e-6);
        assert!(supported.explanation.contains("Condition/1"));
        let new = grounding(0.8, Source::Deterministic, Some(HistoryStatus::NewInNote), &[]);
        assert!((new.score - (0.5 * 0.8 + 0.3 + 0.1)).abs() < 1e-3);
        let model = grounding(0.8, Source::Model, Some(HistoryStatus::NewInNote), &[]);
        let conflict = grounding(0.8, Source::Deterministic, Some(HistoryStatus::ConflictsWithHistory), &[]);
        assert!(model.score < new.score && conflict.score < new.score);
        assert!((W_EVIDENCE + W_CONTEXT + W_HISTORY - 1.0).abs() < 1e-6);
    }

    #[test]
    fn word_overlap_is_a_share_of_the_description() {
        assert!((word_overlap("Herpes zoster of the eye", "herpes zoster") - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(word_overlap("Herpes zoster", "otitis"), 0.0);
    }
}
