//! What the summary reads from FHIR, and nothing more: the relationship facts a decision needs, then the
//! narrow clinical searches of the summary, issued concurrently.

use shared::ToolError;
use shared::fhir::model::Patient;
pub use shared::fhir::relationship::{CareRelationship, care_relationship};
use shared::fhir::{FhirId, FhirStore, Parsed, SearchQuery, SearchSet};
use shared::session::SessionContext;

use crate::summary::{COLORECTAL_SCREENING_CODES, ChartExtract, LAB_CODES, VITAL_CODES};

const LOINC: &str = "http://loinc.org";

/// The summary's searches. Each asks only for what the summary shows: `_elements`, `_count`, `_sort`,
/// and codes restricted to the panels, vitals and screenings it reports.
pub fn chart_queries(patient: &FhirId) -> ChartQueries {
    let screening_codes = COLORECTAL_SCREENING_CODES
        .iter()
        .map(|(system, code)| format!("{system}|{code}"))
        .collect::<Vec<_>>()
        .join(",");
    ChartQueries {
        patient: SearchQuery::new("Patient")
            .patient(patient)
            .elements(&["id", "gender", "birthDate", "deceased"])
            .count(1)
            .pages(1),
        conditions: SearchQuery::new("Condition")
            .patient(patient)
            .param("clinical-status", "active")
            .elements(&["id", "code", "clinicalStatus", "verificationStatus", "onset", "recordedDate"])
            .count(100),
        medications: SearchQuery::new("MedicationRequest")
            .patient(patient)
            .param("status", "active")
            .elements(&["id", "status", "intent", "medication", "authoredOn", "dosageInstruction"])
            .count(100),
        allergies: SearchQuery::new("AllergyIntolerance")
            .patient(patient)
            .elements(&["id", "code", "clinicalStatus", "verificationStatus", "criticality", "category", "type"])
            .count(100),
        labs: SearchQuery::new("Observation")
            .patient(patient)
            .param("category", "laboratory")
            .codes("code", LOINC, LAB_CODES)
            .sort("-date")
            .elements(&["id", "status", "category", "code", "effective", "value"])
            .count(100)
            .pages(3),
        vitals: SearchQuery::new("Observation")
            .patient(patient)
            .param("category", "vital-signs")
            .codes("code", LOINC, VITAL_CODES)
            .sort("-date")
            .elements(&["id", "status", "category", "code", "effective", "value", "component"])
            .count(50)
            .pages(1),
        immunizations: SearchQuery::new("Immunization")
            .patient(patient)
            .sort("-date")
            .elements(&["id", "status", "vaccineCode", "occurrence"])
            .count(100),
        encounters: SearchQuery::new("Encounter")
            .patient(patient)
            .sort("-date")
            .elements(&["id", "status", "class", "type", "period"])
            .count(10)
            .pages(1),
        screenings: SearchQuery::new("Procedure")
            .patient(patient)
            .param("code", screening_codes)
            .elements(&["id", "status", "code", "performed"])
            .count(20)
            .pages(1),
    }
}

pub struct ChartQueries {
    pub patient: SearchQuery,
    pub conditions: SearchQuery,
    pub medications: SearchQuery,
    pub allergies: SearchQuery,
    pub labs: SearchQuery,
    pub vitals: SearchQuery,
    pub immunizations: SearchQuery,
    pub encounters: SearchQuery,
    pub screenings: SearchQuery,
}

/// The chart as fetched, with every resource read (for the audit) and those that did not parse.
pub struct FetchedChart {
    pub chart: ChartExtract,
    pub reads: Vec<String>,
    pub unparsed: usize,
}

/// Runs all summary searches concurrently; the summary's wall time is that of the slowest one. They are sent
/// largest first (labs, then vitals and encounters: most resources for a long-followed patient), so a server
/// with fewer free workers than searches starts the longest at once instead of after the short ones.
pub async fn chart(
    store: &impl FhirStore,
    session: &SessionContext,
    patient: &FhirId,
) -> Result<FetchedChart, ToolError> {
    let q = chart_queries(patient);
    let (labs, vitals, encounters, patient_set, conditions, medications, allergies, immunizations, screenings) = tokio::try_join!(
        store.search(session, &q.labs),
        store.search(session, &q.vitals),
        store.search(session, &q.encounters),
        store.search(session, &q.patient),
        store.search(session, &q.conditions),
        store.search(session, &q.medications),
        store.search(session, &q.allergies),
        store.search(session, &q.immunizations),
        store.search(session, &q.screenings),
    )?;
    let sets: [&SearchSet; 9] =
        [&patient_set, &conditions, &medications, &allergies, &labs, &vitals, &immunizations, &encounters, &screenings];
    let reads = sets.iter().flat_map(|s| s.references()).collect();

    let mut unparsed = 0;
    let patient = items(patient_set.parse::<Patient>(), &mut unparsed).into_iter().next().ok_or(ToolError::NotFound)?;
    let chart = ChartExtract {
        patient,
        conditions: items(conditions.parse(), &mut unparsed),
        medications: items(medications.parse(), &mut unparsed),
        allergies: items(allergies.parse(), &mut unparsed),
        labs: items(labs.parse(), &mut unparsed),
        vitals: items(vitals.parse(), &mut unparsed),
        immunizations: items(immunizations.parse(), &mut unparsed),
        encounters: items(encounters.parse(), &mut unparsed),
        screenings: items(screenings.parse(), &mut unparsed),
    };
    Ok(FetchedChart { chart, reads, unparsed })
}

fn items<T>(parsed: Parsed<T>, unparsed: &mut usize) -> Vec<T> {
    *unparsed += parsed.unparsed.len();
    parsed.items
}
