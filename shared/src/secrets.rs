//! The secrets port: named secrets (pseudonymisation key, payer API credentials) fetched by the tool.
//!
//! A [`SecretValue`] never prints itself: Debug and Display redact, so a secret cannot reach a log line or
//! an error by accident; code that needs the value calls [`SecretValue::expose`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use crate::error::ToolError;
use crate::session::SessionContext;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("the secret `{0}` is not configured")]
    NotFound(String),
    #[error("the secret store is unavailable")]
    Unavailable,
    /// The caller's role may not read the secret, or the secret cannot be decrypted.
    #[error("the secret store refused the request")]
    Rejected,
}

impl From<SecretsError> for ToolError {
    fn from(error: SecretsError) -> Self {
        match error {
            SecretsError::Unavailable => ToolError::UpstreamUnavailable,
            // A missing or unreadable secret is a deployment fault, not something the caller can retry.
            SecretsError::NotFound(_) | SecretsError::Rejected => ToolError::Internal,
        }
    }
}

pub trait Secrets: Send + Sync {
    fn get(
        &self,
        session: &SessionContext,
        name: &str,
    ) -> impl Future<Output = Result<SecretValue, SecretsError>> + Send;
}

/// Secrets from the environment, for the local stack: the secret `payer/acme-api` is read from
/// `SECRET_PAYER_ACME_API` (upper case, every character other than a letter or digit becomes `_`).
#[derive(Clone, Default)]
pub struct EnvSecrets {
    values: BTreeMap<String, SecretValue>,
}

impl fmt::Debug for EnvSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSecrets").field("names", &self.values.keys().collect::<Vec<_>>()).finish()
    }
}

impl EnvSecrets {
    /// Takes a snapshot of the `SECRET_*` variables of the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// Keeps the `SECRET_*` entries of `vars`; tests pass their own.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let values = vars
            .into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .map(|(key, value)| (key, SecretValue::new(value)))
            .collect();
        Self { values }
    }

    /// The environment variable a secret name maps to.
    pub fn variable(name: &str) -> String {
        let mangled: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        format!("{ENV_PREFIX}{mangled}")
    }
}

const ENV_PREFIX: &str = "SECRET_";

impl Secrets for EnvSecrets {
    async fn get(&self, _session: &SessionContext, name: &str) -> Result<SecretValue, SecretsError> {
        self.values.get(&Self::variable(name)).cloned().ok_or_else(|| SecretsError::NotFound(name.to_owned()))
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

    #[test]
    fn secret_values_never_print() {
        let value = SecretValue::new("hunter2-pseudonym-key");
        assert!(!format!("{value:?} {value}").contains("hunter2"));
        let store = EnvSecrets::from_vars([("SECRET_X".to_owned(), "hunter2".to_owned())]);
        assert!(!format!("{store:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn env_secrets_map_names_to_variables() {
        let store = EnvSecrets::from_vars([
            ("SECRET_PAYER_ACME_API".to_owned(), "k1".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ]);
        assert_eq!(store.get(&session(), "payer/acme-api").await.unwrap().expose(), "k1");
        assert_eq!(store.get(&session(), "path").await, Err(SecretsError::NotFound("path".into())));
    }
}
