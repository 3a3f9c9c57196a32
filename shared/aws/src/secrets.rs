//! The secrets port on Secrets Manager, cached per name for a TTL.
//!
//! A cached value is used until its TTL runs out, then fetched again, so a rotation is picked up within
//! one TTL. A caller whose credential is refused downstream (rotation happened since the fetch) calls
//! [`SecretsManagerSecrets::invalidate`] and asks again. Values are never logged.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use shared::secrets::{SecretValue, Secrets, SecretsError};
use shared::session::SessionContext;
use tokio::sync::Mutex;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{CallPolicy, Upstream, classify, error_code};

struct Cached {
    value: SecretValue,
    version_id: Option<String>,
    fetched: Instant,
}

pub struct SecretsManagerSecrets {
    client: Client,
    ttl: Duration,
    /// Prepended to every name, e.g. `clinical-agent/prod/`.
    prefix: String,
    policy: CallPolicy,
    cache: Mutex<HashMap<String, Cached>>,
}

impl fmt::Debug for SecretsManagerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerSecrets").field("ttl", &self.ttl).field("prefix", &self.prefix).finish()
    }
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self { client, ttl, prefix: String::new(), policy: CallPolicy::default(), cache: Mutex::new(HashMap::new()) }
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Forgets a cached value, so the next `get` fetches the current version.
    pub async fn invalidate(&self, name: &str) {
        self.cache.lock().await.remove(name);
    }

    async fn fetch(&self, session: &SessionContext, name: &str) -> Result<Cached, SecretsError> {
        let timeouts = self.policy.timeout_config(session).map_err(|_| SecretsError::Unavailable)?;
        let config = aws_sdk_secretsmanager::config::Builder::default()
            .retry_config(self.policy.retry_config())
            .timeout_config(timeouts);
        let output = self
            .client
            .get_secret_value()
            .secret_id(format!("{}{name}", self.prefix))
            .customize()
            .config_override(config)
            .send()
            .await
            .map_err(|e| {
                warn!(error = error_code(&e), "get secret value failed");
                match (classify(&e), e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception())) {
                    (_, true) => SecretsError::NotFound(name.to_owned()),
                    (Upstream::Unavailable, _) => SecretsError::Unavailable,
                    (Upstream::Rejected, _) => SecretsError::Rejected,
                }
            })?;
        let value = match (output.secret_string, output.secret_binary) {
            (Some(text), _) => SecretValue::new(text),
            (None, Some(binary)) => {
                SecretValue::new(String::from_utf8(binary.into_inner()).map_err(|_| SecretsError::Rejected)?)
            }
            (None, None) => return Err(SecretsError::Rejected),
        };
        Ok(Cached { value, version_id: output.version_id, fetched: Instant::now() })
    }
}

impl Secrets for SecretsManagerSecrets {
    async fn get(&self, session: &SessionContext, name: &str) -> Result<SecretValue, SecretsError> {
        let span = info_span!("secrets_get", otel.kind = "client", session_id = %session.session_id, secret = name);
        async {
            let mut cache = self.cache.lock().await;
            if let Some(cached) = cache.get(name)
                && cached.fetched.elapsed() < self.ttl
            {
                debug!("secret from cache");
                return Ok(cached.value.clone());
            }
            let previous = cache.get(name).and_then(|c| c.version_id.clone());
            let fresh = match self.fetch(session, name).await {
                Ok(fresh) => fresh,
                // Secrets Manager keeps the previous version valid through a rotation, so an expired value
                // is better than no value while the service is unreachable.
                Err(SecretsError::Unavailable) if cache.contains_key(name) => {
                    warn!("secret store unavailable; serving the expired cached value");
                    return cache.get(name).map(|c| c.value.clone()).ok_or(SecretsError::Unavailable);
                }
                Err(e) => return Err(e),
            };
            if previous.is_some() && previous != fresh.version_id {
                info!("secret rotated since last fetch");
            }
            let value = fresh.value.clone();
            cache.insert(name.to_owned(), fresh);
            Ok(value)
        }
        .instrument(span)
        .await
    }
}
