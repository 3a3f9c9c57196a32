//! Per-session credentials: the tool's data-access role assumed with the agent session id as the role
//! session name and the verified caller as `SourceIdentity`.
//!
//! These credentials sign HealthLake FHIR requests only (the `Signing::SigV4PerSession` of the FHIR store):
//! the data-access roles hold HealthLake permissions and nothing else, so Bedrock (Converse, ApplyGuardrail),
//! the knowledge base (Retrieve, S3 GetObject of policies), KMS and Secrets Manager keep the function role.
//! CloudTrail names the session and the person on every HealthLake call made with them (`userIdentity.arn`
//! ends in `/<session name>`, `userIdentity.sessionContext.sourceIdentity` is the verified caller: "Monitor
//! and control actions taken with assumed roles" in the IAM guide).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use sha2::{Digest, Sha256};
use shared::fhir::{CredentialSource, FhirError};
use shared::session::SessionContext;
use tokio::sync::Mutex;
use tracing::{Instrument, info, info_span, warn};

use crate::{AwsError, CallPolicy, classify, error_code, restrict};

/// STS limits for role session names and source identities: 2–64 of `[\w+=,.@-]`.
const STS_NAME_MAX: usize = 64;
const STS_NAME_MIN: usize = 2;

/// Credentials are renewed this long before they expire, so a request never goes out with stale ones.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// Sessions kept at most; an instance serves one invocation at a time, so this is many agent sessions.
const CACHE_MAX: usize = 256;

fn sts_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// The role session name for a session id: the id itself when STS accepts it as is, otherwise its first
/// characters made safe plus a hash of the whole id, so distinct sessions never share a name.
pub fn role_session_name(session_id: &str) -> String {
    fits_sts(session_id).unwrap_or_else(|| hashed_sts_name(session_id))
}

/// The source identity for a verified caller, under the same rules as session names.
pub fn source_identity(subject: &str) -> String {
    fits_sts(subject).unwrap_or_else(|| hashed_sts_name(subject))
}

fn fits_sts(raw: &str) -> Option<String> {
    let ok = (STS_NAME_MIN..=STS_NAME_MAX).contains(&raw.len()) && raw.chars().all(sts_char);
    ok.then(|| raw.to_owned())
}

fn hashed_sts_name(raw: &str) -> String {
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let prefix = restrict(raw, STS_NAME_MAX - 17, sts_char);
    format!("{prefix}-{}", &digest[..16])
}

/// One assumed-role session.
#[derive(Clone)]
pub struct Assumed {
    pub credentials: Credentials,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session name>`.
    pub assumed_role_arn: String,
    pub expires: SystemTime,
}

impl fmt::Debug for Assumed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assumed").field("assumed_role_arn", &self.assumed_role_arn).finish_non_exhaustive()
    }
}

/// Assumes the data-access role per (session, caller) and caches the result until shortly before expiry.
pub struct SessionCredentials {
    client: aws_sdk_sts::Client,
    role_arn: String,
    duration: Duration,
    policy: CallPolicy,
    cache: Mutex<HashMap<(String, String), Assumed>>,
}

impl fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCredentials").field("role_arn", &self.role_arn).finish_non_exhaustive()
    }
}

impl SessionCredentials {
    pub fn new(client: aws_sdk_sts::Client, role_arn: impl Into<String>) -> Self {
        Self {
            client,
            role_arn: role_arn.into(),
            // STS's minimum; a Lambda invocation never needs more, and short-lived credentials leak less.
            duration: Duration::from_secs(900),
            policy: CallPolicy::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The credentials of this session, assumed now or taken from the cache.
    pub async fn assume(&self, session: &SessionContext) -> Result<Assumed, AwsError> {
        let caller = session.caller.as_deref().ok_or(AwsError::NoCaller)?;
        let key = (session.session_id.as_str().to_owned(), caller.to_owned());
        // Held across the STS call: one instance serves one invocation at a time, and concurrent requests of
        // the same session then share a single AssumeRole instead of racing.
        let mut cache = self.cache.lock().await;
        let now = SystemTime::now();
        if let Some(assumed) = cache.get(&key)
            && assumed.expires > now + RENEW_BEFORE
        {
            return Ok(assumed.clone());
        }
        let assumed = self.assume_role(session, caller).await?;
        cache.retain(|_, a| a.expires > now);
        if cache.len() >= CACHE_MAX
            && let Some(oldest) = cache.iter().min_by_key(|(_, a)| a.expires).map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(key, assumed.clone());
        Ok(assumed)
    }

    async fn assume_role(&self, session: &SessionContext, caller: &str) -> Result<Assumed, AwsError> {
        let span = info_span!("sts_assume_role", otel.kind = "client", session_id = %session.session_id);
        async {
            let config = aws_sdk_sts::config::Builder::default()
                .retry_config(self.policy.retry_config())
                .timeout_config(self.policy.timeout_config(session)?);
            let output = self
                .client
                .assume_role()
                .role_arn(&self.role_arn)
                .role_session_name(role_session_name(session.session_id.as_str()))
                .source_identity(source_identity(caller))
                .duration_seconds(i32::try_from(self.duration.as_secs()).unwrap_or(900))
                .customize()
                .config_override(config)
                .send()
                .await
                .map_err(|e| {
                    warn!(error = error_code(&e), "assume role failed");
                    AwsError::from(classify(&e))
                })?;
            let (Some(credentials), Some(user)) = (output.credentials, output.assumed_role_user) else {
                return Err(AwsError::Rejected);
            };
            let expires = SystemTime::try_from(credentials.expiration).map_err(|_| AwsError::Rejected)?;
            info!("session credentials assumed");
            Ok(Assumed {
                credentials: Credentials::new(
                    credentials.access_key_id,
                    credentials.secret_access_key,
                    Some(credentials.session_token),
                    Some(expires),
                    "sts-session",
                ),
                assumed_role_arn: user.arn,
                expires,
            })
        }
        .instrument(span)
        .await
    }
}

impl CredentialSource for SessionCredentials {
    fn credentials<'a>(
        &'a self,
        session: &'a SessionContext,
    ) -> Pin<Box<dyn Future<Output = Result<Credentials, FhirError>> + Send + 'a>> {
        Box::pin(async move {
            match self.assume(session).await {
                Ok(assumed) => Ok(assumed.credentials),
                Err(AwsError::Unavailable) => Err(FhirError::Unavailable),
                // No FHIR request goes out unsigned or under the wrong identity.
                Err(_) => Err(FhirError::Rejected(0)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules_and_stay_distinct() {
        assert_eq!(role_session_name("sess-abc.123"), "sess-abc.123");
        let colon = role_session_name("agentcore:sess:1");
        assert!(colon.starts_with("agentcore_sess_1-"), "{colon}");
        let long = "a".repeat(256);
        let (n1, n2) = (role_session_name(&long), role_session_name(&format!("{}b", &long[..255])));
        for name in [&colon, &n1, &n2] {
            assert!((2..=64).contains(&name.len()) && name.chars().all(sts_char), "{name}");
        }
        assert_ne!(n1, n2);
        assert_ne!(role_session_name("a:b"), role_session_name("a_b"));
        assert_eq!(source_identity("3f0c2a9e-1b2c-4d5e-8f90-123456789abc"), "3f0c2a9e-1b2c-4d5e-8f90-123456789abc");
        assert!(source_identity("dr alvarez").starts_with("dr_alvarez-"));
    }
}
