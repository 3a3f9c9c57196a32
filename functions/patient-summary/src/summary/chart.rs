//! Patient, problem list, medication list, allergies, vaccines, encounters and screening procedures.

use std::collections::BTreeMap;

use shared::fhir::model::{
    AllergyIntolerance, CodeableConcept, Condition, Dosage, Encounter, EncounterStatus, EventStatus, Immunization,
    ImmunizationOccurrence, ImmunizationStatus, MedicationRequest, MedicationRequestMedication,
    MedicationRequestStatus, Patient, PatientDeceased, Procedure, Timed,
};

use super::codes::{self, COLORECTAL_SCREENING_CODES};
use super::read::{When, age_in_years, cite, codings, concept_display, primary_coding, when_datetime};
use super::{Allergy, CodeRef, EncounterFact, ImmunizationFact, Medication, PatientFacts, Problem};

/// How many encounters a clinician wants to see before a visit.
const RECENT_ENCOUNTERS: usize = 5;

pub(crate) fn patient_facts(patient: &Patient, as_of: time::Date) -> PatientFacts {
    let (deceased, died_on) = match patient.deceased() {
        Some(PatientDeceased::Boolean(flag)) => (flag, None),
        Some(PatientDeceased::DateTime(at)) => (true, when_datetime(at).map(|w| w.date)),
        None => (false, None),
    };
    // Deceased without a death date: any age we printed would be a guess.
    let age_on = match (deceased, died_on) {
        (false, _) => Some(as_of),
        (true, Some(died)) => Some(died.min(as_of)),
        (true, None) => None,
    };
    PatientFacts {
        reference: cite("Patient", patient.id.as_ref()).unwrap_or_default(),
        age_years: age_on.and_then(|on| patient.birth_date.as_ref().and_then(|birth| age_in_years(birth, on))),
        sex: patient.gender.map(|g| g.as_str().to_owned()),
        deceased,
    }
}

fn status_code(concept: Option<&CodeableConcept>) -> Option<&str> {
    concept.and_then(|c| codings(c).find_map(|coding| coding.code.as_deref()))
}

fn code_ref(concept: &CodeableConcept) -> Option<CodeRef> {
    let coding = primary_coding(concept)?;
    Some(CodeRef { system: coding.system.clone()?, code: coding.code.clone()? })
}

