//! FHIR over HTTP: HealthLake (SigV4, service `healthlake`) or the local server (unsigned).
//!
//! fhir-sdk's own client cannot sign each request with SigV4, so requests are built here with reqwest and
//! signed with aws-sigv4 (`crate::sigv4`); the model types are `super::model`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, HeaderValue, IF_MATCH, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{Instrument, debug, info_span, warn};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};

use super::{FhirError, FhirId, FhirStore, SearchQuery, SearchSet, Written, check_belongs};
use crate::session::{SessionContext, UpstreamFault};

/// The header that carries the agent session id on every FHIR request.
pub const SESSION_HEADER: &str = "x-session-id";
/// The header that carries the Lambda request id on every FHIR request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// HealthLake's create idempotency key ("Idempotency and Concurrency", HealthLake developer guide): a repeat
/// with the same key answers 409 with the resource the first request created, instead of a second one.
pub const IDEMPOTENCY_HEADER: &str = "x-amz-fhir-idempotency-key";
/// Every search asks the server to reject parameters it does not support. HealthLake is lenient by default
/// ("Using FHIR search in HealthLake", managing invalid search parameters): an ignored `subject` or
/// `general-practitioner` would widen the search to other patients or practitioners.
pub const PREFER_STRICT: &str = "handling=strict";
const FORM: &str = "application/x-www-form-urlencoded";
const FHIR_JSON: &str = "application/fhir+json";

/// Credentials chosen per request, e.g. a data-access role assumed for the session (so CloudTrail names the
/// session and the person on every HealthLake call). Implementations cache; they are asked on every attempt.
pub trait CredentialSource: Send + Sync {
    fn credentials<'a>(
        &'a self,
        session: &'a SessionContext,
    ) -> Pin<Box<dyn Future<Output = Result<Credentials, FhirError>> + Send + 'a>>;
}

/// How requests are authenticated.
#[derive(Clone)]
pub enum Signing {
    /// The local FHIR server on loopback.
    None,
    /// HealthLake: SigV4 for service `healthlake` in `region`.
    SigV4 { region: String, credentials: Credentials },
    /// HealthLake: SigV4 for service `healthlake` with credentials the source gives for each session.
    SigV4PerSession { region: String, source: Arc<dyn CredentialSource> },
}

impl std::fmt::Debug for Signing {
    // Credentials never reach a log line, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("Signing::None"),
            Self::SigV4 { region, .. } => write!(f, "Signing::SigV4({region})"),
            Self::SigV4PerSession { region, .. } => write!(f, "Signing::SigV4PerSession({region})"),
        }
    }
}

/// The FHIR base URL, always ending in `/` so that relative joins stay under it.
#[derive(Debug, Clone)]
pub struct FhirEndpoint(Url);

impl FhirEndpoint {
    pub fn parse(raw: &str) -> Result<Self, url::ParseError> {
        let mut url = Url::parse(raw)?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// Whether `url` stays on this endpoint: a `next` link elsewhere is never followed, so neither the
    /// signature nor the session id can be sent to another host.
    fn contains(&self, url: &Url) -> bool {
        url.scheme() == self.0.scheme()
            && url.host_str() == self.0.host_str()
            && url.port_or_known_default() == self.0.port_or_known_default()
            && url.path().starts_with(self.0.path())
    }
}

/// Bounded, jittered retries on 429, 5xx and transport failures; never beyond the invocation deadline.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 4, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// Full jitter: a random delay up to the exponential cap, so concurrent callers spread out.
    fn delay(&self, attempt: u32) -> Duration {
        let cap = self.base_delay.saturating_mul(1 << attempt.min(16)).min(self.max_delay);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(cap_ms / 2..=cap_ms))
    }
}

#[derive(Debug, Clone)]
pub struct HttpFhirStore {
    http: reqwest::Client,
    endpoint: FhirEndpoint,
    signing: Signing,
    retry: RetryPolicy,
}

