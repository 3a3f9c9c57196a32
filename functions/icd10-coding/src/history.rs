//! The FHIR cross-check: the patient's Conditions and active MedicationRequests, read narrowly, and what they
//! say about each proposal (`supported_by_history`, `new_in_note`, `conflicts_with_history`), plus the chronic
//! conditions of the history that the note mentions but no proposal covers.
//!
//! History codes are matched on ICD-10-CM families (a category or subcategory prefix). Synthea codes
//! Conditions in SNOMED CT, so they go through `data/history_map.tsv`; Conditions coded in ICD-10-CM are used
//! as they are. Medications imply families through the same file.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use shared::ToolError;
use shared::fhir::{FhirId, FhirStore, SearchQuery};
use shared::session::SessionContext;

/// Which map turned history codes into ICD-10-CM, named in the reply.
pub const MAP_NAME: &str = "icd10-coding/data/history_map.tsv (hand-made SNOMED CT and drug map, v1)";
const MAP: &str = include_str!("../data/history_map.tsv");
const SNOMED: &str = "http://snomed.info/sct";
/// Families a patient cannot have together: a proposal in one, a history in the other, is a conflict.
const EXCLUSIVE: &[(&str, &str)] =
    &[("E10", "E11"), ("E10", "E13"), ("E11", "E13"), ("R73.0", "E10"), ("R73.0", "E11")];
const CONDITION_COUNT: u32 = 100;
const MEDICATION_COUNT: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
struct MapRow {
    drug: bool,
    key: &'static str,
    icd10: &'static str,
    families: Vec<&'static str>,
    chronic: bool,
    terms: Vec<&'static str>,
    label: &'static str,
}

static ROWS: LazyLock<Vec<MapRow>> = LazyLock::new(|| {
    MAP.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let f: Vec<&'static str> = line.split('\t').collect();
            let [kind, key, icd10, families, chronic, terms, label] = f.as_slice() else { return None };
            Some(MapRow {
                drug: *kind == "drug",
                key,
                icd10,
                families: families.split(',').filter(|s| !s.is_empty()).collect(),
                chronic: *chronic == "y",
                terms: terms.split('|').filter(|s| !s.is_empty()).collect(),
                label,
            })
        })
        .collect()
});

