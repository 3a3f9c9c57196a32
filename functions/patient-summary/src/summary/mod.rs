//! Pre-visit patient summary: the pure domain logic.
//!
//! The caller fetches a few narrow FHIR searches ([`ChartExtract`]); [`summarize`] turns them into cited
//! facts, lab trends and care gaps as of a given day. Nothing here does I/O or logs, and the output never
//! carries names, addresses, phone numbers, identifiers or the birth date: only age, sex and whether the
//! patient is deceased leave the Patient resource.
//!
//! Time: facts dated after `as_of` (results, vaccines, encounters, screenings) are ignored, so a summary
//! as of a past day reads the chart as it stood then. Conditions, medications and allergies are taken
//! with the status the caller fetched them in.

mod care_gaps;
mod chart;
pub mod codes;
mod read;
mod render;
mod results;
#[cfg(test)]
mod tests;

use serde::Serialize;
use shared::fhir::model::{
    AllergyIntolerance, Condition, Encounter, Immunization, MedicationRequest, Observation, Patient, Procedure,
};

pub use codes::{COLORECTAL_SCREENING_CODES, LAB_CODES, VITAL_CODES};
pub use render::{render_text, statements};

/// What the caller fetched for one patient; the summary assumes nothing beyond what each field says.
pub struct ChartExtract {
    pub patient: Patient,                    // only id, gender, birthDate, deceased[x] are relied on
    pub conditions: Vec<Condition>,          // active problems (clinical-status=active), any order
    pub medications: Vec<MedicationRequest>, // status=active, any order
    pub allergies: Vec<AllergyIntolerance>,  // all for the patient; resolved/inactive/entered-in-error are not shown
    pub labs: Vec<Observation>,              // laboratory observations restricted to LAB_CODES, any order
    pub vitals: Vec<Observation>,            // vital-signs restricted to VITAL_CODES, any order
    pub immunizations: Vec<Immunization>,    // all for the patient
    pub encounters: Vec<Encounter>,          // most recent N (N≈10), any order
    pub screenings: Vec<Procedure>,          // procedures restricted to COLORECTAL_SCREENING_CODES
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientSummary {
    /// ISO date the summary is computed for.
    pub as_of: String,
    pub patient: PatientFacts,
    pub problems: Vec<Problem>,
    pub medications: Vec<Medication>,
    pub allergies: Vec<Allergy>,
    pub labs: Vec<LabTrend>,
    pub vitals: Vitals,
    pub immunizations: Vec<ImmunizationFact>,
    pub recent_encounters: Vec<EncounterFact>,
    pub care_gaps: Vec<CareGap>,
    /// Plain-words remarks about how the summary was made (never PHI).
    pub notes: Vec<String>,
    pub counts: Counts,
}

/// The only patient facts that leave this module. Deliberately no name, birth date or identifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientFacts {
    /// `Patient/<id>`; empty when the Patient resource had no id (then `counts.uncitable` counts it).
    pub reference: String,
    /// Whole years at `as_of`, or at death when the death date is known and earlier.
    pub age_years: Option<u32>,
    /// Administrative gender as recorded.
    pub sex: Option<String>,
    pub deceased: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CodeRef {
    pub system: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub display: String,
    pub code: CodeRef,
    pub onset: Option<String>,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Medication {
    pub display: String,
    pub code: Option<CodeRef>,
    pub authored_on: Option<String>,
    pub dosage: Option<String>,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allergy {
    pub display: String,
    /// `low`, `high` or `unable-to-assess`.
    pub criticality: Option<String>,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabResult {
    pub value: f64,
    pub unit: Option<String>,
    pub date: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Up,
    Down,
    /// Within the stable band: |latest − previous| < 5 % of |previous|.
    Stable,
    /// Only one comparable result.
    Single,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabTrend {
    pub name: String,
    /// LOINC code of the latest result.
    pub loinc: String,
    pub latest: LabResult,
    pub previous: Option<LabResult>,
    pub trend: Trend,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BloodPressure {
    pub systolic: f64,
    pub diastolic: f64,
    pub unit: Option<String>,
    pub date: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub value: f64,
    pub unit: Option<String>,
    pub date: String,
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Vitals {
    pub blood_pressure: Option<BloodPressure>,
    pub bmi: Option<Measurement>,
    pub body_weight: Option<Measurement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImmunizationFact {
    pub display: String,
    pub cvx: Option<String>,
    pub date: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncounterFact {
    pub type_display: Option<String>,
    pub class_code: Option<String>,
    pub start: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CareGap {
    pub rule_id: String,
    pub title: String,
    pub detail: String,
    pub sources: Vec<String>,
    pub evidence_window: EvidenceWindow,
}

/// The period of the record the rule looked at; `start: None` means the whole record up to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceWindow {
    pub start: Option<String>,
    pub end: String,
}

/// How many inputs of each category were considered, and how many could not be cited (no id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub conditions: usize,
    pub medications: usize,
    pub allergies: usize,
    pub labs: usize,
    pub vitals: usize,
    pub immunizations: usize,
    pub encounters: usize,
    pub screenings: usize,
    pub uncitable: usize,
}

/// The summary of `chart` as of `as_of`. Pure and deterministic: same chart and day, same summary.
pub fn summarize(chart: &ChartExtract, as_of: time::Date) -> PatientSummary {
    let mut uncitable = 0;
    let mut notes = Vec::new();

    let patient = chart::patient_facts(&chart.patient, as_of);
    if patient.reference.is_empty() {
        uncitable += 1;
        notes.push("The patient record has no id, so it cannot be cited.".to_owned());
    }

    let problems = chart::problems(&chart.conditions, &mut uncitable);
    let medications = chart::medications(&chart.medications, &mut uncitable);
    let allergies = chart::allergies(&chart.allergies, &mut uncitable);
    let labs = results::labs(&chart.labs, as_of, &mut uncitable);
    let vitals = results::vitals(&chart.vitals, as_of, &mut uncitable);
    let immunizations = chart::immunizations(&chart.immunizations, as_of, &mut uncitable);
    let recent_encounters = chart::recent_encounters(&chart.encounters, as_of, &mut uncitable);
    let screenings = chart::screenings(&chart.screenings, as_of, &mut uncitable);

    let care_gaps = if patient.deceased {
        notes.push("The patient is deceased; care gaps are not evaluated.".to_owned());
        Vec::new()
    } else {
        care_gaps::evaluate(&care_gaps::Evidence {
            as_of,
            patient: &patient,
            problems: &problems,
            labs: &labs,
            vitals: &vitals,
            immunizations: &immunizations,
            screenings: &screenings,
        })
    };

    let counts = Counts {
        conditions: chart.conditions.len(),
        medications: chart.medications.len(),
        allergies: chart.allergies.len(),
        labs: chart.labs.len(),
        vitals: chart.vitals.len(),
        immunizations: chart.immunizations.len(),
        encounters: chart.encounters.len(),
        screenings: chart.screenings.len(),
        uncitable,
    };

    PatientSummary {
        as_of: read::iso(as_of),
        patient,
        problems,
        medications,
        allergies,
        labs,
        vitals,
        immunizations,
        recent_encounters,
        care_gaps,
        notes,
        counts,
    }
}
