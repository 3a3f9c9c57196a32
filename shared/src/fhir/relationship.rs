//! The care relationship a Cedar decision needs: is the caller's practitioner linked to the patient? Read
//! minimally (the server matches, ids only), before any clinical read.

use serde::Deserialize;
use time::Date;

use super::{FhirId, FhirStore, SearchQuery};
use crate::error::ToolError;
use crate::session::SessionContext;

/// Whether the caller's practitioner record is linked to the patient, and what was read to find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareRelationship {
    pub established: bool,
    /// `Type/id` of the resources that established it (reference elements only were requested).
    pub reads: Vec<String>,
}

/// Relationship facts, minimally: the server is asked to match, and returns ids only.
///
/// Two links count, checked in this order: the practitioner is the patient's `generalPractitioner`, or took part
/// in one of the patient's encounters since `since`. `CareTeam` is not consulted: the Synthea data carries none,
/// and a care team without a recent encounter is weaker evidence than either link above.
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
    // The reference elements are requested so that the link is checked in what came back, not inferred from
    // a non-empty bundle: a server that ignored `general-practitioner` or `participant` (HealthLake is
    // lenient unless told otherwise) would otherwise make every practitioner "related".
    let general_practitioner = SearchQuery::new("Patient")
        .patient(patient)
        .param("general-practitioner", practitioner_ref.as_str())
        .elements(&["id", "generalPractitioner"])
        .count(1)
        .pages(1);
    let encounter = SearchQuery::new("Encounter")
        .patient(patient)
        .param("participant", practitioner_ref.as_str())
        .param("date", format!("ge{since}"))
        .elements(&["id", "participant", "period"])
        .count(1)
        .pages(1);
    // One link is enough: the encounter search is sent only when the practitioner is not the patient's general
    // practitioner. For a GP that is one search fewer against the data store's request rate quotas ("AWS
    // HealthLake endpoints and quotas"), one read fewer, and the clinical searches start sooner (issue 11's
    // fan-out); the price is the GP search's time first when the link is an encounter.
    let gp = store.search(session, &general_practitioner).await?;
    let gp_reads: Vec<String> = gp
        .parse::<LinkedPatient>()
        .items
        .into_iter()
        .filter(|p| p.names(&practitioner_ref))
        .map(|p| format!("Patient/{}", p.id))
        .collect();
    if !gp_reads.is_empty() {
        return Ok(CareRelationship { established: true, reads: gp_reads });
    }
    let encounters = store.search(session, &encounter).await?;
    let reads: Vec<String> = encounters
        .parse::<LinkedEncounter>()
        .items
        .into_iter()
        .filter(|e| e.names(&practitioner_ref, since))
        .map(|e| format!("Encounter/{}", e.id))
        .collect();
    Ok(CareRelationship { established: !reads.is_empty(), reads })
}

/// Whether `encounter` is one of the patient's encounters: the link an RCM coder has to a patient (they
/// code the note of that encounter). One search, ids and `subject` only; the subject is checked in what came
/// back, not inferred from a non-empty bundle.
pub async fn encounter_of_patient(
    store: &impl FhirStore,
    session: &SessionContext,
    patient: &FhirId,
    encounter: &FhirId,
) -> Result<CareRelationship, ToolError> {
    let query = SearchQuery::new("Encounter")
        .patient(patient)
        .param("_id", encounter.as_str())
        .elements(&["id", "subject"])
        .count(1)
        .pages(1);
    let found = store.search(session, &query).await?;
    let subject = format!("Patient/{patient}");
    let reads: Vec<String> = found
        .parse::<EncounterSubject>()
        .items
        .into_iter()
        .filter(|e| {
            e.id == encounter.as_str() && e.subject.as_ref().and_then(|r| r.reference.as_deref()) == Some(&subject)
        })
        .map(|e| format!("Encounter/{}", e.id))
        .collect();
    Ok(CareRelationship { established: !reads.is_empty(), reads })
}

#[derive(Deserialize)]
struct EncounterSubject {
    id: String,
    subject: Option<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    reference: Option<String>,
}

#[derive(Deserialize)]
struct LinkedPatient {
    id: String,
    #[serde(rename = "generalPractitioner", default)]
    general_practitioner: Vec<Reference>,
}

impl LinkedPatient {
    fn names(&self, practitioner: &str) -> bool {
        self.general_practitioner.iter().any(|r| r.reference.as_deref() == Some(practitioner))
    }
}

#[derive(Deserialize)]
struct Participant {
    individual: Option<Reference>,
}

#[derive(Deserialize)]
struct Period {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
struct LinkedEncounter {
    id: String,
    #[serde(default)]
    participant: Vec<Participant>,
    period: Option<Period>,
}

impl LinkedEncounter {
    /// The practitioner took part, and the encounter reaches into the look-back window (its end, else its
    /// start, on or after `since`). An encounter without a readable date does not count: the window is part of
    /// the rule, and a server that ignored `date` must not stretch it.
    fn names(&self, practitioner: &str, since: Date) -> bool {
        let took_part = self
            .participant
            .iter()
            .any(|p| p.individual.as_ref().and_then(|r| r.reference.as_deref()) == Some(practitioner));
        let last_day = self.period.as_ref().and_then(|p| p.end.as_deref().or(p.start.as_deref())).and_then(day_of);
        took_part && last_day.is_some_and(|d| d >= since)
    }
}

/// The calendar day of a FHIR date or dateTime (`2019-06-02`, `2019-06-02T10:00:00-04:00`).
fn day_of(raw: &str) -> Option<Date> {
    let day = raw.get(..10)?;
    Date::parse(day, time::macros::format_description!("[year]-[month]-[day]")).ok()
}
