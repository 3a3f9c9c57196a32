//! The keys port: envelope encryption of what we store (drafts) and keyed pseudonyms for audit records.
//!
//! Sealing generates a fresh 256-bit data key per object, encrypts the object with AES-256-GCM under it and
//! keeps only the data key wrapped by a master key (a KMS customer-managed key in AWS, a local key at home).
//! The encryption context is bound twice: by the master key when the data key is unwrapped (KMS refuses a
//! different context) and as AES-GCM associated data, so an object moved to another draft or patient does
//! not open.
//!
//! KMS writes the encryption context to CloudTrail in clear text: build it from ids that are not PHI. For
//! the patient, pass the [`Keys::pseudonym`] of the FHIR id rather than the id itself.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::ToolError;
use crate::session::SessionContext;

/// Key/value pairs bound to a sealed object; opening needs exactly the same pairs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new(pairs: BTreeMap<String, String>) -> Self {
        Self(pairs)
    }

    /// The context of a stored draft (coding proposal, prior-auth request). `patient` is the patient's keyed
    /// pseudonym ([`Keys::pseudonym`]), never the FHIR id: CloudTrail records the context of every KMS call
    /// in clear.
    pub fn draft(tenant: &str, patient: &str, draft_id: &str) -> Self {
        Self(BTreeMap::from([
            ("tenant".to_owned(), tenant.to_owned()),
            ("patient".to_owned(), patient.to_owned()),
            ("draft_id".to_owned(), draft_id.to_owned()),
        ]))
    }

    /// The same context with one more pair (e.g. a draft's status), bound like the others: opening under a
    /// different value fails.
    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// A canonical byte form (sorted keys, JSON) used as AES-GCM associated data.
    pub fn aad(&self) -> Vec<u8> {
        // A map of strings always serialises; the default is never reached.
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}

/// A sealed object, as stored: JSON with the binary fields in base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The master key that wrapped the data key (a KMS key ARN, or `local`).
    pub key_id: String,
    #[serde(with = "b64")]
    pub wrapped_key: Vec<u8>,
    #[serde(with = "b64")]
    pub nonce: Vec<u8>,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    // Ciphertext is not secret, but it is bulky and useless in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).field("len", &self.ciphertext.len()).finish()
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key service is unavailable")]
    Unavailable,
    /// Wrong encryption context, tampered ciphertext or a key we may not use: the object does not open.
    #[error("the sealed object could not be opened")]
    Integrity,
    #[error("the key service rejected the request")]
    Rejected,
}

impl From<KeyError> for ToolError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Unavailable => ToolError::UpstreamUnavailable,
            KeyError::Integrity | KeyError::Rejected => ToolError::Internal,
        }
    }
}

pub trait Keys: Send + Sync {
    fn seal(
        &self,
        session: &SessionContext,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Sealed, KeyError>> + Send;

    fn open(
        &self,
        session: &SessionContext,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> impl Future<Output = Result<Vec<u8>, KeyError>> + Send;

    /// A stable keyed pseudonym of `value` (hex HMAC-SHA256): the same patient gives the same token, and
    /// the token says nothing without the key.
    fn pseudonym(&self, session: &SessionContext, value: &str)
    -> impl Future<Output = Result<String, KeyError>> + Send;
}

/// A fresh random 256-bit data key, wiped from memory when dropped.
pub fn generate_data_key() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(Aes256Gcm::generate_key(&mut OsRng).to_vec())
}

/// Encrypts `plaintext` under a plaintext data key with the context as associated data; the adapter
/// supplies the key id and the wrapped form of the same data key.
pub fn seal_with_data_key(
    key_id: String,
    wrapped_key: Vec<u8>,
    data_key: &[u8],
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Sealed, KeyError> {
    let (nonce, ciphertext) = gcm_seal(data_key, &context.aad(), plaintext)?;
    Ok(Sealed { key_id, wrapped_key, nonce, ciphertext })
}

/// Decrypts with the unwrapped data key; any mismatch of key, nonce, ciphertext or context fails.
pub fn open_with_data_key(data_key: &[u8], sealed: &Sealed, context: &EncryptionContext) -> Result<Vec<u8>, KeyError> {
    gcm_open(data_key, &sealed.nonce, &context.aad(), &sealed.ciphertext)
}

fn gcm_seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::Rejected)?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher.encrypt(&nonce, Payload { msg: plaintext, aad }).map_err(|_| KeyError::Rejected)?;
    Ok((nonce.to_vec(), ciphertext))
}

fn gcm_open(key: &[u8], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::Integrity)?;
    if nonce.len() != NONCE_LEN {
        return Err(KeyError::Integrity);
    }
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).map_err(|_| KeyError::Integrity)
}

const NONCE_LEN: usize = 12;

