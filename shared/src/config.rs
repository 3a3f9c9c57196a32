//! The configuration every tool shares (FHIR endpoint and signing, the issuer, the tenant, the envelopes), read
//! once at cold start by `shared_aws::config::Deployment` together with the port switches.

use aws_credential_types::Credentials;

use crate::envelope::{EnvelopeSettings, EnvelopeSettingsError};
use crate::fhir::{FhirEndpoint, Signing};

/// The organisation of the local stack's demo users, served when `TENANT_ORGANIZATION` is not set.
pub const LOCAL_TENANT: &str = "org-synthea-ma";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable `{0}` is missing")]
    Missing(&'static str),
    #[error("environment variable `{0}` is invalid")]
    Invalid(&'static str),
    #[error(transparent)]
    Envelopes(#[from] EnvelopeSettingsError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub function_name: String,
    pub fhir_endpoint: FhirEndpoint,
    pub fhir_signing: Signing,
    pub jwks_url: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// How far back an encounter counts as a care relationship.
    pub care_lookback_days: u32,
    /// The organisation whose datastore this deployment serves (`TENANT_ORGANIZATION`); Cedar checks callers
    /// against `Organization::"<this>"`.
    pub tenant_organization: String,
    /// The envelopes this deployment accepts and the Gateway header names it reads.
    pub envelopes: EnvelopeSettings,
}

impl Config {
    /// Reads from a key lookup: a function's `shared_aws::config::Deployment` hands it the environment it read
    /// once; tests hand it a map.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = &get;
        let required = |key: &'static str| get(key).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(key));
        let fhir_endpoint =
            FhirEndpoint::parse(&required("FHIR_BASE_URL")?).map_err(|_| ConfigError::Invalid("FHIR_BASE_URL"))?;
        let fhir_signing = match get("FHIR_SIGNING").as_deref().unwrap_or("sigv4") {
            "none" => Signing::None,
            "sigv4" => Signing::SigV4 {
                region: required("AWS_REGION")?,
                // Lambda puts the execution role's credentials in the environment.
                credentials: Credentials::new(
                    required("AWS_ACCESS_KEY_ID")?,
                    required("AWS_SECRET_ACCESS_KEY")?,
                    get("AWS_SESSION_TOKEN"),
                    None,
                    "lambda-environment",
                ),
            },
            _ => return Err(ConfigError::Invalid("FHIR_SIGNING")),
        };
        let care_lookback_days = match get("CARE_RELATIONSHIP_LOOKBACK_DAYS") {
            None => 730,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or(ConfigError::Invalid("CARE_RELATIONSHIP_LOOKBACK_DAYS"))?,
        };
        Ok(Self {
            function_name: get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "local".to_owned()),
            fhir_endpoint,
            fhir_signing,
            jwks_url: required("JWKS_URL")?,
            jwt_issuer: required("JWT_ISSUER")?,
            jwt_audience: required("JWT_AUDIENCE")?,
            care_lookback_days,
            envelopes: EnvelopeSettings::from_lookup(get)?,
            tenant_organization: get("TENANT_ORGANIZATION")
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| LOCAL_TENANT.to_owned()),
        })
    }
}
