//! FHIR over HTTP: HealthLake (SigV4, service `healthlake`) or the local server (unsigned).
//!
//! fhir-sdk's own client cannot sign each request with SigV4, so requests are built here with reqwest and
//! signed with aws-sigv4; fhir-sdk supplies the model types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, HeaderValue, IF_MATCH, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{Instrument, debug, info_span, warn};

use super::{FhirError, FhirId, FhirStore, SearchQuery, SearchSet, Written};
use crate::session::SessionContext;

/// The header that carries the agent session id on every FHIR request.
pub const SESSION_HEADER: &str = "x-session-id";
/// The header that carries the Lambda request id on every FHIR request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

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
            .header(ACCEPT, "application/fhir+json")
            .header(SESSION_HEADER, session.session_id.as_str())
            .header(REQUEST_ID_HEADER, header_safe(&session.request_id));
        if !call.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/fhir+json");
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

    async fn get(&self, session: &SessionContext, url: &Url, resource_type: &str) -> Result<bytes::Bytes, FhirError> {
        let call = Call { method: http::Method::GET, url, body: &[], if_match: None, resource_type };
        self.send(session, &call).await.map(|(_, body)| body)
    }

    /// One request with bounded retries. A POST is retried only when the server cannot have acted on it
    /// (429, or no connection made): after a 5xx or a timeout the resource may exist already, and a retry would
    /// create a second one. GET is safe to repeat; PUT replaces the same id, and with `If-Match` a repeat of an
    /// update that did land fails as a conflict rather than applying twice.
    async fn send(
        &self,
        session: &SessionContext,
        call: &Call<'_>,
    ) -> Result<(http::HeaderMap, bytes::Bytes), FhirError> {
        let idempotent = call.method != http::Method::POST;
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
    if_match: Option<&'a str>,
    resource_type: &'a str,
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
        let span = info_span!("fhir_search", resource_type = query.resource_type, pages = tracing::field::Empty);
        async {
            let mut url = self.endpoint.url().join(query.resource_type).map_err(|_| FhirError::Rejected(0))?;
            url.query_pairs_mut().extend_pairs(query.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut set = SearchSet::default();
            let mut pages = 0;
            loop {
                let body = self.get(session, &url, query.resource_type).await?;
                pages += 1;
                let page: Page = serde_json::from_slice(&body).map_err(|_| FhirError::Decode)?;
                let next = page.next();
                set.resources.extend(page.entry.into_iter().filter(|e| !e.is_outcome()).filter_map(|e| e.resource));
                match next {
                    Some(next) if pages < query.max_pages => {
                        let next = Url::parse(next).map_err(|_| FhirError::Decode)?;
                        if !self.endpoint.contains(&next) {
                            warn!("fhir next link leaves the endpoint; not followed");
                            return Err(FhirError::Decode);
                        }
                        url = next;
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
        let span = info_span!("fhir_create", resource_type);
        async {
            let url = self.instance_url(resource_type, None)?;
            let body = serde_json::to_vec(resource).map_err(|_| FhirError::Rejected(0))?;
            let call = Call { method: http::Method::POST, url: &url, body: &body, if_match: None, resource_type };
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
        let span = info_span!("fhir_read", resource_type);
        async {
            let url = self.instance_url(resource_type, Some(id))?;
            let call = Call { method: http::Method::GET, url: &url, body: &[], if_match: None, resource_type };
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
        let span = info_span!("fhir_update", resource_type);
        async {
            let url = self.instance_url(resource_type, Some(id))?;
            let body = serde_json::to_vec(resource).map_err(|_| FhirError::Rejected(0))?;
            let call = Call { method: http::Method::PUT, url: &url, body: &body, if_match, resource_type };
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

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    entry: Vec<Entry>,
    #[serde(default, borrow)]
    link: Vec<Link<'a>>,
}

impl<'a> Page<'a> {
    fn next(&self) -> Option<&'a str> {
        self.link.iter().find(|l| l.relation == "next").map(|l| l.url)
    }
}

#[derive(Deserialize)]
struct Link<'a> {
    relation: &'a str,
    url: &'a str,
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
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("healthlake")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| FhirError::Rejected(0))?
        .into();
    let headers = request.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)));
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(request.method().as_str(), &uri, headers, SignableBody::Bytes(request.body()))
        .map_err(|_| FhirError::Rejected(0))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|_| FhirError::Rejected(0))?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}
