//! What a draft reads from FHIR: the Patient, the ordering Practitioner, and per evidence type one search
//! restricted to the policy's codes and the elements the evaluation reads, all issued concurrently.

use serde_json::Value;
use shared::fhir::{FhirError, FhirId, FhirStore, SearchQuery, SearchSet, search_all};
use shared::session::SessionContext;

use crate::domain::policy::{CoveragePolicy, EvidenceResource};

/// What the draft reads: the patient, the ordering practitioner, and per evidence type one search
/// restricted to the policy's codes and the elements the evaluation reads.
pub struct Fetched {
    pub patient: Option<Value>,
    pub practitioner: Option<Value>,
    pub evidence: Vec<Value>,
    pub reads: Vec<String>,
}

pub fn evidence_queries(patient: &FhirId, policy: &CoveragePolicy) -> Vec<SearchQuery> {
    let kinds = [
        (
            EvidenceResource::Condition,
            "Condition",
            "code",
            &["id", "code", "clinicalStatus", "verificationStatus", "onset", "abatement", "recordedDate", "subject"][..],
        ),
        (
            EvidenceResource::Observation,
            "Observation",
            "code",
            &["id", "status", "code", "effective", "value", "subject"][..],
        ),
        (
            EvidenceResource::MedicationRequest,
            "MedicationRequest",
            "code",
            &["id", "status", "intent", "medication", "authoredOn", "subject"][..],
        ),
        (EvidenceResource::Procedure, "Procedure", "code", &["id", "status", "code", "performed", "subject"][..]),
        (EvidenceResource::Encounter, "Encounter", "type", &["id", "status", "class", "type", "period", "subject"][..]),
    ];
    let mut queries = Vec::new();
    for (kind, resource_type, parameter, elements) in kinds {
        let tokens: Vec<String> = policy
            .criteria
            .iter()
            .filter(|c| c.evidence.resource == kind)
            .flat_map(|c| c.evidence.codes.iter().map(|code| format!("{}|{code}", c.evidence.code_system)))
            .fold(Vec::new(), |mut acc, t| {
                if !acc.contains(&t) {
                    acc.push(t);
                }
                acc
            });
        if tokens.is_empty() {
            continue;
        }
        queries.push(
            SearchQuery::new(resource_type)
                .patient(patient)
                .param(parameter, tokens.join(","))
                .elements(elements)
                .count(100)
                .pages(5),
        );
    }
    queries
}

pub async fn fetch(
    store: &impl FhirStore,
    session: &SessionContext,
    patient: &FhirId,
    practitioner: &FhirId,
    policy: &CoveragePolicy,
) -> Result<Fetched, FhirError> {
    let patient_query = SearchQuery::new("Patient")
        .patient(patient)
        .elements(&["id", "identifier", "name", "gender", "birthDate"])
        .count(1)
        .pages(1);
    let practitioner_query = SearchQuery::new("Practitioner")
        .param("_id", practitioner.as_str())
        .elements(&["id", "identifier", "name"])
        .count(1)
        .pages(1);
    // Patient and practitioner first, then one search per evidence type, however many the policy needs.
    let mut queries = vec![patient_query, practitioner_query];
    queries.extend(evidence_queries(patient, policy));
    let sets = search_all(store, session, &queries).await?;
    let reads = sets.iter().flat_map(SearchSet::references).collect();
    let first = |set: Option<&SearchSet>| set.and_then(|s| s.parse::<Value>().items.into_iter().next());
    Ok(Fetched {
        patient: first(sets.first()),
        practitioner: first(sets.get(1)),
        evidence: sets.iter().skip(2).flat_map(|s| s.parse::<Value>().items).collect(),
        reads,
    })
}

pub fn reference_of(resource: &Value) -> Option<String> {
    Some(format!("{}/{}", resource.get("resourceType")?.as_str()?, resource.get("id")?.as_str()?))
}
