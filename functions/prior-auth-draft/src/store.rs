//! Where drafts are kept between `draft` and `finalize`. The clinical content is sealed (`shared::keys`,
//! encryption context = tenant, patient, draft id); only what the finalize decision needs before any key
//! call (patient, status, whether criteria are unmet) stays in the clear beside it.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use shared::keys::Sealed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftStatus {
    Draft,
    Final,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDraft {
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
}

impl From<StoreError> for shared::ToolError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable => Self::UpstreamUnavailable,
            StoreError::Decode => Self::Internal,
        }
    }
}

pub trait DraftStore: Send + Sync {
    fn put(&self, draft: &StoredDraft) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<StoredDraft>, StoreError>> + Send;
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

impl DraftStore for FileDraftStore {
    async fn put(&self, draft: &StoredDraft) -> Result<(), StoreError> {
        let body = serde_json::to_vec(draft).map_err(|_| StoreError::Decode)?;
        std::fs::create_dir_all(&self.dir).map_err(|_| StoreError::Unavailable)?;
        // Write then rename, so a crash never leaves half a draft behind.
        let temp = self.dir.join(format!(".{}.tmp", draft.id));
        std::fs::write(&temp, body).map_err(|_| StoreError::Unavailable)?;
        std::fs::rename(&temp, self.path(&draft.id)).map_err(|_| StoreError::Unavailable)
    }

    async fn get(&self, id: &str) -> Result<Option<StoredDraft>, StoreError> {
        match std::fs::read(self.path(id)) {
            Ok(body) => serde_json::from_slice(&body).map(Some).map_err(|_| StoreError::Decode),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}

/// In memory, counting writes: the tests' proof that a denied call wrote nothing.
#[derive(Debug, Default)]
pub struct MemoryDraftStore {
    drafts: Mutex<HashMap<String, StoredDraft>>,
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
        self.drafts.lock().ok().and_then(|d| d.get(id).cloned())
    }
}

impl DraftStore for MemoryDraftStore {
    async fn put(&self, draft: &StoredDraft) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut drafts = self.drafts.lock().map_err(|_| StoreError::Unavailable)?;
        drafts.insert(draft.id.clone(), draft.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredDraft>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let drafts = self.drafts.lock().map_err(|_| StoreError::Unavailable)?;
        Ok(drafts.get(id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(id: &str, status: DraftStatus) -> StoredDraft {
        let sealed =
            Sealed { key_id: "local".into(), wrapped_key: vec![1, 2], nonce: vec![3], ciphertext: vec![4, 5, 6] };
        StoredDraft { id: id.into(), tenant: "t".into(), patient: "p".into(), status, unmet_criteria: true, sealed }
    }

    #[tokio::test]
    async fn file_store_round_trips_and_overwrites_a_draft() {
        let dir = std::env::temp_dir().join(format!("draft-store-test-{}", std::process::id()));
        let store = FileDraftStore::new(&dir);
        assert_eq!(store.get("0123456789abcdef0123456789abcdef").await.unwrap(), None);
        let first = draft("0123456789abcdef0123456789abcdef", DraftStatus::Draft);
        store.put(&first).await.unwrap();
        assert_eq!(store.get(&first.id).await.unwrap(), Some(first.clone()));
        let finalised = StoredDraft { status: DraftStatus::Final, ..first.clone() };
        store.put(&finalised).await.unwrap();
        assert_eq!(store.get(&first.id).await.unwrap().map(|d| d.status), Some(DraftStatus::Final));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
