//! Where drafts are kept between `draft` and `finalize`. The clinical content is sealed (`shared::keys`,
//! encryption context = tenant, patient, draft id); only what the finalize decision needs before any key
//! call (patient, status, whether criteria are unmet) stays in the clear beside it.
//!
//! On AWS drafts live in the FHIR store as `Binary` resources (`FhirDraftStore`): Lambda's `/tmp` belongs to one
//! instance, and a draft made on one must be finalizable on any other. The file store is for tests and offline use.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::fhir::{FhirError, FhirId, FhirStore};
use shared::keys::Sealed;
use shared::session::SessionContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    Draft,
    Final,
}

impl DraftStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Final => "final",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDraft {
    /// The id bound into the encryption context at sealing. With the file store it is also the handle callers
    /// use; the FHIR store hands out its own id (the `Binary` id) and keeps this one in a tag.
    pub id: String,
    pub tenant: String,
    /// The FHIR id of the patient, needed for the relationship check before anything is opened.
    pub patient: String,
    pub status: DraftStatus,
    pub unmet_criteria: bool,
    pub sealed: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the draft store is unavailable")]
    Unavailable,
    #[error("a stored draft could not be decoded")]
    Decode,
    /// Another request changed the draft between our read and our write (e.g. two concurrent finalizes).
    #[error("the draft was changed by another request")]
    Conflict,
    /// The store returned a draft without a version, so a later write could not be conditional: refused
    /// rather than risk a lost update.
    #[error("the draft store returned no version to update against")]
    Unversioned,
}

impl From<StoreError> for shared::ToolError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable => Self::UpstreamUnavailable,
            StoreError::Decode | StoreError::Unversioned => Self::Internal,
            StoreError::Conflict => Self::invalid("the draft was changed by another request; reload it"),
        }
    }
}

/// A draft as read, with the version a later `replace` must still find (optimistic concurrency). Every
/// store gives one: there is no update without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub draft: StoredDraft,
    pub version: String,
}

