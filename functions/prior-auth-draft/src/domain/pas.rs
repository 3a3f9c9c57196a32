//! The request in the shape of a Da Vinci PAS Claim Bundle: a `collection` Bundle whose first entry is a
//! `Claim` with `use = preauthorization`, followed by the Patient, Practitioner, Organizations and Coverage
//! it names and every resource its `supportingInfo` cites, so each citation resolves inside the Bundle.
//!
//! Built as JSON: the Bundle is written, not read, and fhir-sdk's `Resource` enum is too costly to compile
//! for a structure this small. `tests/pas_bundle.rs` and `local/validate_pas.py` check it.

use serde_json::{Value, json};

use super::evaluate::Evaluation;
use super::logic::Status;
use super::policy::CoveragePolicy;

pub const DRAFT_IDENTIFIER_SYSTEM: &str = "urn:clinical-agent:prior-auth-draft";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// Who and what the request is about, as the caller and the store gave them.
pub struct Parties<'a> {
    /// The FHIR base the `fullUrl`s are formed from (ends with `/`).
    pub base: &'a str,
    pub patient: Value,
    pub practitioner: Value,
    /// The organisation this deployment serves (the requesting provider's organisation).
    pub provider_organization: &'a str,
}

/// The payer's organisation id and name, from the policy id's prefix (`EHP-…` is Example Health Plan).
pub fn payer_of(policy: &CoveragePolicy) -> (String, String) {
    let prefix = policy.policy_id.split('-').next().unwrap_or("payer").to_ascii_lowercase();
    let name = if prefix == "ehp" { "Example Health Plan (synthetic)".to_owned() } else { prefix.to_ascii_uppercase() };
    (format!("payer-{prefix}"), name)
}

fn reference_of(resource: &Value) -> Option<String> {
    Some(format!("{}/{}", resource.get("resourceType")?.as_str()?, resource.get("id")?.as_str()?))
}

/// The Bundle. `evidence` holds the resources the evaluation cites, as read; `timestamp` is an instant.
pub fn bundle(
    draft_id: &str,
    timestamp: &str,
    policy: &CoveragePolicy,
    evaluation: &Evaluation,
    parties: &Parties<'_>,
    evidence: &[Value],
) -> Value {
    let patient_ref = reference_of(&parties.patient).unwrap_or_default();
    let practitioner_ref = reference_of(&parties.practitioner).unwrap_or_default();
    let (payer_id, payer_name) = payer_of(policy);
    let coverage_id = format!("coverage-{draft_id}");
    let is_drug = policy.service.system == RXNORM;

    // One supportingInfo per criterion and cited resource, so a reviewer sees which criterion each supports.
    let mut supporting = Vec::new();
    for criterion in &evaluation.criteria {
        for fact in &criterion.evidence {
            supporting.push(json!({
                "sequence": supporting.len() + 1,
                "category": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claiminformationcategory", "code": "info"}],
                    "text": format!("{} {} ({})", evaluation.policy_id, criterion.id, criterion.status.as_str()),
                },
                "valueReference": {"reference": fact.reference},
            }));
        }
    }
    let met_conditions: Vec<&super::chart::Fact> = policy
        .criteria
        .iter()
        .zip(&evaluation.criteria)
        .filter(|(c, r)| c.evidence.resource == super::policy::EvidenceResource::Condition && r.status == Status::Met)
        .flat_map(|(_, r)| &r.evidence)
        .collect();
    let mut diagnosis = Vec::new();
    for fact in met_conditions {
        if diagnosis.iter().any(|d: &Value| d["diagnosisReference"]["reference"] == fact.reference.as_str()) {
            continue;
        }
        diagnosis.push(json!({"sequence": diagnosis.len() + 1, "diagnosisReference": {"reference": fact.reference}}));
    }
    let information_sequence: Vec<Value> = (1..=supporting.len()).map(|n| json!(n)).collect();
    let diagnosis_sequence: Vec<Value> = (1..=diagnosis.len()).map(|n| json!(n)).collect();
    let mut item = json!({
        "sequence": 1,
        "productOrService": {"coding": [{
            "system": policy.service.system, "code": policy.service.code, "display": policy.service.display,
        }]},
        "quantity": {"value": 1},
    });
    if !information_sequence.is_empty() {
        item["informationSequence"] = Value::Array(information_sequence);
    }
    if !diagnosis_sequence.is_empty() {
        item["diagnosisSequence"] = Value::Array(diagnosis_sequence);
    }

    let mut claim = json!({
        "resourceType": "Claim",
        "id": format!("claim-{draft_id}"),
        "identifier": [{"system": DRAFT_IDENTIFIER_SYSTEM, "value": draft_id}],
        "status": "draft",
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/claim-type",
            "code": if is_drug { "pharmacy" } else { "professional" },
        }]},
        "use": "preauthorization",
        "patient": {"reference": patient_ref},
        "created": timestamp,
        "insurer": {"reference": format!("Organization/{payer_id}")},
        "provider": {"reference": practitioner_ref},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": format!("Coverage/{coverage_id}")}}],
        "item": [item],
    });
    if !supporting.is_empty() {
        claim["supportingInfo"] = Value::Array(supporting);
    }
    if !diagnosis.is_empty() {
        claim["diagnosis"] = Value::Array(diagnosis);
    }

    let provider_org = json!({
        "resourceType": "Organization", "id": parties.provider_organization, "active": true,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]}],
        "name": parties.provider_organization,
    });
    let payer = json!({
        "resourceType": "Organization", "id": payer_id, "active": true,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay"}]}],
        "name": payer_name,
    });
    // Eligibility is not checked by this tool, so the Coverage is a draft for the team to complete.
    let coverage = json!({
        "resourceType": "Coverage", "id": coverage_id, "status": "draft",
        "beneficiary": {"reference": patient_ref},
        "payor": [{"reference": format!("Organization/{payer_id}")}],
    });
    // Full PAS would add a PractitionerRole tying the practitioner to the provider organisation.
    let mut resources =
        vec![claim, parties.patient.clone(), parties.practitioner.clone(), provider_org, payer, coverage];
    for resource in evidence {
        let reference = reference_of(resource);
        if !resources.iter().any(|r| reference_of(r) == reference) {
            resources.push(resource.clone());
        }
    }
    let entry: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let full_url = format!("{}{}", parties.base, reference_of(&resource).unwrap_or_default());
            json!({"fullUrl": full_url, "resource": resource})
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": draft_id,
        "identifier": {"system": DRAFT_IDENTIFIER_SYSTEM, "value": draft_id},
        "type": "collection",
        "timestamp": timestamp,
        "entry": entry,
    })
}

/// `Type/id` of every resource in the Bundle.
pub fn entry_references(bundle: &Value) -> Vec<String> {
    bundle["entry"].as_array().into_iter().flatten().filter_map(|e| reference_of(&e["resource"])).collect()
}
