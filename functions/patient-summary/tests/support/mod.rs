//! Test doubles for the handler tests: `shared::testing`'s FHIR fake answering from a Synthea bundle, and a
//! tool wired to it with the test identity keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use std::time::Duration;

use patient_summary::PatientSummary;
use serde_json::{Value, json};
use shared::audit::MemoryAuditSink;
use shared::fhir::{HttpFhirStore, Signing};
use shared::testing::{self, FhirFake};
use shared::tool::Shell;
use shared::writer::LocalWriter;

pub const SYNTHEA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir/synthea");
pub const JOIE: &str = "Joie_Morissette_c47db034-eb1c-4100-9448-4d4b3cb6535c.json";
pub const JOIE_ID: &str = "fdc61ab3-9be9-412c-b470-dfa65cb5e6e6";
pub const SESSION: &str = "test-session-0123456789abcdef0123456789abcdef";

/// Loads a Synthea transaction bundle and resolves `urn:uuid:` references to `Type/id`.
pub fn load_bundle(file: &str) -> Vec<Value> {
    testing::load_bundle(format!("{SYNTHEA}/{file}")).expect("shared synthea bundle (../shared beside the repo)")
}

/// One FHIR request the fake server saw: resource type, parameters (query or form body), `x-session-id`.
pub type Seen = (String, String, Option<String>);

/// How the fake server answers: which practitioner is the GP, and what fails (`shared::testing`'s fake).
pub use shared::testing::FakeBehaviour as Behaviour;

pub struct Harness {
    pub fhir: FhirFake,
    pub tool: Shell<PatientSummary<HttpFhirStore, LocalWriter>, MemoryAuditSink>,
}

impl Harness {
    pub async fn new(resources: Vec<Value>, behaviour: Behaviour) -> Self {
        let fhir = FhirFake::start(resources, behaviour).await;
        let endpoint = fhir.endpoint().unwrap();
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
        Self { fhir, tool }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.fhir.requests().into_iter().map(|r| (r.resource_type, r.params, r.session_id)).collect()
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

pub use shared::testing::invocation;

/// A break-glass grant for `patient`, as the front end sets it: the patient, the reason, 30 minutes.
pub fn grant(patient: &str, reason: &str) -> Value {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
    let expires = expires.format(&time::format_description::well_known::Rfc3339).unwrap();
    json!({"patient_id": patient, "reason": reason, "expires_at": expires})
}
