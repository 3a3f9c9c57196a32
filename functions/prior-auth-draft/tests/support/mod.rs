//! Shared test helpers: the synthetic payer policies and Synthea bundles from `../shared`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use serde_json::Value;

pub const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

pub fn policy_document(policy_id: &str) -> String {
    let dir = format!("{SHARED}/payer-policies");
    let entry = std::fs::read_dir(&dir)
        .expect("../shared/payer-policies beside the repo")
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(policy_id))
        .unwrap_or_else(|| panic!("policy {policy_id} in {dir}"));
    std::fs::read_to_string(entry).unwrap()
}

pub fn bundle_file(name: &str) -> String {
    let dir = format!("{SHARED}/fhir/synthea");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|f| f.starts_with(name) && f.ends_with(".json"))
        .unwrap_or_else(|| panic!("bundle {name}"))
}

pub fn patient_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("{SHARED}/fhir/synthea"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .map(|f| f.rsplit_once('_').unwrap().0.to_owned())
        .collect();
    names.sort();
    names
}

/// A Synthea transaction bundle's resources with `urn:uuid:` references resolved to `Type/id`.
pub fn load_resources(name: &str) -> Vec<Value> {
    shared::testing::load_bundle(format!("{SHARED}/fhir/synthea/{}", bundle_file(name))).unwrap()
}

pub fn patient_id(resources: &[Value]) -> String {
    resources.iter().find(|r| r["resourceType"] == "Patient").unwrap()["id"].as_str().unwrap().to_owned()
}

// ---- the handler harness ---------------------------------------------------------------------------------

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prior_auth_draft::policies::PolicyFiles;
use prior_auth_draft::store::MemoryDraftStore;
use prior_auth_draft::{PriorAuth, PriorAuthDraft, PriorAuthFinalize};
use serde_json::json;
use shared::audit::MemoryAuditSink;
use shared::fhir::{HttpFhirStore, Signing};
use shared::keys::{EncryptionContext, KeyError, Keys, LocalKeys, Sealed};
use shared::session::SessionContext;
use shared::testing::{FakeBehaviour, FhirFake};
use shared::tool::Shell;
use shared::writer::{ClinicalWriter, LocalWriter, Narrative, WriterError, WritingRequest};

pub const SESSION: &str = "test-session-0123456789abcdef0123456789abcdef";
pub const TENANT: &str = "org-synthea-ma";

/// Local keys that count their calls (the proof that a denied call made no key-service call) and keep the
/// encryption contexts they were given (what CloudTrail would record).
pub struct CountingKeys {
    pub inner: LocalKeys,
    pub calls: AtomicUsize,
    pub contexts: Mutex<Vec<EncryptionContext>>,
}

impl Keys for CountingKeys {
    async fn seal(&self, s: &SessionContext, c: &EncryptionContext, p: &[u8]) -> Result<Sealed, KeyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.contexts.lock().unwrap().push(c.clone());
        self.inner.seal(s, c, p).await
    }
    async fn open(&self, s: &SessionContext, sealed: &Sealed, c: &EncryptionContext) -> Result<Vec<u8>, KeyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.contexts.lock().unwrap().push(c.clone());
        self.inner.open(s, sealed, c).await
    }
    async fn pseudonym(&self, s: &SessionContext, v: &str) -> Result<String, KeyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.pseudonym(s, v).await
    }
}

/// The deterministic writer, counting calls and keeping the last request it was given.
#[derive(Default)]
pub struct CountingWriter {
    pub calls: AtomicUsize,
    pub last: Mutex<Option<WritingRequest>>,
    /// When set, the letter comes back as a Bedrock writer's fallback would: the deterministic sentences,
    /// with this guardrail action (`grounding_blocked`, `intervened`, `model_unavailable`).
    pub fallback: Mutex<Option<String>>,
}

impl ClinicalWriter for CountingWriter {
    async fn write(&self, s: &SessionContext, r: &WritingRequest) -> Result<Narrative, WriterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().unwrap() = Some(r.clone());
        let mut narrative = LocalWriter.write(s, r).await?;
        if let Some(action) = self.fallback.lock().unwrap().clone() {
            narrative.writer = "local-deterministic (fallback from test-model)".into();
            narrative.guardrail_action = Some(action);
        }
        Ok(narrative)
    }
}

pub type State = PriorAuth<HttpFhirStore, PolicyFiles, CountingWriter, MemoryDraftStore, CountingKeys>;
pub type Tool = Shell<(PriorAuthDraft<State>, PriorAuthFinalize<State>), MemoryAuditSink>;

pub struct Harness {
    pub fhir: FhirFake,
    pub tool: Tool,
    pub state: Arc<State>,
}

impl Harness {
    /// `general_practitioner`: the `Practitioner/<id>` the server reports as the patient's GP.
    pub async fn new(resources: Vec<Value>, general_practitioner: Option<&str>, as_of: time::Date) -> Self {
        let behaviour =
            FakeBehaviour { general_practitioner: general_practitioner.map(str::to_owned), ..FakeBehaviour::default() };
        let fhir = FhirFake::start(resources, behaviour).await;
        let base = fhir.base_url();
        let endpoint = fhir.endpoint().unwrap();
        let store = HttpFhirStore::new(reqwest::Client::new(), endpoint, Signing::None);
        let state = Arc::new(PriorAuth {
            store,
            knowledge: PolicyFiles::from_dir(std::path::Path::new(&format!("{SHARED}/payer-policies"))).unwrap(),
            writer: CountingWriter::default(),
            drafts: MemoryDraftStore::default(),
            keys: CountingKeys {
                inner: LocalKeys::generate().unwrap(),
                calls: AtomicUsize::new(0),
                contexts: Mutex::default(),
            },
            tenant: TENANT.into(),
            care_lookback_days: 730,
            fhir_base: base,
            as_of: Some(as_of),
        });
        let actions = (PriorAuthDraft(state.clone()), PriorAuthFinalize(state.clone()));
        let tool = Shell::for_tests(actions, MemoryAuditSink::default(), "prior-auth-draft-test", TENANT);
        Self { fhir, tool, state }
    }

    /// The FHIR requests seen: resource type and parameters (query or form body).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.fhir.requests().into_iter().map(|r| (r.resource_type, r.params)).collect()
    }

    /// The final audit record of each call (intent records left out).
    pub fn audit(&self) -> Vec<Value> {
        self.audit_all().into_iter().filter(|r| r["record_kind"] == "final").collect()
    }

    /// Every audit record, intent records included.
    pub fn audit_all(&self) -> Vec<Value> {
        self.tool.audit.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub fn key_calls(&self) -> usize {
        self.state.keys.calls.load(Ordering::SeqCst)
    }

    pub fn writer_calls(&self) -> usize {
        self.state.writer.calls.load(Ordering::SeqCst)
    }

    pub async fn call(&self, event: Value) -> Value {
        use shared::runtime::Handler;
        self.tool.call(invocation(&event)).await
    }
}

pub use shared::testing::invocation;

pub fn direct(tool: &str, token: &str, arguments: Value) -> Value {
    json!({"tool": tool, "session_id": SESSION, "identity_token": token, "arguments": arguments})
}
