//! The deterministic coder: note text in, billable ICD-10-CM proposals with evidence spans out.
//!
//! It is the local default and the safety net on AWS: model proposals are validated by the same table and
//! context rules. Pure: no I/O, no clock.

mod alphabetic;
mod context;
mod encounter;
mod index;
mod rules;
#[cfg(test)]
mod tests;
mod text;

use std::sync::LazyLock;

use serde::Serialize;

use crate::table::CodeTable;

pub use index::Index;

/// A half-open byte range into the text the coder was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// How the note speaks of the condition a proposal codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Assertion {
    /// Documented as present for this patient.
    Present,
    /// The patient's own history (coded to Z85–Z87 and similar).
    PersonalHistory,
    /// A relative's condition (coded to Z80–Z84).
    FamilyHistory,
}

/// Why a proposal was made: which rule of the coder produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The documented diagnosis matches the code's description or an inclusion term.
    DiagnosisMatch,
    /// A sign or symptom coded because no confirmed diagnosis accounts for it (outpatient IV.D, IV.H).
    SymptomWithoutDiagnosis,
    /// A combination code the classification provides for two documented conditions (I.A.15, I.C.4.a).
    CombinationCode,
    /// Long-term (current) drug therapy with its own Z79 code (I.C.21.c.3).
    LongTermDrugTherapy,
    /// Personal or family history (I.C.21.c.4).
    History,
    /// The reason for the encounter (Section IV.A, I.C.21.c): an exam, an immunization, a screening, a drug
    /// level check, weeks of gestation, counselling.
    EncounterReason,
    /// The Alphabetic Index's main term and subterms reached a more specific code than the tabular's wording
    /// (the documented stage, quadrant, side, class, subtype or site), verified and completed in the tabular.
    AlphabeticIndex,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    pub code: &'static str,
    pub description: &'static str,
    /// Where the note supports the code; at least one span.
    pub evidence: Vec<Span>,
    pub assertion: Assertion,
    pub basis: Basis,
    /// How fully the evidence matches the code's wording, 0–1 (1: every significant word of the description
    /// or an inclusion term is documented).
    pub match_strength: f32,
}

/// Why a documented concept was not coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Negated,
    /// "possible", "suspect", "rule out"…: not coded in the outpatient setting (IV.H).
    Uncertain,
    /// "return if", "call for", "should … develop", precautions: a condition the patient does not have (ConText's
    /// hypothetical class).
    Hypothetical,
    /// A symptom integral to a confirmed diagnosis (I.B.5).
    IntegralSymptom,
    /// Excludes1 with a more specific proposal.
    Excludes1,
    /// Text that is not provider documentation (instructions addressed to a coding assistant).
    NotDocumentation,
    /// Long-term drug therapy without a specific Z79 code (Z79.899 is not reported).
    NoSpecificDrugCode,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The code the concept would have matched, when one did.
    pub code: Option<&'static str>,
    pub span: Span,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Coding {
    pub proposals: Vec<Proposal>,
    pub skipped: Vec<Skipped>,
}

/// The index the build script made from the embedded table (`build.rs`), read at cold start without
/// tokenizing anything; built from the table if the embedded form is unreadable.
static INDEX: LazyLock<Option<Index>> =
    LazyLock::new(|| Index::read_embedded().or_else(|| CodeTable::embedded().ok().map(Index::build)));

impl Index {
    /// The index over the embedded table, read once.
    pub fn embedded() -> Option<&'static Index> {
        INDEX.as_ref()
    }

    /// Reads the embedded compact index afresh from its inflated bytes (what cold start does once, after
    /// `code_data::inflate_index`; the bench times both).
    pub fn read_embedded() -> Option<Index> {
        Index::from_bytes(crate::code_data::index_bytes()?)
    }
}

/// Reads the Alphabetic Index paths of the general walk (inflated and parsed once; cold start's warm-up).
pub fn warm_up_index_paths() -> usize {
    alphabetic::warm_up()
}

/// Inflates and reads the Index walk's paths afresh (the bench times it); the number of paths.
pub fn read_index_paths() -> usize {
    alphabetic::read_index_paths()
}

/// Codes a note. Every proposal is billable in `table`.
pub fn code_note(table: &CodeTable, note: &str) -> Coding {
    match Index::embedded() {
        Some(index) => rules::code(table, index, note),
        None => Coding::default(),
    }
}

/// The words of a query as the code index spells them (the coder's tokenizer: lowercase, plurals folded,
/// stop words dropped).
pub fn query_words(query: &str) -> impl Iterator<Item = String> {
    text::tokenize(query, 0).into_iter().map(|t| t.word).filter(|w| !text::is_stopword(w))
}

/// Codes a note with a given index (tests and benches build their own).
pub fn code_note_with(table: &CodeTable, index: &Index, note: &str) -> Coding {
    rules::code(table, index, note)
}

/// Why the span `[start, end)` of `note` could not support a code: negated, uncertain, or not documentation.
/// `None` when the words there are asserted. The model path uses it to validate quoted evidence.
pub fn assess_span(note: &str, span: Span) -> Option<SkipReason> {
    rules::assess_span(note, span)
}
