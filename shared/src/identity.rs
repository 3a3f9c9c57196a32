//! Who is calling: a signed JWT, verified against the issuer's JWKS, mapped to a principal.
//!
//! The token arrives through a channel the model cannot write (Bedrock Agent session attributes set by the
//! front end, a header the AgentCore Gateway propagates, or the direct event of an operator). Nothing in
//! tool parameters ever names the caller, their role or their organisation.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use crate::fhir::FhirId;

/// The roles our policies know. Roles from the token that are not listed here are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Clinician,
    RcmCoder,
    PriorAuthSpecialist,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clinician => "clinician",
            Self::RcmCoder => "rcm_coder",
            Self::PriorAuthSpecialist => "prior_auth_specialist",
        }
    }

    fn from_claim(raw: &str) -> Option<Self> {
        match raw {
            "clinician" => Some(Self::Clinician),
            "rcm_coder" => Some(Self::RcmCoder),
            "prior_auth_specialist" => Some(Self::PriorAuthSpecialist),
            _ => None,
        }
    }
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub subject: String,
    pub roles: BTreeSet<Role>,
    pub organization: Option<String>,
    /// The FHIR `Practitioner` id of a clinician, which care relationships are checked against.
    pub practitioner_id: Option<FhirId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no identity token was presented")]
    Missing,
    #[error("the identity token is malformed")]
    Malformed,
    #[error("the identity token was not signed by a trusted key")]
    BadSignature,
    #[error("the identity token has expired")]
    Expired,
    #[error("the identity token is not yet valid")]
    NotYetValid,
    #[error("the identity token was issued for another audience")]
    WrongAudience,
    #[error("the identity token was issued by an untrusted issuer")]
    WrongIssuer,
    #[error("the identity token lacks a required claim")]
    MissingClaim,
    #[error("the issuer's signing keys could not be fetched")]
    KeysUnavailable,
}

/// Claims we read; Cognito's `cognito:groups` and `custom:` attributes are accepted beside plain names.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, alias = "cognito:groups")]
    roles: Vec<String>,
    #[serde(default, alias = "custom:org")]
    org: Option<String>,
    #[serde(default, alias = "custom:practitioner_id")]
    practitioner_id: Option<String>,
}

/// How long fetched keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` triggers a refetch (key rotation), but no more often than this, so forged kids cannot
/// turn the verifier into a load generator against the issuer.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

enum KeySource {
    Url { url: String, http: reqwest::Client },
    Fixed,
}

struct CachedKeys {
    keys: JwkSet,
    fetched: Instant,
}

pub struct JwtVerifier {
    issuer: String,
    audience: String,
    source: KeySource,
    cache: Mutex<Option<CachedKeys>>,
}

impl JwtVerifier {
    /// A verifier that fetches the issuer's JWKS over HTTPS (or loopback HTTP locally) and caches it.
    pub fn from_jwks_url(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        url: impl Into<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            source: KeySource::Url { url: url.into(), http },
            cache: Mutex::new(None),
        }
    }

    /// A verifier with a fixed key set, for tests and air-gapped use.
    pub fn from_keys(issuer: impl Into<String>, audience: impl Into<String>, keys: JwkSet) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            source: KeySource::Fixed,
            cache: Mutex::new(Some(CachedKeys { keys, fetched: Instant::now() })),
        }
    }

    pub async fn verify(&self, token: Option<&str>) -> Result<Principal, IdentityError> {
        let token = token.map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim()).filter(|t| !t.is_empty());
        let token = token.ok_or(IdentityError::Missing)?;
        let header = decode_header(token).map_err(|_| IdentityError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(IdentityError::BadSignature);
        }
        let kid = header.kid.ok_or(IdentityError::Malformed)?;
        let key = self.key_for(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            JwtErrorKind::ExpiredSignature => IdentityError::Expired,
            JwtErrorKind::ImmatureSignature => IdentityError::NotYetValid,
            JwtErrorKind::InvalidAudience => IdentityError::WrongAudience,
            JwtErrorKind::InvalidIssuer => IdentityError::WrongIssuer,
            JwtErrorKind::MissingRequiredClaim(_) => IdentityError::MissingClaim,
            JwtErrorKind::InvalidSignature | JwtErrorKind::InvalidAlgorithm => IdentityError::BadSignature,
            _ => IdentityError::Malformed,
        })?;
        principal_from(data.claims)
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, IdentityError> {
        let (cached, stale) = match self.cached_key(kid) {
            (Some(key), false) => return Ok(key),
            other => other,
        };
        let KeySource::Url { url, http } = &self.source else {
            return cached.ok_or(IdentityError::BadSignature);
        };
        if !stale && !self.may_refetch() {
            return Err(IdentityError::BadSignature);
        }
        match fetch_jwks(http, url).await {
            Ok(keys) => {
                if let Ok(mut cache) = self.cache.lock() {
                    *cache = Some(CachedKeys { keys, fetched: Instant::now() });
                }
                self.cached_key(kid).0.ok_or(IdentityError::BadSignature)
            }
            // A stale key still verifies while the issuer is briefly unreachable.
            Err(e) => cached.ok_or(e),
        }
    }

    /// The key for `kid` if cached, and whether the cache has outlived its TTL.
    fn cached_key(&self, kid: &str) -> (Option<DecodingKey>, bool) {
        let Ok(cache) = self.cache.lock() else { return (None, true) };
        match cache.as_ref() {
            None => (None, true),
            Some(c) => {
                let stale = matches!(self.source, KeySource::Url { .. }) && c.fetched.elapsed() > JWKS_TTL;
                let key = c.keys.find(kid).and_then(|jwk| DecodingKey::from_jwk(jwk).ok());
                (key, stale)
            }
        }
    }

    fn may_refetch(&self) -> bool {
        self.cache.lock().map(|c| c.as_ref().is_none_or(|c| c.fetched.elapsed() > JWKS_MIN_REFETCH)).unwrap_or(false)
    }
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<JwkSet, IdentityError> {
    let response =
        http.get(url).timeout(Duration::from_secs(3)).send().await.map_err(|_| IdentityError::KeysUnavailable)?;
    if !response.status().is_success() {
        return Err(IdentityError::KeysUnavailable);
    }
    response.json::<JwkSet>().await.map_err(|_| IdentityError::KeysUnavailable)
}

fn principal_from(claims: Claims) -> Result<Principal, IdentityError> {
    if claims.sub.trim().is_empty() {
        return Err(IdentityError::MissingClaim);
    }
    let practitioner_id = match claims.practitioner_id {
        Some(raw) => Some(FhirId::parse(&raw).map_err(|_| IdentityError::Malformed)?),
        None => None,
    };
    Ok(Principal {
        subject: claims.sub,
        roles: claims.roles.iter().filter_map(|r| Role::from_claim(r)).collect(),
        organization: claims.org.filter(|o| !o.is_empty()),
        practitioner_id,
    })
}
