//! Test doubles for the coding tool: `shared::testing`'s FHIR fake answering from given resources (with its
//! journal), a knowledge base that counts its calls, a scripted model, and a tool wired to them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use icd10_coding::Icd10Coding;
use icd10_coding::index::LexicalIndex;
use serde_json::{Value, json};
use shared::audit::MemoryAuditSink;
use shared::fhir::{HttpFhirStore, Signing};
use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::model::{ModelError, ModelOutcome, ScriptedModel};
use shared::runtime::Handler;
use shared::session::SessionContext;
use shared::testing::{FakeBehaviour, FhirFake, TokenSpec};
use shared::tool::Shell;

pub const SESSION: &str = "test-session-icd10-0123456789abcdef";
/// The organisation of the test tokens (`TokenSpec::default().org`).
pub const TENANT: &str = "org-test";
pub const PATIENT: &str = "p-123";
/// The patient's encounter the test notes document: a coder's cross-check needs it.
pub const ENCOUNTER: &str = "e-visit";
pub const DEV_CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/icd10/dev_cases.jsonl");

/// One FHIR request the fake server saw: resource type, parameters (query or form body), `x-session-id`.
pub type Seen = (String, String, Option<String>);

/// A knowledge base that counts retrievals and answers from the embedded lexical index.
pub struct CountingKb {
    pub inner: LexicalIndex,
    pub calls: AtomicUsize,
}

impl KnowledgeBase for CountingKb {
    async fn retrieve(&self, session: &SessionContext, query: &RetrievalQuery) -> Result<Vec<Passage>, KnowledgeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.retrieve(session, query).await
    }
}

pub type Tool = Shell<Icd10Coding<HttpFhirStore, ScriptedModel, CountingKb>, MemoryAuditSink>;

pub struct Harness {
    pub fhir: FhirFake,
    pub tool: Tool,
}

impl Harness {
    /// `model`: `None` is the local default (deterministic coder only).
    pub async fn new(resources: Vec<Value>, model: Option<Result<ModelOutcome, ModelError>>) -> Self {
        let fhir = FhirFake::start(resources, FakeBehaviour::default()).await;
        let endpoint = fhir.endpoint().unwrap();
        let action = Icd10Coding {
            store: HttpFhirStore::new(reqwest::Client::new(), endpoint, Signing::None),
            care_lookback_days: 3650,
            model: model.map(ScriptedModel::new),
            knowledge: CountingKb { inner: LexicalIndex::new(), calls: AtomicUsize::new(0) },
        };
        let tool = Shell::for_tests(action, MemoryAuditSink::default(), "icd10-coding-test", TENANT);
        Self { fhir, tool }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.fhir.requests().into_iter().map(|r| (r.resource_type, r.params, r.session_id)).collect()
    }

    pub fn model_requests(&self) -> usize {
        self.tool.actions.model.as_ref().map_or(0, |m| m.requests().len())
    }

    pub fn kb_calls(&self) -> usize {
        self.tool.actions.knowledge.calls.load(Ordering::SeqCst)
    }

    /// The final audit record of each call (intent records left out).
    pub fn audit(&self) -> Vec<Value> {
        self.audit_all().into_iter().filter(|r| r["record_kind"] == "final").collect()
    }

    /// Every audit record, intent records included.
    pub fn audit_all(&self) -> Vec<Value> {
        self.tool.audit.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub async fn call(&self, event: &Value) -> Value {
        self.tool.call(invocation(event)).await
    }
}

pub fn coder_token() -> String {
    TokenSpec::with_roles(&["rcm_coder"]).mint()
}

pub fn direct(token: &str, arguments: Value) -> Value {
    json!({"tool": "icd10_coding", "session_id": SESSION, "identity_token": token, "arguments": arguments})
}

pub use shared::testing::invocation;

pub fn model_answer(codes: &[(&str, &str)]) -> Result<ModelOutcome, ModelError> {
    let codes: Vec<Value> = codes.iter().map(|(c, q)| json!({"code": c, "quote": q})).collect();
    Ok(ModelOutcome::Text { text: json!({"codes": codes}).to_string(), model: "test-model".into() })
}

pub fn condition(id: &str, snomed: &str, status: &str) -> Value {
    json!({"resourceType": "Condition", "id": id,
           "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
           "verificationStatus": {"coding": [{"code": "confirmed"}]},
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": snomed}]},
           "subject": {"reference": format!("Patient/{PATIENT}")}})
}

/// An Encounter of `patient`.
pub fn encounter(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Encounter", "id": id, "status": "finished",
           "subject": {"reference": format!("Patient/{patient}")},
           "period": {"start": "2026-11-30T09:00:00Z", "end": "2026-11-30T09:30:00Z"}})
}

pub fn medication(id: &str, display: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "active",
           "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1", "display": display}]},
           "subject": {"reference": format!("Patient/{PATIENT}")}})
}

/// The dev cases: (id, note, not_codes).
pub fn dev_cases() -> Vec<Value> {
    std::fs::read_to_string(DEV_CASES)
        .expect("../shared/icd10/dev_cases.jsonl beside the repository")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The substring of `note` between two character offsets.
pub fn chars(note: &str, start: usize, end: usize) -> String {
    note.chars().skip(start).take(end.saturating_sub(start)).collect()
}

pub fn proposal_codes(reply: &Value) -> Vec<String> {
    let mut codes: Vec<String> = reply["result"]["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect();
    codes.sort();
    codes
}

pub fn counts_by_type(seen: &[Seen]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (t, _, _) in seen {
        *counts.entry(t.clone()).or_insert(0) += 1;
    }
    counts
}
