//! The keys port on KMS: envelope encryption under a customer-managed key (GenerateDataKey + AES-256-GCM,
//! Decrypt with the same encryption context) and HMAC pseudonyms (GenerateMac on an HMAC key).
//!
//! KMS calls carry no session id; CloudTrail records each with its encryption context (tenant, patient
//! pseudonym, draft id) and, with per-session credentials, the role session name.

use std::fmt;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{DataKeySpec, MacAlgorithmSpec};
use aws_smithy_types::Blob;
use shared::keys::{EncryptionContext, KeyError, Keys, Sealed, open_with_data_key, seal_with_data_key};
use shared::session::SessionContext;
use tracing::{Instrument, info_span, warn};
use zeroize::Zeroizing;

use crate::{CallPolicy, Upstream, classify, error_code};

pub struct KmsKeys {
    client: Client,
    key_id: String,
    mac_key_id: Option<String>,
    policy: CallPolicy,
}

impl fmt::Debug for KmsKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKeys").field("key_id", &self.key_id).field("mac_key_id", &self.mac_key_id).finish()
    }
}

impl KmsKeys {
    /// `key_id`: the symmetric encryption CMK (id, ARN or alias); `mac_key_id`: an HMAC_256 key for
    /// pseudonyms, if pseudonyms are wanted.
    pub fn new(client: Client, key_id: impl Into<String>, mac_key_id: Option<String>) -> Self {
        Self { client, key_id: key_id.into(), mac_key_id, policy: CallPolicy::default() }
    }

    /// Whether an HMAC key for pseudonyms was configured.
    pub fn has_mac_key(&self) -> bool {
        self.mac_key_id.is_some()
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn call_config(&self, session: &SessionContext) -> Result<aws_sdk_kms::config::Builder, KeyError> {
        Ok(aws_sdk_kms::config::Builder::default()
            .retry_config(self.policy.retry_config())
            .timeout_config(self.policy.timeout_config(session).map_err(key_error)?))
    }
}

fn key_error(upstream: Upstream) -> KeyError {
    match upstream {
        Upstream::Unavailable => KeyError::Unavailable,
        Upstream::Rejected => KeyError::Rejected,
    }
}

impl Keys for KmsKeys {
    async fn seal(
        &self,
        session: &SessionContext,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Sealed, KeyError> {
        let span = info_span!("kms_generate_data_key", otel.kind = "client", session_id = %session.session_id);
        async {
            let output = self
                .client
                .generate_data_key()
                .key_id(&self.key_id)
                .key_spec(DataKeySpec::Aes256)
                .set_encryption_context(Some(context.pairs().clone().into_iter().collect()))
                .customize()
                .config_override(self.call_config(session)?)
                .send()
                .await
                .map_err(|e| {
                    warn!(error = error_code(&e), "generate data key failed");
                    key_error(classify(&e))
                })?;
            let (Some(data_key), Some(wrapped)) = (output.plaintext, output.ciphertext_blob) else {
                return Err(KeyError::Rejected);
            };
            let data_key = Zeroizing::new(data_key.into_inner());
            // The ARN KMS answers with, so that Decrypt can insist on the same key.
            let key_id = output.key_id.unwrap_or_else(|| self.key_id.clone());
            seal_with_data_key(key_id, wrapped.into_inner(), &data_key, context, plaintext)
        }
        .instrument(span)
        .await
    }

    async fn open(
        &self,
        session: &SessionContext,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        let span = info_span!("kms_decrypt", otel.kind = "client", session_id = %session.session_id);
        async {
            let output = self
                .client
                .decrypt()
                .key_id(&sealed.key_id)
                .ciphertext_blob(Blob::new(sealed.wrapped_key.clone()))
                .set_encryption_context(Some(context.pairs().clone().into_iter().collect()))
                .customize()
                .config_override(self.call_config(session)?)
                .send()
                .await
                .map_err(|e| {
                    warn!(error = error_code(&e), "decrypt failed");
                    match classify(&e) {
                        Upstream::Unavailable => KeyError::Unavailable,
                        // Wrong context, wrong key or tampered blob: KMS says InvalidCiphertext / IncorrectKey.
                        Upstream::Rejected => KeyError::Integrity,
                    }
                })?;
            let data_key = Zeroizing::new(output.plaintext.ok_or(KeyError::Integrity)?.into_inner());
            open_with_data_key(&data_key, sealed, context)
        }
        .instrument(span)
        .await
    }

    async fn pseudonym(&self, session: &SessionContext, value: &str) -> Result<String, KeyError> {
        let mac_key_id = self.mac_key_id.as_deref().ok_or(KeyError::Rejected)?;
        let span = info_span!("kms_generate_mac", otel.kind = "client", session_id = %session.session_id);
        async {
            let output = self
                .client
                .generate_mac()
                .key_id(mac_key_id)
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .message(Blob::new(value.as_bytes()))
                .customize()
                .config_override(self.call_config(session)?)
                .send()
                .await
                .map_err(|e| {
                    warn!(error = error_code(&e), "generate mac failed");
                    key_error(classify(&e))
                })?;
            let mac = output.mac.ok_or(KeyError::Rejected)?;
            Ok(hex::encode(mac.as_ref()))
        }
        .instrument(span)
        .await
    }
}

/// The audit checkpoint MAC on KMS: `GenerateMac` / `VerifyMac` (HMAC_SHA_256) with the HMAC key the
/// functions already hold for pseudonyms. The key never leaves KMS ("HMAC keys in AWS KMS", KMS developer
/// guide), so a chain rebuilt by someone who can only write logs has no valid checkpoint.
///
/// Checkpoints are written between invocations or near a deadline, so each call is bounded by a fixed
/// timeout of its own rather than by a session's deadline; one retry at most.
pub struct KmsChainMac {
    client: Client,
    key_id: String,
    timeout: std::time::Duration,
}

impl fmt::Debug for KmsChainMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsChainMac").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl KmsChainMac {
    /// `key_id` as recorded in each checkpoint's `mac_key_id`: pass the key ARN, so the verifier can call
    /// `VerifyMac` on it from another account or region.
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into(), timeout: std::time::Duration::from_millis(800) }
    }

    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn call_config(&self) -> aws_sdk_kms::config::Builder {
        aws_sdk_kms::config::Builder::default()
            .retry_config(
                aws_smithy_types::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(std::time::Duration::from_millis(50)),
            )
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .operation_timeout(self.timeout)
                    .connect_timeout(self.timeout)
                    .build(),
            )
    }
}

