//! What the summary reads from FHIR, and nothing more: the relationship facts a decision needs, then the
//! narrow clinical searches of the summary, issued concurrently.

use fhir_sdk::r4b::resources::Patient;
use shared::ToolError;
use shared::fhir::{FhirId, FhirStore, Parsed, SearchQuery, SearchSet};
use shared::session::SessionContext;
use time::Date;

use crate::summary::{COLORECTAL_SCREENING_CODES, ChartExtract, LAB_CODES, VITAL_CODES};

const LOINC: &str = "http://loinc.org";

/// Whether the caller's practitioner record is linked to the patient, and what was read to find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareRelationship {
    pub established: bool,
    /// `Type/id` of the resources that established it (reference elements only were requested).
    pub reads: Vec<String>,
}

/// Relationship facts, minimally: the server is asked to match, and returns ids only.
///
/// Two links count: the practitioner is the patient's `generalPractitioner`, or took part in one of the
/// patient's encounters since `since`. `CareTeam` is not consulted: the Synthea data carries none, and a
/// care team without a recent encounter is weaker evidence than either link above.
pub async fn care_relationship(
    store: &impl FhirStore,
    session: &SessionContext,
    patient: &FhirId,
    practitioner: Option<&FhirId>,
    since: Date,
) -> Result<CareRelationship, ToolError> {
    let Some(practitioner) = practitioner else {
        return Ok(CareRelationship { established: false, reads: Vec::new() });
    };
    let practitioner_ref = format!("Practitioner/{practitioner}");
    let general_practitioner = SearchQuery::new("Patient")
        .param("_id", patient.as_str())
        .param("general-practitioner", practitioner_ref.as_str())
        .elements(&["id"])
        .count(1)
        .pages(1);
    let encounter = SearchQuery::new("Encounter")
        .patient(patient)
        .param("participant", practitioner_ref.as_str())
        .param("date", format!("ge{since}"))
        .elements(&["id"])
        .count(1)
        .pages(1);
    let (gp, encounters) =
        tokio::try_join!(store.search(session, &general_practitioner), store.search(session, &encounter))?;
    let reads: Vec<String> = gp.references().into_iter().chain(encounters.references()).collect();
    Ok(CareRelationship { established: !reads.is_empty(), reads })
}

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
            .param("_id", patient.as_str())
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

/// Runs all summary searches concurrently; the summary's wall time is that of the slowest one.
pub async fn chart(
    store: &impl FhirStore,
    session: &SessionContext,
    patient: &FhirId,
) -> Result<FetchedChart, ToolError> {
    let q = chart_queries(patient);
    let (patient_set, conditions, medications, allergies, labs, vitals, immunizations, encounters, screenings) = tokio::try_join!(
        store.search(session, &q.patient),
        store.search(session, &q.conditions),
        store.search(session, &q.medications),
        store.search(session, &q.allergies),
        store.search(session, &q.labs),
        store.search(session, &q.vitals),
        store.search(session, &q.immunizations),
        store.search(session, &q.encounters),
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