/// Keys for the local stack and tests: a 256-bit master key held in memory wraps each data key with
/// AES-256-GCM (context as associated data), and a key derived from it makes HMAC-SHA256 pseudonyms.
#[derive(Clone)]
pub struct LocalKeys {
    master: Zeroizing<Vec<u8>>,
    pseudonym_key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKeys(<redacted>)")
    }
}

/// The key id recorded in objects sealed by [`LocalKeys`].
pub const LOCAL_KEY_ID: &str = "local";

impl LocalKeys {
    /// A master key given as 64 hex digits (e.g. from `LOCAL_MASTER_KEY`).
    pub fn from_hex(hex_key: &str) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(hex::decode(hex_key.trim()).map_err(|_| KeyError::Rejected)?);
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(master: &[u8]) -> Result<Self, KeyError> {
        if master.len() != 32 {
            return Err(KeyError::Rejected);
        }
        // A separate key for pseudonyms, so a pseudonym never equals anything computed with the master key.
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(master).map_err(|_| KeyError::Rejected)?;
        derive.update(b"clinical-agent/pseudonym/v1");
        let pseudonym_key = Zeroizing::new(derive.finalize().into_bytes().to_vec());
        Ok(Self { master: Zeroizing::new(master.to_vec()), pseudonym_key })
    }

    /// A fresh random master key: objects sealed with it do not outlive the process.
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_bytes(&generate_data_key())
    }
}

impl Keys for LocalKeys {
    async fn seal(
        &self,
        _session: &SessionContext,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Sealed, KeyError> {
        let data_key = generate_data_key();
        let (wrap_nonce, wrapped) = gcm_seal(&self.master, &context.aad(), &data_key)?;
        let wrapped_key = [wrap_nonce, wrapped].concat();
        seal_with_data_key(LOCAL_KEY_ID.to_owned(), wrapped_key, &data_key, context, plaintext)
    }

    async fn open(
        &self,
        _session: &SessionContext,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        if sealed.key_id != LOCAL_KEY_ID || sealed.wrapped_key.len() < NONCE_LEN {
            return Err(KeyError::Integrity);
        }
        let (wrap_nonce, wrapped) = sealed.wrapped_key.split_at(NONCE_LEN);
        let data_key = Zeroizing::new(gcm_open(&self.master, wrap_nonce, &context.aad(), wrapped)?);
        open_with_data_key(&data_key, sealed, context)
    }

    async fn pseudonym(&self, _session: &SessionContext, value: &str) -> Result<String, KeyError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pseudonym_key).map_err(|_| KeyError::Rejected)?;
        mac.update(value.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::session::SessionId;

    fn session() -> SessionContext {
        SessionContext::new(SessionId::parse("s-1").unwrap(), "r", Instant::now() + Duration::from_secs(5))
    }

    #[tokio::test]
    async fn round_trip_through_json() {
        let keys = LocalKeys::generate().unwrap();
        let ctx = EncryptionContext::draft("org-1", "pn-abc", "draft-9");
        let sealed = keys.seal(&session(), &ctx, b"prior auth letter").await.unwrap();
        assert!(!sealed.ciphertext.windows(5).any(|w| w == b"prior"));
        let stored: Sealed = serde_json::from_str(&serde_json::to_string(&sealed).unwrap()).unwrap();
        assert_eq!(keys.open(&session(), &stored, &ctx).await.unwrap(), b"prior auth letter");
    }

    #[tokio::test]
    async fn another_context_or_key_does_not_open() {
        let keys = LocalKeys::generate().unwrap();
        let ctx = EncryptionContext::draft("org-1", "pn-abc", "draft-9");
        let sealed = keys.seal(&session(), &ctx, b"x").await.unwrap();
        let moved = EncryptionContext::draft("org-1", "pn-abc", "draft-10");
        assert_eq!(keys.open(&session(), &sealed, &moved).await, Err(KeyError::Integrity));
        assert_eq!(LocalKeys::generate().unwrap().open(&session(), &sealed, &ctx).await, Err(KeyError::Integrity));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(keys.open(&session(), &tampered, &ctx).await, Err(KeyError::Integrity));
    }

    #[tokio::test]
    async fn pseudonyms_are_stable_per_key_and_hide_the_value() {
        let hex_key = "11".repeat(32);
        let a = LocalKeys::from_hex(&hex_key).unwrap();
        let b = LocalKeys::from_hex(&hex_key).unwrap();
        let p = a.pseudonym(&session(), "patient-123").await.unwrap();
        assert_eq!(p, b.pseudonym(&session(), "patient-123").await.unwrap());
        assert_ne!(p, a.pseudonym(&session(), "patient-124").await.unwrap());
        assert_ne!(p, LocalKeys::generate().unwrap().pseudonym(&session(), "patient-123").await.unwrap());
        assert_eq!(p.len(), 64);
        assert!(!p.contains("123"));
        assert!(LocalKeys::from_hex("abcd").is_err());
    }
}
