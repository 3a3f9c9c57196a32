//! The checkpoint MAC port: a keyed tag over an instance's chain head, so that a chain rebuilt from zero by
//! someone who can write log lines (but cannot use the key) does not verify.
//!
//! On AWS the adapter is KMS `GenerateMac` / `VerifyMac` with the HMAC_256 key the functions already use
//! for pseudonyms (`shared-aws`); at home it is HMAC-SHA256 under a local key ([`LocalChainMac`]). The key
//! never leaves KMS, so only a principal allowed `kms:GenerateMac` can make a checkpoint.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("the mac key service is unavailable")]
    Unavailable,
    #[error("the mac key service rejected the request")]
    Rejected,
    #[error("the mac key is not a 256-bit key")]
    BadKey,
}

pub type MacFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, MacError>> + Send + 'a>>;
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, MacError>> + Send + 'a>>;

/// Dyn-compatible so one sink type serves both the KMS and the local key.
pub trait ChainMac: Send + Sync {
    /// Recorded in each checkpoint's `mac_key_id` and bound into its MAC.
    fn key_id(&self) -> &str;
    fn mac<'a>(&'a self, message: &'a [u8]) -> MacFuture<'a>;
    /// `Ok(false)` for a tag that does not match; `Err` only when the check could not be made.
    fn verify<'a>(&'a self, message: &'a [u8], tag: &'a [u8]) -> VerifyFuture<'a>;
}

/// What a checkpoint's MAC covers: the instance, the checkpoint's own position and time, the chain head it
/// anchors and the key id, so a tag cannot be moved to another instance, position or key.
pub fn checkpoint_message(instance_id: &str, seq: u64, timestamp: &str, chain_head: &str, key_id: &str) -> Vec<u8> {
    format!("clinical-agent/audit-checkpoint/v2\n{instance_id}\n{seq}\n{timestamp}\n{chain_head}\n{key_id}")
        .into_bytes()
}

/// HMAC-SHA256 under a 256-bit key held in memory (local stack, tests, `audit verify --key-file`).
pub struct LocalChainMac {
    key: Zeroizing<Vec<u8>>,
    key_id: String,
}

impl fmt::Debug for LocalChainMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalChainMac").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl LocalChainMac {
    pub fn from_bytes(key: &[u8]) -> Result<Self, MacError> {
        if key.len() != 32 {
            return Err(MacError::BadKey);
        }
        // The fingerprint names the key without revealing it, so a verifier holding several keys picks the
        // right one and a checkpoint made under another key is reported, not silently accepted.
        let fingerprint = Sha256::digest([b"clinical-agent/audit-key-id/v1".as_slice(), key].concat());
        let key_id = format!("local:{}", hex::encode(&fingerprint[..8]));
        Ok(Self { key: Zeroizing::new(key.to_vec()), key_id })
    }

    /// A key given as 64 hex digits (the content of the local key file).
    pub fn from_hex(text: &str) -> Result<Self, MacError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| MacError::BadKey)?);
        Self::from_bytes(&bytes)
    }

    /// `AUDIT_MAC_KEY` (64 hex digits) or the file named by `AUDIT_MAC_KEY_FILE`, from the settings lookup;
    /// `None` when neither is set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, MacError> {
        if let Some(hex_key) = get("AUDIT_MAC_KEY").filter(|v| !v.trim().is_empty()) {
            return Self::from_hex(&hex_key).map(Some);
        }
        match get("AUDIT_MAC_KEY_FILE").filter(|v| !v.trim().is_empty()) {
            Some(path) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|_| MacError::BadKey)?);
                Self::from_hex(&text).map(Some)
            }
            None => Ok(None),
        }
    }

    fn tag(&self, message: &[u8]) -> Result<Hmac<Sha256>, MacError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).map_err(|_| MacError::BadKey)?;
        mac.update(message);
        Ok(mac)
    }
}

impl ChainMac for LocalChainMac {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn mac<'a>(&'a self, message: &'a [u8]) -> MacFuture<'a> {
        let result = self.tag(message).map(|m| m.finalize().into_bytes().to_vec());
        Box::pin(async move { result })
    }

    fn verify<'a>(&'a self, message: &'a [u8], tag: &'a [u8]) -> VerifyFuture<'a> {
        // verify_slice compares in constant time.
        let result = self.tag(message).map(|m| m.verify_slice(tag).is_ok());
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_tags_verify_only_under_the_same_key_and_message() {
        let a = LocalChainMac::from_bytes(&[1u8; 32]).unwrap();
        let b = LocalChainMac::from_hex(&"02".repeat(32)).unwrap();
        let message = checkpoint_message("i", 3, "t", "h", a.key_id());
        let tag = a.mac(&message).await.unwrap();
        assert_eq!(tag.len(), 32);
        assert!(a.verify(&message, &tag).await.unwrap());
        assert!(!b.verify(&message, &tag).await.unwrap());
        let moved = checkpoint_message("i", 4, "t", "h", a.key_id());
        assert!(!a.verify(&moved, &tag).await.unwrap());
        assert_ne!(a.key_id(), b.key_id());
        assert!(LocalChainMac::from_hex("abcd").is_err());
    }
}
