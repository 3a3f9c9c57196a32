//! Test helpers (feature `test-util`): tokens signed with the repository's test-only keys, a verifier that
//! trusts them, a FHIR server fake that behaves like HealthLake ([`fhir`]) and the PHI-canary log capture
//! ([`logs`]). Never compiled into a deployed function.

pub mod fhir;
pub mod logs;

pub use self::fhir::{FakeBehaviour, FhirFake, FhirRequest, load_bundle};
pub use self::logs::LogCapture;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::identity::JwtVerifier;

pub const ISSUER: &str = "https://issuer.test.invalid";
pub const AUDIENCE: &str = "clinical-agent-tools";
const KID: &str = "test-key-1";
const TRUSTED_KEY: &str = include_str!("../../testdata/test-trusted-key.pem");
const FORGER_KEY: &str = include_str!("../../testdata/test-forger-key.pem");
const JWKS: &str = include_str!("../../testdata/test-jwks.json");

/// The claims of a test token; `Default` is a valid clinician token.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub sub: String,
    pub roles: Vec<String>,
    pub org: Option<String>,
    pub practitioner_id: Option<String>,
    /// Seconds from now until expiry (negative: already expired).
    pub expires_in: i64,
    pub audience: String,
    pub issuer: String,
    /// Signed by a key the verifier does not trust, under the trusted key's `kid`.
    pub forged: bool,
}

impl Default for TokenSpec {
    fn default() -> Self {
        Self {
            sub: "dr-test".to_owned(),
            roles: vec!["clinician".to_owned()],
            org: Some("org-test".to_owned()),
            practitioner_id: Some("practitioner-1".to_owned()),
            expires_in: 600,
            audience: AUDIENCE.to_owned(),
            issuer: ISSUER.to_owned(),
            forged: false,
        }
    }
}

impl TokenSpec {
    pub fn clinician(practitioner_id: &str) -> Self {
        Self { practitioner_id: Some(practitioner_id.to_owned()), ..Self::default() }
    }

    pub fn with_roles(roles: &[&str]) -> Self {
        Self {
            sub: "user-test".to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            practitioner_id: None,
            ..Self::default()
        }
    }

    pub fn mint(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "iss": self.issuer, "aud": self.audience, "sub": self.sub, "roles": self.roles,
            "iat": now, "nbf": now - 5, "exp": now + self.expires_in,
        });
        if let Some(org) = &self.org {
            claims["org"] = json!(org);
        }
        if let Some(p) = &self.practitioner_id {
            claims["practitioner_id"] = json!(p);
        }
        let pem = if self.forged { FORGER_KEY } else { TRUSTED_KEY };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        match EncodingKey::from_rsa_pem(pem.as_bytes()) {
            Ok(key) => encode(&header, &claims, &key).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

pub fn jwks() -> JwkSet {
    serde_json::from_str(JWKS).unwrap_or(JwkSet { keys: Vec::new() })
}

/// A verifier trusting the test key, for the test issuer and audience.
pub fn verifier() -> JwtVerifier {
    JwtVerifier::from_keys(ISSUER, AUDIENCE, jwks())
}

/// One runtime invocation carrying `event`, with 20 s before its deadline: what the Lambda runtime hands a tool.
pub fn invocation(event: &serde_json::Value) -> crate::runtime::Invocation {
    crate::runtime::Invocation {
        request_id: "req-test-1".into(),
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(20),
        payload: bytes::Bytes::from(serde_json::to_vec(event).unwrap_or_default()),
        client_context: None,
        trace_header: None,
    }
}
