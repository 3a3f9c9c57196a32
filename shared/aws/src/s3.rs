//! Whole payer-policy documents from S3 (`GetObject`), for a knowledge base whose Retrieve answers are chunks.
//!
//! Hand-signed (aws-sigv4 over reqwest, both already in every tool) rather than `aws-sdk-s3`: one GET of a
//! small text object does not justify another SDK crate in each release binary. The S3-specific signing
//! rules are the ones "Authenticating Requests (AWS Signature Version 4)" and "Signature Calculations for the
//! Authorization Header: Transferring Payload in a Single Chunk" give: service `s3`, the `x-amz-content-sha256`
//! header on every request, and the object key encoded once (not twice, as other services expect) with no
//! path normalization.
//!
//! Only objects of the configured bucket are read (`PAYER_POLICY_BUCKET`); the function role signs (Bedrock
//! and the knowledge base never use per-session credentials). Documents are cached for the life of the
//! instance: a policy edited in S3 is picked up at the next cold start.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use shared::knowledge::KnowledgeError;
use shared::session::SessionContext;
use tokio::sync::Mutex;
use tracing::{Instrument, info, info_span, warn};

use crate::{AwsError, CallPolicy};

/// A policy document larger than this is refused: payer policies are a few kilobytes, and the whole text
/// goes into one draft.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The query parameter that carries the session id into S3 server access logs.
pub const SESSION_PARAMETER: &str = "x-session-id";

/// Documents kept per instance.
const CACHE_MAX: usize = 128;

/// `s3://<bucket>/<key>` as Bedrock Knowledge Bases report a chunk's source (`location.s3Location.uri`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    /// The key is taken as written: the Retrieve API reference does not say whether the URI percent-encodes
    /// it, and Bedrock's own examples show plain keys.
    pub fn parse(uri: &str) -> Option<Self> {
        let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
        (valid_bucket(bucket) && !key.is_empty() && key.len() <= 1024)
            .then(|| Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }
}

/// "Bucket naming rules" (general purpose buckets): 3–63 of lower-case letters, digits, `.` and `-`,
/// starting and ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(name.as_bytes().first())
        && edge_ok(name.as_bytes().last())
        && !name.contains("..")
}

/// RFC 3986 unreserved characters stay, `/` separates segments, everything else is `%XX`: the encoding S3's
/// canonical URI uses (and the request URL must match it byte for byte). `url` would leave `+`, `=`, `:`
/// and others as they are, which S3's canonical form encodes, so the signature would not match.
fn encode_key(key: &str) -> String {
    encode(key, true)
}