pub trait DraftStore: Send + Sync {
    /// Stores a new draft and returns the handle callers use to name it (`draft_id` in replies).
    fn create(
        &self,
        session: &SessionContext,
        draft: &StoredDraft,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    fn get(
        &self,
        session: &SessionContext,
        handle: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;
    /// Replaces a draft, only if it is still at `version` (else `Conflict`).
    fn replace(
        &self,
        session: &SessionContext,
        handle: &str,
        draft: &StoredDraft,
        version: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One JSON file per draft in a directory (the local stack; small files, so blocking I/O is fine). Ids are
/// checked by the caller before use.
#[derive(Debug, Clone)]
pub struct FileDraftStore {
    dir: PathBuf,
}

impl FileDraftStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
}

impl FileDraftStore {
    fn write(&self, draft: &StoredDraft) -> Result<(), StoreError> {
        let body = serde_json::to_vec(draft).map_err(|_| StoreError::Decode)?;
        std::fs::create_dir_all(&self.dir).map_err(|_| StoreError::Unavailable)?;
        // Write then rename, so a crash never leaves half a draft behind.
        let temp = self.dir.join(format!(".{}.tmp", draft.id));
        std::fs::write(&temp, body).map_err(|_| StoreError::Unavailable)?;
        std::fs::rename(&temp, self.path(&draft.id)).map_err(|_| StoreError::Unavailable)
    }

    fn read(&self, handle: &str) -> Result<Option<(StoredDraft, String)>, StoreError> {
        match std::fs::read(self.path(handle)) {
            Ok(body) => {
                let draft = serde_json::from_slice(&body).map_err(|_| StoreError::Decode)?;
                Ok(Some((draft, file_version(&body))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}

/// A file's version is the hash of its bytes: any change since the read is a conflict.
fn file_version(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

/// One process, one directory (the local stack, offline use): the version is checked by re-reading before
/// the rename, which is enough for one process; the FHIR store's `If-Match` is the real guard.
impl DraftStore for FileDraftStore {
    async fn create(&self, _session: &SessionContext, draft: &StoredDraft) -> Result<String, StoreError> {
        self.write(draft)?;
        Ok(draft.id.clone())
    }

    async fn get(&self, _session: &SessionContext, handle: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.read(handle)?.map(|(draft, version)| Versioned { draft, version }))
    }

    async fn replace(
        &self,
        _session: &SessionContext,
        handle: &str,
        draft: &StoredDraft,
        version: &str,
    ) -> Result<(), StoreError> {
        if handle != draft.id {
            return Err(StoreError::Decode);
        }
        match self.read(handle)? {
            Some((_, current)) if current == version => self.write(draft),
            _ => Err(StoreError::Conflict),
        }
    }
}

/// In memory, counting writes (the tests' proof that a denied call wrote nothing), with a version per
/// draft that every write bumps, as a FHIR server's `versionId`.
#[derive(Debug, Default)]
pub struct MemoryDraftStore {
    drafts: Mutex<HashMap<String, (StoredDraft, u64)>>,
    writes: AtomicUsize,
    reads: AtomicUsize,
}

impl MemoryDraftStore {
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self, id: &str) -> Option<StoredDraft> {
        self.drafts.lock().ok().and_then(|d| d.get(id).map(|(draft, _)| draft.clone()))
    }

    /// Overwrites a draft behind the tool's back, as whoever can update the `Binary` could (tests of what
    /// finalize does with a tampered draft). Bumps the version like any write.
    pub fn tamper(&self, id: &str, change: impl FnOnce(&mut StoredDraft)) {
        if let Ok(mut drafts) = self.drafts.lock()
            && let Some((draft, version)) = drafts.get_mut(id)
        {
            change(draft);
            *version += 1;
        }
    }
}

impl DraftStore for MemoryDraftStore {
    async fn create(&self, _session: &SessionContext, draft: &StoredDraft) -> Result<String, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut drafts = self.drafts.lock().map_err(|_| StoreError::Unavailable)?;
        drafts.insert(draft.id.clone(), (draft.clone(), 1));
        Ok(draft.id.clone())
    }

    async fn get(&self, _session: &SessionContext, handle: &str) -> Result<Option<Versioned>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let drafts = self.drafts.lock().map_err(|_| StoreError::Unavailable)?;
        Ok(drafts.get(handle).map(|(draft, version)| Versioned { draft: draft.clone(), version: version.to_string() }))
    }

    async fn replace(
        &self,
        _session: &SessionContext,
        handle: &str,
        draft: &StoredDraft,
        version: &str,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut drafts = self.drafts.lock().map_err(|_| StoreError::Unavailable)?;
        match drafts.get_mut(handle) {
            Some((stored, current)) if current.to_string() == version => {
                *stored = draft.clone();
                *current += 1;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}

/// Marks a `Binary` as a prior-auth draft (`meta.tag`), so it can be told from any other Binary.
pub const DRAFT_TAG_SYSTEM: &str = "urn:agent-tools:prior-auth-draft";
/// `meta.tag` systems for the clear metadata. Codes only: status, the unmet flag, the tenant (an organisation
/// id) and the seal id (random hex). None of them is PHI; the patient is named only by `securityContext`.
const STATUS_SYSTEM: &str = "urn:agent-tools:prior-auth-draft:status";
const UNMET_SYSTEM: &str = "urn:agent-tools:prior-auth-draft:unmet-criteria";
const TENANT_SYSTEM: &str = "urn:agent-tools:prior-auth-draft:tenant";
const SEAL_SYSTEM: &str = "urn:agent-tools:prior-auth-draft:seal-id";

/// Drafts as FHIR `Binary` resources in HealthLake (or the local FHIR server): `data` is the base64 of the
/// sealed JSON (ciphertext, never clear clinical content); `securityContext` references the Patient, so the
/// store's own access rules and the finalize relationship check have the patient without opening anything;
/// `meta.tag` carries status, unmet flag, tenant and seal id. Finalize replaces the Binary with `If-Match` on
/// the version it read, so of two concurrent finalizes only one can win.
#[derive(Debug, Clone)]
pub struct FhirDraftStore<S> {
    fhir: S,
}

impl<S: FhirStore> FhirDraftStore<S> {
    pub fn new(fhir: S) -> Self {
        Self { fhir }
    }
}

fn store_error(error: FhirError) -> StoreError {
    match error {
        FhirError::Conflict => StoreError::Conflict,
        FhirError::Decode => StoreError::Decode,
        FhirError::NotFound | FhirError::Rejected(_) | FhirError::Unavailable | FhirError::ForeignResource { .. } => {
            StoreError::Unavailable
        }
    }
}

/// The `Binary` a draft is stored as.
pub fn to_binary(draft: &StoredDraft) -> Result<Value, StoreError> {
    let sealed = serde_json::to_vec(&draft.sealed).map_err(|_| StoreError::Decode)?;
    let status = draft.status.as_str();
    Ok(json!({
        "resourceType": "Binary",
        "meta": {"tag": [
            {"system": DRAFT_TAG_SYSTEM, "code": "prior-auth-draft"},
            {"system": STATUS_SYSTEM, "code": status},
            {"system": UNMET_SYSTEM, "code": if draft.unmet_criteria { "true" } else { "false" }},
            {"system": TENANT_SYSTEM, "code": draft.tenant},
            {"system": SEAL_SYSTEM, "code": draft.id},
        ]},
        "contentType": "application/octet-stream",
        "securityContext": {"reference": format!("Patient/{}", draft.patient)},
        "data": B64.encode(sealed),
    }))
}

/// A `Binary` back into a draft; anything not written by `to_binary` is a decode error, not a draft.
pub fn from_binary(binary: &Value) -> Result<StoredDraft, StoreError> {
    let tags = binary.pointer("/meta/tag").and_then(Value::as_array).ok_or(StoreError::Decode)?;
    let tag = |system: &str| {
        tags.iter()
            .find(|t| t.get("system").and_then(Value::as_str) == Some(system))
            .and_then(|t| t.get("code").and_then(Value::as_str))
            .ok_or(StoreError::Decode)
    };
    if tag(DRAFT_TAG_SYSTEM)? != "prior-auth-draft" {
        return Err(StoreError::Decode);
    }
    let status = match tag(STATUS_SYSTEM)? {
        "draft" => DraftStatus::Draft,
        "final" => DraftStatus::Final,
        _ => return Err(StoreError::Decode),
    };
    let unmet_criteria = match tag(UNMET_SYSTEM)? {
        "true" => true,
        "false" => false,
        _ => return Err(StoreError::Decode),
    };
    let patient = binary
        .pointer("/securityContext/reference")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Patient/"))
        .ok_or(StoreError::Decode)?;
    let data = binary.get("data").and_then(Value::as_str).ok_or(StoreError::Decode)?;
    let sealed = B64.decode(data).map_err(|_| StoreError::Decode)?;
    let sealed: Sealed = serde_json::from_slice(&sealed).map_err(|_| StoreError::Decode)?;
    Ok(StoredDraft {
        id: tag(SEAL_SYSTEM)?.to_owned(),
        tenant: tag(TENANT_SYSTEM)?.to_owned(),
        patient: patient.to_owned(),
        status,
        unmet_criteria,
        sealed,
    })
}

impl<S: FhirStore> DraftStore for FhirDraftStore<S> {
    async fn create(&self, session: &SessionContext, draft: &StoredDraft) -> Result<String, StoreError> {
        let binary = to_binary(draft)?;
        let written = self.fhir.create(session, "Binary", &binary).await.map_err(store_error)?;
        Ok(written.id.as_str().to_owned())
    }

    async fn get(&self, session: &SessionContext, handle: &str) -> Result<Option<Versioned>, StoreError> {
        let Ok(id) = FhirId::parse(handle) else { return Ok(None) };
        let (binary, version) = match self.fhir.read(session, "Binary", &id).await {
            Ok(found) => found,
            Err(FhirError::NotFound) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        // Some other Binary under this id is not a draft: as far as the caller can tell, no such draft.
        let Ok(draft) = from_binary(&binary) else { return Ok(None) };
        // The update is conditional on the version read (HealthLake guide, "Idempotency and Concurrency":
        // `If-Match` on the version); a read that carries no version cannot be updated safely.
        let Some(version) = version else {
            tracing::error!(
                "the FHIR store returned a draft without a version; refusing to update it without If-Match"
            );
            return Err(StoreError::Unversioned);
        };
        Ok(Some(Versioned { draft, version }))
    }

    async fn replace(
        &self,
        session: &SessionContext,
        handle: &str,
        draft: &StoredDraft,
        version: &str,
    ) -> Result<(), StoreError> {
        let id = FhirId::parse(handle).map_err(|_| StoreError::Decode)?;
        let mut binary = to_binary(draft)?;
        binary["id"] = json!(id.as_str());
        // A delete between read and write surfaces as not found: the draft is gone, which is a conflict.
        match self.fhir.update(session, "Binary", &id, &binary, Some(version)).await {
            Ok(_) => Ok(()),
            Err(FhirError::NotFound) => Err(StoreError::Conflict),
            Err(e) => Err(store_error(e)),
        }
    }
}

/// The store chosen at start-up (`DRAFT_STORE`): the FHIR store by default, the file store for offline use.
#[derive(Debug, Clone)]
pub enum ConfiguredDraftStore<S> {
    Fhir(FhirDraftStore<S>),
    File(FileDraftStore),
}

impl<S: FhirStore> DraftStore for ConfiguredDraftStore<S> {
    async fn create(&self, session: &SessionContext, draft: &StoredDraft) -> Result<String, StoreError> {
        match self {
            Self::Fhir(store) => store.create(session, draft).await,
            Self::File(store) => store.create(session, draft).await,
        }
    }

    async fn get(&self, session: &SessionContext, handle: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            Self::Fhir(store) => store.get(session, handle).await,
            Self::File(store) => store.get(session, handle).await,
        }
    }

    async fn replace(
        &self,
        session: &SessionContext,
        handle: &str,
        draft: &StoredDraft,
        version: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Fhir(store) => store.replace(session, handle, draft, version).await,
            Self::File(store) => store.replace(session, handle, draft, version).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use shared::session::SessionId;

    use super::*;

    fn session() -> SessionContext {
        SessionContext::new(SessionId::parse("sess-1").unwrap(), "req-1", Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn binary_round_trips_a_draft_and_keeps_only_ids_and_flags_in_the_clear() {
        let stored = draft("0123456789abcdef0123456789abcdef", DraftStatus::Final);
        let binary = to_binary(&stored).unwrap();
        assert_eq!(binary["securityContext"]["reference"], "Patient/p");
        assert_eq!(binary["contentType"], "application/octet-stream");
        assert!(binary.to_string().contains("\"code\":\"final\""));
        assert_eq!(from_binary(&binary).unwrap(), stored);
    }

    #[test]
    fn a_binary_that_is_not_a_draft_does_not_decode() {
        let other = json!({"resourceType": "Binary", "contentType": "application/pdf", "data": "AAEC"});
        assert_eq!(from_binary(&other), Err(StoreError::Decode));
        let mut tampered = to_binary(&draft("ab", DraftStatus::Draft)).unwrap();
        tampered["meta"]["tag"][1]["code"] = json!("approved");
        assert_eq!(from_binary(&tampered), Err(StoreError::Decode));
    }

    fn draft(id: &str, status: DraftStatus) -> StoredDraft {
        let sealed =
            Sealed { key_id: "local".into(), wrapped_key: vec![1, 2], nonce: vec![3], ciphertext: vec![4, 5, 6] };
        StoredDraft { id: id.into(), tenant: "t".into(), patient: "p".into(), status, unmet_criteria: true, sealed }
    }

    #[tokio::test]
    async fn file_store_round_trips_and_overwrites_a_draft() {
        let dir = std::env::temp_dir().join(format!("draft-store-test-{}", std::process::id()));
        let store = FileDraftStore::new(&dir);
        let s = session();
        assert_eq!(store.get(&s, "0123456789abcdef0123456789abcdef").await.unwrap(), None);
        let first = draft("0123456789abcdef0123456789abcdef", DraftStatus::Draft);
        let handle = store.create(&s, &first).await.unwrap();
        assert_eq!(handle, first.id);
        assert_eq!(store.get(&s, &handle).await.unwrap().map(|v| v.draft), Some(first.clone()));
        let version = store.get(&s, &handle).await.unwrap().unwrap().version;
        let finalised = StoredDraft { status: DraftStatus::Final, ..first.clone() };
        store.replace(&s, &handle, &finalised, &version).await.unwrap();
        assert_eq!(store.get(&s, &handle).await.unwrap().map(|v| v.draft.status), Some(DraftStatus::Final));
        // The version read before that write is stale now: a second writer with it loses.
        assert_eq!(store.replace(&s, &handle, &first, &version).await, Err(StoreError::Conflict));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
