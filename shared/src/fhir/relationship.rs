//! The care relationship a Cedar decision needs: is the caller's practitioner linked to the patient? Read
//! minimally (the server matches, ids only), before any clinical read.

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