impl HttpFhirStore {
    pub fn new(http: reqwest::Client, endpoint: FhirEndpoint, signing: Signing) -> Self {
        Self { http, endpoint, signing, retry: RetryPolicy::default() }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn build(
        &self,
        session: &SessionContext,
        call: &Call<'_>,
        timeout: Duration,
    ) -> Result<reqwest::Request, FhirError> {
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(call.url.as_str())
            .header(ACCEPT, FHIR_JSON)
            .header(SESSION_HEADER, session.session_id.as_str())
            .header(REQUEST_ID_HEADER, header_safe(&session.request_id));
        if !call.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, call.content_type);
        }
        if call.search {
            builder = builder.header("prefer", PREFER_STRICT);
        }
        if let Some(key) = call.idempotency_key {
            builder = builder.header(IDEMPOTENCY_HEADER, key);
        }
        if let Some(version) = call.if_match {
            // A weak ETag on the version id, as FHIR's version-aware update expects.
            builder = builder.header(IF_MATCH, format!("W/\"{}\"", header_safe(version)));
        }
        let mut request = builder.body(call.body.to_vec()).map_err(|_| FhirError::Rejected(0))?;
        match &self.signing {
            Signing::None => {}
            Signing::SigV4 { region, credentials } => sign_request(&mut request, region, credentials)?,
            Signing::SigV4PerSession { region, source } => {
                let credentials = source.credentials(session).await?;
                sign_request(&mut request, region, &credentials)?;
            }
        }
        let mut request = reqwest::Request::try_from(request).map_err(|_| FhirError::Rejected(0))?;
        *request.timeout_mut() = Some(timeout);
        Ok(request)
    }

    /// One request with bounded retries. A request that could change something twice is retried only when
    /// the server cannot have acted on it (429, or no connection made). Searches (GET, or POST `_search`) are
    /// safe to repeat; a create carries an idempotency key, so HealthLake answers a repeat with the first
    /// result; PUT replaces the same id, and with `If-Match` a repeat of an update that did land fails as a
    /// conflict rather than applying twice.
    async fn send(
        &self,
        session: &SessionContext,
        call: &Call<'_>,
    ) -> Result<(http::HeaderMap, bytes::Bytes), FhirError> {
        let idempotent = call.method != http::Method::POST || call.search || call.idempotency_key.is_some();
        let resource_type = call.resource_type;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = session.remaining();
            if remaining.is_zero() {
                return Err(FhirError::Unavailable);
            }
            let request = self.build(session, call, remaining).await?;
            let retry_hint = match self.http.execute(request).await {
                Ok(response) if response.status().is_success() => {
                    let headers = response.headers().clone();
                    let body = response.bytes().await.map_err(|_| FhirError::Unavailable)?;
                    return Ok((headers, body));
                }
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                        return Err(FhirError::NotFound);
                    }
                    if status == StatusCode::CONFLICT && call.idempotency_key.is_some() {
                        // A repeat of a create that landed: HealthLake returns the original resource.
                        let headers = response.headers().clone();
                        let body = response.bytes().await.map_err(|_| FhirError::Unavailable)?;
                        if is_resource_of(&body, resource_type) {
                            debug!(resource_type, attempt, "fhir create answered as a duplicate of an earlier attempt");
                            return Ok((headers, body));
                        }
                        return Err(FhirError::Conflict);
                    }
                    if status == StatusCode::PRECONDITION_FAILED || status == StatusCode::CONFLICT {
                        return Err(FhirError::Conflict);
                    }
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(FhirError::Rejected(status.as_u16()));
                    }
                    warn!(status = status.as_u16(), attempt, resource_type, "fhir request throttled or failed");
                    if !idempotent && status != StatusCode::TOO_MANY_REQUESTS {
                        return Err(FhirError::Unavailable);
                    }
                    retry_after(response.headers().get(RETRY_AFTER))
                }
                Err(e) => {
                    warn!(
                        attempt,
                        resource_type,
                        timeout = e.is_timeout(),
                        connect = e.is_connect(),
                        "fhir request failed"
                    );
                    if !idempotent && !e.is_connect() {
                        return Err(FhirError::Unavailable);
                    }
                    None
                }
            };
            if attempt >= self.retry.max_attempts {
                return Err(FhirError::Unavailable);
            }
            let delay = self.retry.delay(attempt).max(retry_hint.unwrap_or_default());
            if delay >= session.remaining() {
                return Err(FhirError::Unavailable);
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn instance_url(&self, resource_type: &str, id: Option<&FhirId>) -> Result<Url, FhirError> {
        let relative = match id {
            Some(id) => format!("{resource_type}/{id}"),
            None => resource_type.to_owned(),
        };
        self.endpoint.url().join(&relative).map_err(|_| FhirError::Rejected(0))
    }
}

/// What one request is: kept together so a retry rebuilds (and re-signs) exactly the same request.
struct Call<'a> {
    method: http::Method,
    url: &'a Url,
    body: &'a [u8],
    content_type: &'static str,
    if_match: Option<&'a str>,
    resource_type: &'a str,
    /// A search (first page or a `next` link): `Prefer: handling=strict`, and safe to repeat.
    search: bool,
    idempotency_key: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(method: http::Method, url: &'a Url, resource_type: &'a str) -> Self {
        Self {
            method,
            url,
            body: &[],
            content_type: FHIR_JSON,
            if_match: None,
            resource_type,
            search: false,
            idempotency_key: None,
        }
    }
}