fn mac_error(upstream: Upstream) -> shared::audit::MacError {
    match upstream {
        Upstream::Unavailable => shared::audit::MacError::Unavailable,
        Upstream::Rejected => shared::audit::MacError::Rejected,
    }
}

impl shared::audit::ChainMac for KmsChainMac {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn mac<'a>(&'a self, message: &'a [u8]) -> shared::audit::mac::MacFuture<'a> {
        Box::pin(
            async move {
                let output = self
                    .client
                    .generate_mac()
                    .key_id(&self.key_id)
                    .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                    .message(Blob::new(message))
                    .customize()
                    .config_override(self.call_config())
                    .send()
                    .await
                    .map_err(|e| {
                        warn!(error = error_code(&e), "audit checkpoint generate mac failed");
                        mac_error(classify(&e))
                    })?;
                output.mac.map(Blob::into_inner).ok_or(shared::audit::MacError::Rejected)
            }
            .instrument(info_span!("kms_generate_mac_checkpoint", otel.kind = "client")),
        )
    }

    fn verify<'a>(&'a self, message: &'a [u8], tag: &'a [u8]) -> shared::audit::mac::VerifyFuture<'a> {
        Box::pin(async move {
            let result = self
                .client
                .verify_mac()
                .key_id(&self.key_id)
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .message(Blob::new(message))
                .mac(Blob::new(tag))
                .customize()
                .config_override(self.call_config())
                .send()
                .await;
            match result {
                Ok(output) => Ok(output.mac_valid),
                // KMS answers a wrong tag with KMSInvalidMacException rather than `MacValid: false`
                // (VerifyMac, AWS KMS API Reference).
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(aws_sdk_kms::operation::verify_mac::VerifyMacError::KmsInvalidMacException(_))
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => {
                    warn!(error = error_code(&e), "audit checkpoint verify mac failed");
                    Err(mac_error(classify(&e)))
                }
            }
        })
    }
}