/// Active, not refuted problems, one per code: the most recent onset names and dates it, and every
/// duplicate is cited. Newest onset first; problems with no known onset last.
pub(crate) fn problems(conditions: &[Condition], uncitable: &mut usize) -> Vec<Problem> {
    struct Entry {
        display: String,
        onset: Option<When>,
        sources: Vec<String>,
    }
    let mut by_code: BTreeMap<CodeRef, Entry> = BTreeMap::new();
    for condition in conditions {
        let Some(source) = cite("Condition", condition.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if !matches!(status_code(condition.clinical_status.as_ref()), None | Some("active" | "recurrence" | "relapse"))
        {
            continue;
        }
        if matches!(status_code(condition.verification_status.as_ref()), Some("refuted" | "entered-in-error")) {
            continue;
        }
        let Some(concept) = condition.code.as_ref() else {
            continue;
        };
        let Some(code) = code_ref(concept) else {
            continue;
        };
        let display = concept_display(concept).unwrap_or_else(|| code.code.clone());
        let onset = match condition.onset() {
            Some(Timed::DateTime(at)) => when_datetime(at),
            Some(Timed::Period(period)) => period.start.as_ref().and_then(when_datetime),
            None => None,
        };
        match by_code.get_mut(&code) {
            Some(entry) => {
                entry.sources.push(source);
                if onset_key(onset.as_ref()) > onset_key(entry.onset.as_ref()) {
                    entry.display = display;
                    entry.onset = onset;
                }
            }
            None => {
                by_code.insert(code, Entry { display, onset, sources: vec![source] });
            }
        }
    }
    let mut problems: Vec<(Option<i64>, Problem)> = by_code
        .into_iter()
        .map(|(code, mut entry)| {
            entry.sources.sort();
            let key = entry.onset.as_ref().map(When::key);
            let onset = entry.onset.map(|w| w.text);
            (key, Problem { display: entry.display, code, onset, sources: entry.sources })
        })
        .collect();
    problems.sort_by(|(a_key, a), (b_key, b)| b_key.cmp(a_key).then_with(|| a.display.cmp(&b.display)));
    problems.into_iter().map(|(_, p)| p).collect()
}

fn onset_key(onset: Option<&When>) -> Option<i64> {
    onset.map(When::key)
}

/// Active medication requests, one per medication code (latest authored wins, all cited), by name.
pub(crate) fn medications(requests: &[MedicationRequest], uncitable: &mut usize) -> Vec<Medication> {
    let mut by_key: BTreeMap<String, (Option<i64>, Medication)> = BTreeMap::new();
    for request in requests {
        let Some(source) = cite("MedicationRequest", request.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if request.status != MedicationRequestStatus::Active || request.do_not_perform == Some(true) {
            continue;
        }
        let (display, code) = match &request.medication {
            MedicationRequestMedication::CodeableConcept(concept) => (concept_display(concept), code_ref(concept)),
            MedicationRequestMedication::Reference(reference) => (reference.display.clone(), None),
        };
        let display = display.unwrap_or_else(|| "Unnamed medication (see record)".to_owned());
        let authored = request.authored_on.as_ref().and_then(when_datetime);
        let key = match &code {
            Some(code) => format!("{}|{}", code.system, code.code),
            None => format!("display|{}", display.to_lowercase()),
        };
        let authored_key = authored.as_ref().map(When::key);
        let dosage = request.dosage_instruction.first().and_then(dosage_text);
        let medication =
            Medication { display, code, authored_on: authored.map(|w| w.text), dosage, sources: vec![source] };
        match by_key.get_mut(&key) {
            Some((kept_key, kept)) => {
                let mut sources = std::mem::take(&mut kept.sources);
                sources.extend(medication.sources.iter().cloned());
                sources.sort();
                if authored_key > *kept_key {
                    *kept = medication;
                    *kept_key = authored_key;
                }
                kept.sources = sources;
            }
            None => {
                by_key.insert(key, (authored_key, medication));
            }
        }
    }
    let mut medications: Vec<Medication> = by_key.into_values().map(|(_, m)| m).collect();
    medications.sort_by(|a, b| a.display.to_lowercase().cmp(&b.display.to_lowercase()).then(a.display.cmp(&b.display)));
    medications
}

/// The sig as written, or one pieced together from dose and timing (Synthea writes no text).
fn dosage_text(dosage: &Dosage) -> Option<String> {
    if let Some(text) = dosage.text.as_deref().filter(|t| !t.trim().is_empty()) {
        return Some(text.trim().to_owned());
    }
    let mut parts = Vec::new();
    let dose = dosage
        .dose_and_rate
        .iter()
        .find_map(|d| d.dose_quantity.as_ref().and_then(|q| Some((q.value?, q.unit.clone()))));
    if let Some((value, unit)) = dose {
        parts.push(match unit {
            Some(unit) => format!("{} {unit}", number(value)),
            None => format!("{} dose", number(value)),
        });
    }
    if let Some(repeat) = dosage.timing.as_ref().and_then(|t| t.repeat.as_ref())
        && let (Some(frequency), Some(period), Some(unit)) =
            (repeat.frequency, repeat.period, repeat.period_unit.as_deref())
    {
        let times = if frequency.get() == 1 { "once".to_owned() } else { format!("{frequency} times") };
        parts.push(format!("{times} every {} {unit}", number(period)));
    }
    if dosage.as_needed_boolean == Some(true) {
        parts.push("as needed".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A dose or period without a trailing `.0`.
fn number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value}") }
}

/// Allergies still in force: not inactive/resolved, not refuted/entered-in-error. High criticality first.
pub(crate) fn allergies(allergies: &[AllergyIntolerance], uncitable: &mut usize) -> Vec<Allergy> {
    let mut shown: Vec<Allergy> = Vec::new();
    for allergy in allergies {
        let Some(source) = cite("AllergyIntolerance", allergy.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if matches!(status_code(allergy.clinical_status.as_ref()), Some("inactive" | "resolved")) {
            continue;
        }
        if matches!(status_code(allergy.verification_status.as_ref()), Some("refuted" | "entered-in-error")) {
            continue;
        }
        let display = allergy
            .code
            .as_ref()
            .and_then(concept_display)
            .unwrap_or_else(|| "Allergy to unspecified substance".to_owned());
        let criticality = allergy.criticality.map(|c| c.as_str().to_owned());
        shown.push(Allergy { display, criticality, sources: vec![source] });
    }
    let rank = |c: &Option<String>| match c.as_deref() {
        Some("high") => 0,
        Some("unable-to-assess") => 1,
        Some("low") => 2,
        _ => 3,
    };
    shown.sort_by(|a, b| {
        rank(&a.criticality)
            .cmp(&rank(&b.criticality))
            .then_with(|| a.display.cmp(&b.display))
            .then_with(|| a.sources.cmp(&b.sources))
    });
    shown
}

/// Completed vaccines given on or before `as_of`, the most recent per vaccine code, newest first.
pub(crate) fn immunizations(
    immunizations: &[Immunization],
    as_of: time::Date,
    uncitable: &mut usize,
) -> Vec<ImmunizationFact> {
    let mut by_vaccine: BTreeMap<String, (When, ImmunizationFact)> = BTreeMap::new();
    for immunization in immunizations {
        let Some(source) = cite("Immunization", immunization.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if immunization.status != ImmunizationStatus::Completed {
            continue;
        }
        let ImmunizationOccurrence::DateTime(at) = &immunization.occurrence else {
            continue;
        };
        let Some(when) = when_datetime(at).filter(|w| w.date <= as_of) else {
            continue;
        };
        let vaccine = &immunization.vaccine_code;
        let cvx = codings(vaccine).find(|c| c.system.as_deref() == Some(codes::CVX)).and_then(|c| c.code.clone());
        let display = concept_display(vaccine).unwrap_or_else(|| "Vaccine".to_owned());
        let key = match (&cvx, primary_coding(vaccine)) {
            (Some(cvx), _) => format!("cvx|{cvx}"),
            (None, Some(coding)) => {
                format!("{}|{}", coding.system.as_deref().unwrap_or(""), coding.code.as_deref().unwrap_or(""))
            }
            (None, None) => format!("display|{}", display.to_lowercase()),
        };
        let fact = ImmunizationFact { display, cvx, date: when.text.clone(), source };
        let newer = by_vaccine
            .get(&key)
            .is_none_or(|(kept, kept_fact)| (when.key(), &fact.source) > (kept.key(), &kept_fact.source));
        if newer {
            by_vaccine.insert(key, (when, fact));
        }
    }
    let mut facts: Vec<(When, ImmunizationFact)> = by_vaccine.into_values().collect();
    facts.sort_by(|(a_when, a), (b_when, b)| b_when.key().cmp(&a_when.key()).then_with(|| a.display.cmp(&b.display)));
    facts.into_iter().map(|(_, f)| f).collect()
}

/// Up to five encounters that took place by `as_of`, newest first.
pub(crate) fn recent_encounters(
    encounters: &[Encounter],
    as_of: time::Date,
    uncitable: &mut usize,
) -> Vec<EncounterFact> {
    let mut kept: Vec<(Option<i64>, EncounterFact)> = Vec::new();
    for encounter in encounters {
        let Some(source) = cite("Encounter", encounter.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if matches!(
            encounter.status,
            EncounterStatus::Cancelled | EncounterStatus::EnteredInError | EncounterStatus::Planned
        ) {
            continue;
        }
        let start = encounter.period.as_ref().and_then(|p| p.start.as_ref()).and_then(when_datetime);
        if start.as_ref().is_some_and(|w| w.date > as_of) {
            continue;
        }
        let type_display = encounter.r#type.iter().find_map(concept_display);
        let class_code = encounter.class.code.clone();
        let key = start.as_ref().map(When::key);
        kept.push((key, EncounterFact { type_display, class_code, start: start.map(|w| w.text), source }));
    }
    kept.sort_by(|(a_key, a), (b_key, b)| b_key.cmp(a_key).then_with(|| a.source.cmp(&b.source)));
    kept.into_iter().take(RECENT_ENCOUNTERS).map(|(_, e)| e).collect()
}

/// A completed colorectal screening procedure on record by `as_of`.
#[derive(Debug, Clone)]
pub(crate) struct Screening {
    pub source: String,
    pub date: Option<When>,
}

pub(crate) fn screenings(procedures: &[Procedure], as_of: time::Date, uncitable: &mut usize) -> Vec<Screening> {
    let mut found = Vec::new();
    for procedure in procedures {
        let Some(source) = cite("Procedure", procedure.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if procedure.status != EventStatus::Completed {
            continue;
        }
        let is_screening = procedure.code.as_ref().is_some_and(|concept| {
            COLORECTAL_SCREENING_CODES.iter().any(|(system, code)| super::read::has_code(concept, system, code))
        });
        if !is_screening {
            continue;
        }
        let date = match procedure.performed() {
            Some(Timed::DateTime(at)) => when_datetime(at),
            Some(Timed::Period(period)) => period.start.as_ref().and_then(when_datetime),
            None => None,
        };
        // A completed screening with no date is still on record; one dated after `as_of` is not yet.
        if date.as_ref().is_some_and(|w| w.date > as_of) {
            continue;
        }
        found.push(Screening { source, date });
    }
    found.sort_by(|a, b| {
        b.date.as_ref().map(When::key).cmp(&a.date.as_ref().map(When::key)).then_with(|| a.source.cmp(&b.source))
    });
    found
}