/// Whether `body` is a resource of `resource_type` with an id (what a duplicate create answers with).
fn is_resource_of(body: &[u8], resource_type: &str) -> bool {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "resourceType")]
        resource_type: Option<String>,
        id: Option<String>,
    }
    serde_json::from_slice::<Head>(body)
        .is_ok_and(|h| h.resource_type.as_deref() == Some(resource_type) && h.id.is_some())
}

/// A random UUID v4 for `x-amz-fhir-idempotency-key` (the format HealthLake asks for). Uniqueness, not
/// secrecy, is what matters here, so the non-cryptographic generator is enough.
fn idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    bytes[8..].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// SigV4 signs the canonical query (each name and value percent-decoded, then encoded with only unreserved
/// characters left bare), and aws-sigv4 reads a bare `+` as a space while HealthLake's page tokens use it
/// literally. A `next` link is therefore re-encoded to exactly that canonical form before it is sent, so the
/// URL on the wire and the one signed agree (`+` becomes `%2B`, `/` `%2F`, `=` `%3D`).
pub(crate) fn canonical_query(url: &mut Url) {
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let Some(query) = url.query() else { return };
    let encode = |raw: &str| {
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        percent_encode(&bytes, UNRESERVED).to_string()
    };
    let pairs: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            format!("{}={}", encode(name), encode(value))
        })
        .collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.set_query(Some(&pairs.join("&")));
    }
}

/// The version id of a write or read: `meta.versionId` in the body, else the `ETag` header (`W/"3"`).
fn version_of(headers: &http::HeaderMap, resource: &serde_json::Value) -> Option<String> {
    if let Some(v) = resource.pointer("/meta/versionId").and_then(|v| v.as_str()) {
        return Some(v.to_owned());
    }
    let etag = headers.get(ETAG)?.to_str().ok()?;
    let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
    (!bare.is_empty()).then(|| bare.to_owned())
}

impl FhirStore for HttpFhirStore {
    async fn search(&self, session: &SessionContext, query: &SearchQuery) -> Result<SearchSet, FhirError> {
        let span = info_span!(
            "fhir_search",
            otel.kind = "client",
            resource_type = query.resource_type,
            pages = tracing::field::Empty
        );
        async {
            // `POST [type]/_search` with a form body ("Searching FHIR resources with POST"): the patient id and
            // codes travel in the encrypted body, never in a URL that proxies or access logs keep.
            let first = self
                .endpoint
                .url()
                .join(&format!("{}/_search", query.resource_type))
                .map_err(|_| FhirError::Rejected(0))?;
            let form = query.form_body();
            let mut next_url: Option<Url> = None;
            let mut set = SearchSet::default();
            let mut pages = 0;
            loop {
                let call = match &next_url {
                    None => Call {
                        body: form.as_bytes(),
                        content_type: FORM,
                        search: true,
                        ..Call::new(http::Method::POST, &first, query.resource_type)
                    },
                    // HealthLake answers follow-up pages as GET on the `next` link ("Using FHIR search in
                    // HealthLake": pagination).
                    Some(url) => Call { search: true, ..Call::new(http::Method::GET, url, query.resource_type) },
                };
                let (_, body) = self.send(session, &call).await?;
                pages += 1;
                let page: Page = serde_json::from_slice(&body).map_err(|_| FhirError::Decode)?;
                let next = page.next().map(str::to_owned);
                for entry in page.entry.into_iter().filter(|e| !e.is_outcome()) {
                    let Some(resource) = entry.resource else { continue };
                    if let Err(e) = check_belongs(query, &resource) {
                        if let FhirError::ForeignResource { resource } = &e {
                            warn!(%resource, reason = e.audit_reason(), "fhir search returned a foreign resource; call fails closed");
                            session.faults.record(UpstreamFault {
                                reason: e.audit_reason(),
                                resource: Some(resource.clone()),
                            });
                        }
                        return Err(e);
                    }
                    set.resources.push(resource);
                }
                match next {
                    Some(next) if pages < query.max_pages => {
                        let mut next = Url::parse(&next).map_err(|_| FhirError::Decode)?;
                        if !self.endpoint.contains(&next) {
                            warn!("fhir next link leaves the endpoint; not followed");
                            return Err(FhirError::Decode);
                        }
                        canonical_query(&mut next);
                        next_url = Some(next);
                    }
                    _ => break,
                }
            }
            tracing::Span::current().record("pages", pages);
            debug!(resources = set.len(), "fhir search done");
            Ok(set)
        }
        .instrument(span)
        .await
    }
    async fn create(
        &self,
        session: &SessionContext,
        resource_type: &'static str,
        resource: &serde_json::Value,
    ) -> Result<Written, FhirError> {
        let span = info_span!("fhir_create", otel.kind = "client", resource_type);
        async {
            let url = self.instance_url(resource_type, None)?;
            let body = serde_json::to_vec(resource).map_err(|_| FhirError::Rejected(0))?;
            // One key per create, the same on every retry of it.
            let key = idempotency_key();
            let call =
                Call { body: &body, idempotency_key: Some(&key), ..Call::new(http::Method::POST, &url, resource_type) };
            let (headers, body) = self.send(session, &call).await?;
            written(&headers, &body, resource_type)
        }
        .instrument(span)
        .await
    }