fn encode(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The payer-policy bucket, read with the function role.
pub struct PolicyBucket {
    http: reqwest::Client,
    bucket: String,
    region: String,
    /// An emulator or test server (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), addressed path-style.
    endpoint: Option<String>,
    credentials: SharedCredentialsProvider,
    policy: CallPolicy,
    cache: Mutex<HashMap<String, Arc<str>>>,
}

impl fmt::Debug for PolicyBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBucket")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl PolicyBucket {
    /// `http` must not follow redirects (see [`policy_http_client`]).
    pub fn new(
        http: reqwest::Client,
        bucket: &str,
        region: &str,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, AwsError> {
        if !valid_bucket(bucket) {
            return Err(AwsError::Invalid("PAYER_POLICY_BUCKET"));
        }
        Ok(Self {
            http,
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            endpoint: None,
            credentials,
            policy: CallPolicy::default(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into().trim_end_matches('/').to_owned());
        self
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object's URL: virtual-hosted style on AWS, except for bucket names with dots, which the
    /// `*.s3.<region>.amazonaws.com` certificate does not cover ("Virtual hosting of general purpose buckets").
    ///
    /// The session id rides along as `x-session-id` in the query string: S3 ignores query parameters that
    /// start with `x-` but writes them into the server access log record ("Amazon S3 server access log
    /// format", custom access log information), the one place a GetObject can carry it.
    fn url(&self, key: &str, session: &SessionContext) -> String {
        let key = encode_key(key);
        let base = match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/{}/{key}", self.bucket),
            None if self.bucket.contains('.') => {
                format!("https://s3.{}.amazonaws.com/{}/{key}", self.region, self.bucket)
            }
            None => format!("https://{}.s3.{}.amazonaws.com/{key}", self.bucket, self.region),
        };
        format!("{base}?{SESSION_PARAMETER}={}", encode(session.session_id.as_str(), false))
    }

    /// The whole document at `location`, from the cache or S3. A location in another bucket is refused
    /// before any request: the knowledge base may index other sources, but policies come from this one.
    pub async fn document(&self, session: &SessionContext, location: &S3Location) -> Result<Arc<str>, KnowledgeError> {
        if location.bucket != self.bucket {
            warn!(error = "policy_outside_bucket", "a retrieved policy is outside the payer policy bucket");
            return Err(KnowledgeError::Rejected);
        }
        if let Some(text) = self.cache.lock().await.get(&location.key) {
            return Ok(text.clone());
        }
        let span =
            info_span!("s3_get_object", otel.kind = "client", session_id = %session.session_id, bucket = %self.bucket);
        let text: Arc<str> = self.fetch(session, &location.key).instrument(span).await?.into();
        let mut cache = self.cache.lock().await;
        if cache.len() >= CACHE_MAX
            && let Some(any) = cache.keys().next().cloned()
        {
            cache.remove(&any);
        }
        cache.insert(location.key.clone(), text.clone());
        Ok(text)
    }

    async fn fetch(&self, session: &SessionContext, key: &str) -> Result<String, KnowledgeError> {
        let url = self.url(key, session);
        let mut backoff = self.policy.initial_backoff;
        for attempt in 1..=self.policy.max_attempts.max(1) {
            let remaining = session.remaining();
            if remaining.is_zero() {
                return Err(KnowledgeError::Unavailable);
            }
            let request = self.signed_get(&url, self.policy.attempt_timeout.min(remaining)).await?;
            let outcome = match self.http.execute(request).await {
                Ok(response) => Self::read(response).await,
                Err(_) => Attempt::Transient("transport"),
            };
            match outcome {
                Attempt::Done(text) => {
                    info!(bytes = text.len(), "policy document fetched");
                    return Ok(text);
                }
                Attempt::Refused(reason) => {
                    warn!(error = reason, "policy document refused");
                    return Err(KnowledgeError::Rejected);
                }
                Attempt::Transient(reason) => {
                    warn!(error = reason, attempt, "policy document not fetched");
                    if attempt < self.policy.max_attempts && session.remaining() > backoff {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.policy.max_backoff);
                    } else {
                        break;
                    }
                }
            }
        }
        Err(KnowledgeError::Unavailable)
    }

    async fn read(response: reqwest::Response) -> Attempt {
        let status = response.status().as_u16();
        match status {
            200 => {}
            // 503 is S3's SlowDown; 500 InternalError is retryable per "Error responses".
            429 | 500..=599 => return Attempt::Transient("s3_unavailable"),
            403 => return Attempt::Refused("access_denied"),
            404 => return Attempt::Refused("no_such_key"),
            _ => return Attempt::Refused("s3_status"),
        }
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Attempt::Refused("document_too_large");
        }
        let Ok(body) = response.bytes().await else {
            return Attempt::Transient("truncated_body");
        };
        if body.len() > MAX_DOCUMENT_BYTES {
            return Attempt::Refused("document_too_large");
        }
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Attempt::Done(text),
            Err(_) => Attempt::Refused("not_utf8"),
        }
    }

    async fn signed_get(&self, url: &str, timeout: Duration) -> Result<reqwest::Request, KnowledgeError> {
        let credentials = self.credentials.provide_credentials().await.map_err(|_| {
            warn!(error = "no_credentials", "function credentials unavailable");
            KnowledgeError::Unavailable
        })?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|_| KnowledgeError::Rejected)?
            .into();
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .body(Vec::new())
            .map_err(|_| KnowledgeError::Rejected)?;
        let signable = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
            .map_err(|_| KnowledgeError::Rejected)?;
        let (instructions, _signature) = sign(signable, &params).map_err(|_| KnowledgeError::Rejected)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let mut request = reqwest::Request::try_from(request).map_err(|_| KnowledgeError::Rejected)?;
        *request.timeout_mut() = Some(timeout);
        Ok(request)
    }
}

enum Attempt {
    Done(String),
    Refused(&'static str),
    Transient(&'static str),
}

/// The HTTP client for S3: no redirects, so a signed request (and the bucket's content) never follows a
/// 301/307 to another host; S3 answers a wrong-Region request with one, which is a configuration error here.
pub fn policy_http_client() -> Result<reqwest::Client, AwsError> {
    let tls = shared::tool::tls_config().map_err(|_| AwsError::Invalid("PAYER_POLICY_BUCKET"))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(50))
        .build()
        .map_err(|_| AwsError::Invalid("PAYER_POLICY_BUCKET"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(
            S3Location::parse("s3://payer-policies/acme/EHP-IMG-001 mri.md"),
            Some(S3Location { bucket: "payer-policies".into(), key: "acme/EHP-IMG-001 mri.md".into() })
        );
        for bad in ["https://payer-policies/a.md", "s3://payer-policies/", "s3://payer-policies", "s3://Bad_Bucket/a"] {
            assert_eq!(S3Location::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(valid_bucket("payer-policies-111122223333"));
        assert!(valid_bucket("payer.policies"));
        for bad in ["ab", "-payer", "payer-", "Payer", "payer..policies", "payer_policies", &"a".repeat(64)] {
            assert!(!valid_bucket(bad), "{bad}");
        }
    }

    #[test]
    fn keys_are_encoded_once_as_s3_canonical_uris_expect() {
        assert_eq!(encode_key("acme/EHP-IMG-001_mri.md"), "acme/EHP-IMG-001_mri.md");
        assert_eq!(encode_key("a b+c=d:é.md"), "a%20b%2Bc%3Dd%3A%C3%A9.md");
        assert_eq!(encode("agentcore:sess/1", false), "agentcore%3Asess%2F1");
    }
}
