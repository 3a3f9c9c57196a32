//! Test doubles for the handler tests: a FHIR endpoint on wiremock that answers searches from a Synthea
//! bundle, and a tool wired to it with the test identity keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use patient_summary::PatientSummary;
use serde_json::{Value, json};
use shared::audit::MemoryAuditSink;
use shared::fhir::{FhirEndpoint, HttpFhirStore, Signing};
use shared::runtime::Invocation;
use shared::tool::Shell;
use shared::writer::LocalWriter;
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

pub const SYNTHEA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir/synthea");
pub const JOIE: &str = "Joie_Morissette_c47db034-eb1c-4100-9448-4d4b3cb6535c.json";
pub const JOIE_ID: &str = "fdc61ab3-9be9-412c-b470-dfa65cb5e6e6";
pub const SESSION: &str = "test-session-0123456789abcdef0123456789abcdef";

/// Loads a Synthea transaction bundle and resolves `urn:uuid:` references to `Type/id`.
pub fn load_bundle(file: &str) -> Vec<Value> {
    let raw = std::fs::read_to_string(format!("{SYNTHEA}/{file}"))
        .expect("shared synthea bundle (../shared beside the repo)");
    let bundle: Value = serde_json::from_str(&raw).unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    let mut map = HashMap::new();
    for e in entries {
        let r = &e["resource"];
        map.insert(
            e["fullUrl"].as_str().unwrap().to_owned(),
            format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()),
        );
    }
    let mut text = serde_json::to_string(&entries.iter().map(|e| e["resource"].clone()).collect::<Vec<_>>()).unwrap();
    for (urn, reference) in &map {
        text = text.replace(&format!("\"{urn}\""), &format!("\"{reference}\""));
    }
    serde_json::from_str(&text).unwrap()
}

/// One FHIR request the fake server saw: resource type, raw query, `x-session-id` header.
pub type Seen = (String, String, Option<String>);
pub type Journal = Arc<Mutex<Vec<Seen>>>;

/// How the fake server answers: which practitioner is the GP, and what fails.
#[derive(Clone, Default)]
pub struct Behaviour {
    pub general_practitioner: Option<String>,
    pub encounter_participant: Option<String>,
    /// Resource types whose search answers with this status.
    pub failing: HashMap<String, u16>,
}

/// Answers FHIR searches from a bundle. Only the parameters the summary uses are honoured, loosely:
/// the tool's own filtering is what the handler tests check, not the server's.
pub struct BundleFhir {
    pub resources: Arc<Vec<Value>>,
    pub behaviour: Behaviour,
    pub seen: Journal,
}

impl Respond for BundleFhir {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let resource_type = request.url.path().trim_start_matches("/fhir/").to_owned();
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let session = request.headers.get("x-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.seen.lock().unwrap().push((
            resource_type.clone(),
            request.url.query().unwrap_or_default().to_owned(),
            session,
        ));
        if let Some(status) = self.behaviour.failing.get(&resource_type) {
            return ResponseTemplate::new(*status)
                .set_body_string("{\"issue\":[{\"diagnostics\":\"upstream detail\"}]}");
        }
        let matches = |r: &&Value| -> bool {
            let subject = r.get("subject").or_else(|| r.get("patient")).and_then(|s| s["reference"].as_str());
            r["resourceType"] == resource_type.as_str()
                && query.get("_id").is_none_or(|id| r["id"] == id.as_str())
                && query
                    .get("general-practitioner")
                    .is_none_or(|gp| self.behaviour.general_practitioner.as_deref() == Some(gp.as_str()))
                && query
                    .get("participant")
                    .is_none_or(|p| self.behaviour.encounter_participant.as_deref() == Some(p.as_str()))
                && query.get("patient").is_none_or(|patient| subject == Some(patient.as_str()))
        };
        let entry: Vec<Value> = self.resources.iter().filter(matches).map(|r| json!({"resource": r})).collect();
        ResponseTemplate::new(200).set_body_json(json!({"resourceType": "Bundle", "type": "searchset", "entry": entry}))
    }
}

pub struct Harness {
    pub server: MockServer,
    pub seen: Journal,
    pub tool: Shell<PatientSummary<HttpFhirStore, LocalWriter>, MemoryAuditSink>,
}

impl Harness {
    pub async fn new(resources: Vec<Value>, behaviour: Behaviour) -> Self {
        let server = MockServer::start().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let responder = BundleFhir { resources: Arc::new(resources), behaviour, seen: seen.clone() };
        wiremock::Mock::given(wiremock::matchers::method("GET")).respond_with(responder).mount(&server).await;
        let endpoint = FhirEndpoint::parse(&format!("{}/fhir", server.uri())).unwrap();
        let store =
            HttpFhirStore::new(reqwest::Client::new(), endpoint, Signing::None).with_retry(shared::fhir::RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            });
        let action = PatientSummary {
            store,
            writer: LocalWriter,
            care_lookback_days: 730,
            as_of: Some(time::macros::date!(2021 - 06 - 01)),
        };
        let tool = Shell::for_tests(action, MemoryAuditSink::default(), "patient-summary-test", "org-test");
        Self { server, seen, tool }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The final audit record of each call (intent records left out).
    pub fn audit(&self) -> Vec<Value> {
        self.audit_all().into_iter().filter(|r| r["record_kind"] == "final").collect()
    }

    /// Every audit record, intent records included.
    pub fn audit_all(&self) -> Vec<Value> {
        self.tool.audit.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

pub fn direct(token: &str, patient_id: &str) -> Value {
    json!({"tool": "patient_summary", "session_id": SESSION, "identity_token": token, "arguments": {"patient_id": patient_id}})
}

pub fn invocation(event: &Value) -> Invocation {
    Invocation {
        request_id: "req-test-1".into(),
        deadline: Instant::now() + Duration::from_secs(10),
        payload: Bytes::from(serde_json::to_vec(event).unwrap()),
        client_context: None,
        trace_header: None,
    }
}

/// A break-glass grant for `patient`, as the front end sets it: the patient, the reason, 30 minutes.
pub fn grant(patient: &str, reason: &str) -> Value {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
    let expires = expires.format(&time::format_description::well_known::Rfc3339).unwrap();
    json!({"patient_id": patient, "reason": reason, "expires_at": expires})
}