    async fn read(
        &self,
        session: &SessionContext,
        resource_type: &'static str,
        id: &FhirId,
    ) -> Result<(serde_json::Value, Option<String>), FhirError> {
        let span = info_span!("fhir_read", otel.kind = "client", resource_type);
        async {
            let url = self.instance_url(resource_type, Some(id))?;
            let call = Call::new(http::Method::GET, &url, resource_type);
            let (headers, body) = self.send(session, &call).await?;
            let resource: serde_json::Value = serde_json::from_slice(&body).map_err(|_| FhirError::Decode)?;
            if resource.get("resourceType").and_then(|t| t.as_str()) != Some(resource_type) {
                return Err(FhirError::Decode);
            }
            let version = version_of(&headers, &resource);
            Ok((resource, version))
        }
        .instrument(span)
        .await
    }

    async fn update(
        &self,
        session: &SessionContext,
        resource_type: &'static str,
        id: &FhirId,
        resource: &serde_json::Value,
        if_match: Option<&str>,
    ) -> Result<Written, FhirError> {
        let span = info_span!("fhir_update", otel.kind = "client", resource_type);
        async {
            let url = self.instance_url(resource_type, Some(id))?;
            let body = serde_json::to_vec(resource).map_err(|_| FhirError::Rejected(0))?;
            let call = Call { body: &body, if_match, ..Call::new(http::Method::PUT, &url, resource_type) };
            let (headers, body) = self.send(session, &call).await?;
            written(&headers, &body, resource_type)
        }
        .instrument(span)
        .await
    }
}

/// The id and version of what a POST or PUT wrote: from the returned resource, else from `Location`
/// (`[base]/Type/id/_history/v`), since a server may answer `Prefer: return=minimal` with no body.
fn written(headers: &http::HeaderMap, body: &[u8], resource_type: &str) -> Result<Written, FhirError> {
    let resource: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).map_err(|_| FhirError::Decode)?
    };
    let from_body = resource.get("id").and_then(|v| v.as_str()).map(str::to_owned);
    let location = headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut parts = location.split('/').skip_while(|p| *p != resource_type).skip(1);
    let from_location = parts.next().map(str::to_owned);
    let location_version = match (parts.next(), parts.next()) {
        (Some("_history"), Some(v)) => Some(v.to_owned()),
        _ => None,
    };
    let raw_id = from_body.or(from_location).ok_or(FhirError::Decode)?;
    let id = FhirId::parse(&raw_id).map_err(|_| FhirError::Decode)?;
    let version = version_of(headers, &resource).or(location_version);
    Ok(Written { id, version })
}

/// A searchset page. Link fields are owned: servers may escape `/` as `\/` in JSON, which a borrowed `&str`
/// cannot represent (serde would fail the whole page).
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    entry: Vec<Entry>,
    #[serde(default)]
    link: Vec<Link>,
}

impl Page {
    fn next(&self) -> Option<&str> {
        self.link.iter().find(|l| l.relation == "next").map(|l| l.url.as_str())
    }
}

#[derive(Deserialize)]
struct Link {
    relation: String,
    url: String,
}

#[derive(Deserialize)]
struct Entry {
    resource: Option<Box<RawValue>>,
    search: Option<EntrySearch>,
}

impl Entry {
    /// OperationOutcome entries (warnings about the search itself) are not results.
    fn is_outcome(&self) -> bool {
        self.search.as_ref().is_some_and(|s| s.mode.as_deref() == Some("outcome"))
    }
}

#[derive(Deserialize)]
struct EntrySearch {
    mode: Option<String>,
}

/// `Retry-After` in seconds; an HTTP-date is treated as "no hint" (HealthLake sends seconds).
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    value.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

fn header_safe(raw: &str) -> &str {
    if raw.bytes().all(|b| b.is_ascii_graphic()) { raw } else { "invalid" }
}

fn sign_request(
    request: &mut http::Request<Vec<u8>>,
    region: &str,
    credentials: &Credentials,
) -> Result<(), FhirError> {
    crate::sigv4::sign_request(request, region, "healthlake", credentials).map_err(|_| FhirError::Rejected(0))
}