#[derive(Debug, Deserialize)]
struct Coding {
    system: Option<String>,
    code: Option<String>,
    display: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Concept {
    #[serde(default)]
    coding: Vec<Coding>,
    text: Option<String>,
}

impl Concept {
    fn has_code(&self, wanted: &[&str]) -> bool {
        self.coding.iter().any(|c| c.code.as_deref().is_some_and(|code| wanted.contains(&code)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConditionLite {
    id: Option<String>,
    code: Option<Concept>,
    clinical_status: Option<Concept>,
    verification_status: Option<Concept>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MedicationRequestLite {
    id: Option<String>,
    medication_codeable_concept: Option<Concept>,
}

/// One history fact the cross-check uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryFact {
    /// `Condition/<id>` or `MedicationRequest/<id>`.
    pub reference: String,
    pub label: String,
    /// The ICD-10-CM code the fact maps to (as recorded, or through the map).
    pub icd10: String,
    #[serde(skip)]
    families: Vec<String>,
    #[serde(skip)]
    chronic: bool,
    #[serde(skip)]
    terms: Vec<&'static str>,
    #[serde(skip)]
    medication: bool,
}

/// What was read, mapped; and what could not be mapped (counted, not shown).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub facts: Vec<HistoryFact>,
    pub unmapped_conditions: usize,
    pub inactive_conditions: usize,
    /// Every resource read, for the audit.
    pub reads: Vec<String>,
    pub unparsed: usize,
}

pub fn condition_query(patient: &FhirId) -> SearchQuery {
    SearchQuery::new("Condition")
        .patient(patient)
        .elements(&["id", "code", "clinicalStatus", "verificationStatus", "onset", "abatement"])
        .count(CONDITION_COUNT)
}

pub fn medication_query(patient: &FhirId) -> SearchQuery {
    SearchQuery::new("MedicationRequest")
        .patient(patient)
        .param("status", "active")
        .elements(&["id", "medicationCodeableConcept", "status"])
        .count(MEDICATION_COUNT)
        .pages(1)
}

/// Reads the history, both searches concurrently.
pub async fn read(store: &impl FhirStore, session: &SessionContext, patient: &FhirId) -> Result<History, ToolError> {
    let (condition_q, medication_q) = (condition_query(patient), medication_query(patient));
    let (conditions, medications) =
        tokio::try_join!(store.search(session, &condition_q), store.search(session, &medication_q))?;
    let mut history = History { reads: conditions.references(), ..History::default() };
    history.reads.extend(medications.references());
    let conditions = conditions.parse::<ConditionLite>();
    let medications = medications.parse::<MedicationRequestLite>();
    history.unparsed = conditions.unparsed.len() + medications.unparsed.len();
    for condition in conditions.items {
        let active =
            condition.clinical_status.as_ref().is_some_and(|s| s.has_code(&["active", "recurrence", "relapse"]));
        let refuted =
            condition.verification_status.as_ref().is_some_and(|s| s.has_code(&["refuted", "entered-in-error"]));
        if !active || refuted {
            history.inactive_conditions += 1;
            continue;
        }
        let reference = format!("Condition/{}", condition.id.as_deref().unwrap_or("?"));
        match condition.code.as_ref().and_then(map_condition) {
            Some(mut fact) => {
                fact.reference = reference;
                history.facts.push(fact);
            }
            None => history.unmapped_conditions += 1,
        }
    }
    for request in medications.items {
        let Some(concept) = request.medication_codeable_concept else { continue };
        let words = concept
            .coding
            .iter()
            .filter_map(|c| c.display.as_deref())
            .chain(concept.text.as_deref())
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if let Some(row) = ROWS.iter().find(|r| r.drug && words.contains(r.key)) {
            let mut fact = fact_from(row, true);
            fact.reference = format!("MedicationRequest/{}", request.id.as_deref().unwrap_or("?"));
            history.facts.push(fact);
        }
    }
    Ok(history)
}

fn fact_from(row: &MapRow, medication: bool) -> HistoryFact {
    HistoryFact {
        reference: String::new(),
        label: row.label.to_owned(),
        icd10: row.icd10.to_owned(),
        families: row.families.iter().map(|f| (*f).to_owned()).collect(),
        chronic: row.chronic,
        terms: row.terms.clone(),
        medication,
    }
}

fn map_condition(code: &Concept) -> Option<HistoryFact> {
    for coding in &code.coding {
        let (Some(system), Some(value)) = (coding.system.as_deref(), coding.code.as_deref()) else { continue };
        if system == SNOMED {
            if let Some(row) = ROWS.iter().find(|r| !r.drug && r.key == value) {
                return Some(fact_from(row, false));
            }
        } else if system.to_ascii_lowercase().contains("icd-10") {
            let code = crate::table::normalize(value)?;
            let label = coding.display.clone().or_else(|| code.text_label()).unwrap_or_else(|| code.clone());
            return Some(HistoryFact {
                reference: String::new(),
                label,
                families: vec![code.get(..3).unwrap_or(&code).to_owned()],
                icd10: code,
                chronic: true,
                terms: Vec::new(),
                medication: false,
            });
        }
    }
    None
}

trait TextLabel {
    fn text_label(&self) -> Option<String>;
}

impl TextLabel for String {
    fn text_label(&self) -> Option<String> {
        crate::table::CodeTable::embedded().ok()?.get(self).map(|e| e.description.to_owned())
    }
}

/// What the history says about one proposed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryStatus {
    SupportedByHistory,
    NewInNote,
    ConflictsWithHistory,
}

/// The status of `code` against the history, and the references that decided it.
pub fn status_of(history: &History, code: &str) -> (HistoryStatus, Vec<String>) {
    let conflicting: Vec<String> = history
        .facts
        .iter()
        .filter(|f| !f.medication && f.families.iter().any(|family| exclusive(code, family)))
        .map(|f| f.reference.clone())
        .collect();
    if !conflicting.is_empty() {
        return (HistoryStatus::ConflictsWithHistory, conflicting);
    }
    let supporting: Vec<String> = history
        .facts
        .iter()
        .filter(|f| f.families.iter().any(|family| code.starts_with(family.as_str())))
        .map(|f| f.reference.clone())
        .collect();
    if supporting.is_empty() {
        (HistoryStatus::NewInNote, Vec::new())
    } else {
        (HistoryStatus::SupportedByHistory, supporting)
    }
}

fn exclusive(code: &str, family: &str) -> bool {
    EXCLUSIVE.iter().any(|(a, b)| {
        (code.starts_with(a) && family.starts_with(b) && !code.starts_with(b))
            || (code.starts_with(b) && family.starts_with(a) && !code.starts_with(a))
    })
}

/// A chronic condition of the history that the note speaks of but no proposal codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unaddressed {
    pub reference: String,
    pub label: String,
    pub icd10: String,
}

pub fn unaddressed(history: &History, note: &str, proposed: &[&str]) -> Vec<Unaddressed> {
    let lower = note.to_lowercase();
    let mut out: Vec<Unaddressed> = Vec::new();
    for fact in history.facts.iter().filter(|f| f.chronic && !f.medication) {
        let mentioned = fact.terms.iter().any(|t| contains_word(&lower, t));
        let covered = proposed.iter().any(|code| fact.families.iter().any(|f| code.starts_with(f.as_str())));
        if mentioned && !covered && !out.iter().any(|u| u.icd10 == fact.icd10) {
            out.push(Unaddressed {
                reference: fact.reference.clone(),
                label: fact.label.clone(),
                icd10: fact.icd10.clone(),
            });
        }
    }
    out
}

fn contains_word(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = haystack[at + needle.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::CodeTable;

    fn fact(reference: &str, families: &[&str], chronic: bool, terms: &[&'static str]) -> HistoryFact {
        HistoryFact {
            reference: reference.into(),
            label: "x".into(),
            icd10: families[0].into(),
            families: families.iter().map(|f| (*f).to_owned()).collect(),
            chronic,
            terms: terms.to_vec(),
            medication: false,
        }
    }

    #[test]
    fn every_mapped_code_exists_and_is_billable() {
        let table = CodeTable::embedded().unwrap();
        assert!(ROWS.len() > 40);
        for row in ROWS.iter() {
            assert!(table.billable(row.icd10).is_some(), "{} maps to non-billable {}", row.key, row.icd10);
            assert!(!row.families.is_empty());
            for family in &row.families {
                assert!(table.get(family).is_some(), "{}: family {family} not in the table", row.key);
            }
            if !row.drug {
                assert!(
                    row.families.iter().any(|f| row.icd10.starts_with(f)),
                    "{}: own code outside its families",
                    row.key
                );
            }
        }
    }

    #[test]
    fn statuses_follow_families_and_exclusions() {
        let history = History {
            facts: vec![
                fact("Condition/dm2", &["E11"], true, &["diabetes"]),
                fact("Condition/htn", &["I10"], true, &["hypertension"]),
            ],
            ..History::default()
        };
        assert_eq!(status_of(&history, "E11.3293").0, HistoryStatus::SupportedByHistory);
        assert_eq!(status_of(&history, "E11.3293").1, vec!["Condition/dm2".to_owned()]);
        assert_eq!(status_of(&history, "E10.9").0, HistoryStatus::ConflictsWithHistory);
        assert_eq!(status_of(&history, "R73.03").0, HistoryStatus::ConflictsWithHistory);
        assert_eq!(status_of(&history, "B02.9"), (HistoryStatus::NewInNote, Vec::new()));
        let none = History::default();
        assert_eq!(status_of(&none, "E10.9").0, HistoryStatus::NewInNote);
    }

    #[test]
    fn mentioned_chronic_conditions_without_a_proposal_are_listed() {
        let history = History {
            facts: vec![
                fact("Condition/htn", &["I10"], true, &["hypertension"]),
                fact("Condition/sin", &["J01"], false, &["sinusitis"]),
            ],
            ..History::default()
        };
        let note = "Hypertension, well controlled on HCTZ. Past sinusitis.";
        let listed = unaddressed(&history, note, &["B02.9"]);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reference, "Condition/htn");
        assert!(unaddressed(&history, note, &["I10"]).is_empty(), "covered by a proposal");
        assert!(unaddressed(&history, "no relevant words (hypertensive? no)", &[]).is_empty());
    }

    #[test]
    fn snomed_and_icd10_codings_map() {
        let snomed: Concept =
            serde_json::from_value(serde_json::json!({"coding": [{"system": SNOMED, "code": "44054006"}]})).unwrap();
        assert_eq!(map_condition(&snomed).unwrap().icd10, "E11.9");
        let icd: Concept = serde_json::from_value(
            serde_json::json!({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "e1010"}]}),
        )
        .unwrap();
        let fact = map_condition(&icd).unwrap();
        assert_eq!((fact.icd10.as_str(), fact.families[0].as_str()), ("E10.10", "E10"));
        let unknown: Concept =
            serde_json::from_value(serde_json::json!({"coding": [{"system": SNOMED, "code": "1"}]})).unwrap();
        assert!(map_condition(&unknown).is_none());
    }
}
