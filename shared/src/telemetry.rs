//! Structured logs on stderr and spans as OpenTelemetry traces: ids, counts, timings and decisions only.
//! Payloads are never logged; spans carry the session id so every line of an invocation can be correlated.
//!
//! Traces. Every `tracing` span is also an OpenTelemetry span (`tracing-opentelemetry` over the SDK). The
//! spans of an invocation are held in memory and shipped after its reply is posted, before the runtime asks
//! for the next one ([`ship`], called by the runtime loop), so no reply waits for them. Where they go is the
//! deployment's choice ([`export_to`]): an OTLP/HTTP endpoint (CloudWatch's `https://xray.<region>.amazonaws.com
//! /v1/traces`, SigV4-signed; or a collector on loopback) or a local file of OTLP/JSON lines that the `audit`
//! command reads; with neither, spans are dropped as they end. Every span of an invocation carries
//! `session.id` and `faas.invocation_id`, and the invocation's trace id is the audit record's `trace_id`: the
//! X-Ray root id Lambda hands over, so the function's X-Ray segment, its spans and its audit records name
//! one trace.

mod otlp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, RwLock};
use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use otlp::Resource;

/// Spans held for one shipment at most; beyond it they are counted and dropped (a runaway loop must not
/// grow the instance's memory).
const MAX_HELD_SPANS: usize = 2048;
/// The longest a shipment may delay the next invocation.
const SHIP_TIMEOUT: Duration = Duration::from_millis(1500);

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stderr);
    let spans = tracing_opentelemetry::layer()
        .with_tracer(PROVIDER.tracer("clinical-agent"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
}

/// The process's tracer provider: every ended span goes to [`Held`] at once (a simple processor: no thread).
static PROVIDER: LazyLock<SdkTracerProvider> =
    LazyLock::new(|| SdkTracerProvider::builder().with_id_generator(InvocationIds).with_simple_exporter(Held).build());

/// What the running invocation is. One invocation runs at a time in a Lambda instance, so it is a
/// process-wide value.
#[derive(Debug, Default, Clone)]
struct Current {
    trace_id: Option<String>,
    request_id: Option<String>,
    session_id: Option<String>,
}

static CURRENT: RwLock<Current> = RwLock::new(Current { trace_id: None, request_id: None, session_id: None });

/// Starts the trace of an invocation and returns its id (32 lowercase hex digits, the W3C / OpenTelemetry
/// form). `xray_header` is Lambda's `Lambda-Runtime-Trace-Id` (or `_X_AMZN_TRACE_ID`):
/// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=...;Sampled=1`; X-Ray's root id is the same 128 bits,
/// so the audit record and X-Ray name one trace. Without a header a random id is used.
pub fn begin_trace(xray_header: Option<&str>, request_id: &str) -> String {
    let id = xray_header.and_then(xray_root_as_w3c).unwrap_or_else(random_trace_id);
    if let Ok(mut current) = CURRENT.write() {
        *current = Current { trace_id: Some(id.clone()), request_id: Some(request_id.to_owned()), session_id: None };
    }
    id
}

/// The session id of the running invocation, once the envelope named it: stamped on its spans.
pub fn set_session_id(session_id: &str) {
    if let Ok(mut current) = CURRENT.write() {
        current.session_id = Some(session_id.to_owned());
    }
}

/// The trace id of the running invocation, if [`begin_trace`] was called.
pub fn current_trace_id() -> Option<String> {
    CURRENT.read().ok().and_then(|c| c.trace_id.clone())
}

/// Makes `span` (the invocation's root span) a child of the caller's segment when Lambda's header names one
/// (`Parent=<16 hex>`), so the spans hang under the function's X-Ray segment.
pub fn link_to_caller(span: &tracing::Span, xray_header: Option<&str>) {
    let Some(parent) = xray_header.and_then(xray_parent) else { return };
    let Some(trace_id) = current_trace_id().and_then(|t| TraceId::from_hex(&t).ok()) else { return };
    let Ok(parent_id) = SpanId::from_hex(&parent) else { return };
    let caller = SpanContext::new(trace_id, parent_id, TraceFlags::SAMPLED, true, TraceState::default());
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(caller));
}

/// Root spans take the running invocation's trace id, so the audit record's `trace_id` is theirs.
#[derive(Debug)]
struct InvocationIds;

impl IdGenerator for InvocationIds {
    fn new_trace_id(&self) -> TraceId {
        current_trace_id()
            .and_then(|t| TraceId::from_hex(&t).ok())
            .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        RandomIdGenerator::default().new_span_id()
    }
}

static EXPORTING: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Vec<SpanData>> = Mutex::new(Vec::new());
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The SDK's exporter: holds ended spans until [`ship`]; drops them when no export is configured.
#[derive(Debug)]
struct Held;

impl SpanExporter for Held {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        if EXPORTING.load(Ordering::Relaxed)
            && let Ok(mut held) = HELD.lock()
        {
            let room = MAX_HELD_SPANS.saturating_sub(held.len());
            let over = batch.len().saturating_sub(room);
            held.extend(batch.into_iter().take(room));
            DROPPED.fetch_add(over as u64, Ordering::Relaxed);
        }
        std::future::ready(Ok(()))
    }
}

/// Where spans go.
pub enum TraceExport {
    /// OTLP/JSON lines appended to a file (the local stack: `$STACK_DIR/logs/spans.jsonl`).
    File(PathBuf),
    /// OTLP/HTTP with a JSON body, POSTed to `url`; signed with SigV4 (service `xray`) when `signing` is set.
    Otlp { http: reqwest::Client, url: url::Url, signing: Option<OtlpSigning> },
}

pub struct OtlpSigning {
    pub region: String,
    pub credentials: SharedCredentialsProvider,
}

impl std::fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "TraceExport::File({})", path.display()),
            Self::Otlp { url, signing, .. } => {
                write!(f, "TraceExport::Otlp({url}, signed: {})", signing.is_some())
            }
        }
    }
}

static EXPORT: OnceLock<(TraceExport, Resource)> = OnceLock::new();

/// Starts keeping spans for `export`, described by `resource`. The first call wins.
pub fn export_to(export: TraceExport, resource: Resource) {
    if EXPORT.set((export, resource)).is_ok() {
        EXPORTING.store(true, Ordering::Relaxed);
    }
}

/// Ships the spans held since the last shipment. Never fails the caller: a shipment that fails or takes
/// longer than [`SHIP_TIMEOUT`] is logged (status and counts only) and its spans are gone.
pub async fn ship() {
    let Some((export, resource)) = EXPORT.get() else { return };
    let spans = match HELD.lock() {
        Ok(mut held) => std::mem::take(&mut *held),
        Err(_) => return,
    };
    if spans.is_empty() {
        return;
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(dropped, "spans over the per-shipment limit were dropped");
    }
    let body = shipment(resource, &spans);
    let outcome = match export {
        TraceExport::File(path) => append_line(path, &body),
        TraceExport::Otlp { http, url, signing } => {
            match tokio::time::timeout(SHIP_TIMEOUT, post(http, url, signing.as_ref(), body)).await {
                Ok(outcome) => outcome,
                Err(_) => Err("timeout"),
            }
        }
    };
    if let Err(reason) = outcome {
        tracing::warn!(error = reason, spans = spans.len(), "spans were not exported");
    }
}

/// The OTLP/JSON body of `spans`, those of the running invocation stamped with its session and request ids
/// (spans of the cold start belong to no invocation and stay unstamped).
fn shipment(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let current = CURRENT.read().map(|c| c.clone()).unwrap_or_default();
    let mut stamp = Vec::new();
    if let Some(session) = current.session_id.as_deref() {
        stamp.push(("session.id", session));
    }
    if let Some(request) = current.request_id.as_deref() {
        stamp.push(("faas.invocation_id", request));
    }
    let of_this_call = |span: &SpanData| current.trace_id.as_deref() == Some(otlp::trace_id_hex(span).as_str());
    serde_json::to_vec(&otlp::export_request(resource, spans, &stamp, of_this_call)).unwrap_or_default()
}

fn append_line(path: &std::path::Path, body: &[u8]) -> Result<(), &'static str> {
    use std::io::Write;
    let mut line = body.to_vec();
    line.push(b'\n');
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|_| "spans_file_unwritable")?;
    // One write per shipment: lines from the three functions appending to one file do not interleave.
    file.write_all(&line).map_err(|_| "spans_file_unwritable")
}

async fn post(
    http: &reqwest::Client,
    url: &url::Url,
    signing: Option<&OtlpSigning>,
    body: Vec<u8>,
) -> Result<(), &'static str> {
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(url.as_str())
        .header("content-type", "application/json")
        .body(body)
        .map_err(|_| "request")?;
    if let Some(signing) = signing {
        let credentials = signing.credentials.provide_credentials().await.map_err(|_| "no_credentials")?;
        // SigV4 for the CloudWatch OTLP traces endpoint: service `xray` ("OTLP Endpoints", CloudWatch user guide).
        crate::sigv4::sign_request(&mut request, &signing.region, "xray", &credentials).map_err(|_| "signing")?;
    }
    let request = reqwest::Request::try_from(request).map_err(|_| "request")?;
    let response = http.execute(request).await.map_err(|_| "transport")?;
    if response.status().is_success() { Ok(()) } else { Err("rejected") }
}

/// `Root=1-{8 hex epoch}-{24 hex}` → the 32 hex digits of the W3C trace id (X-Ray: "Using the W3C trace
/// format" in the X-Ray developer guide, trace id = epoch and unique parts concatenated).
fn xray_root_as_w3c(header: &str) -> Option<String> {
    let root = header.split(';').find_map(|part| part.trim().strip_prefix("Root="))?;
    let mut parts = root.split('-');
    let (Some("1"), Some(epoch), Some(unique), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let id = format!("{epoch}{unique}").to_ascii_lowercase();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// `Parent=<16 hex>`: the segment that invoked the function.
fn xray_parent(header: &str) -> Option<String> {
    let parent = header.split(';').find_map(|part| part.trim().strip_prefix("Parent="))?;
    (parent.len() == 16 && parent.bytes().all(|b| b.is_ascii_hexdigit())).then(|| parent.to_ascii_lowercase())
}

fn random_trace_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_root_becomes_the_w3c_trace_id() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(xray_root_as_w3c(header).as_deref(), Some("5759e988bd862e3fe1be46a994272793"));
        assert_eq!(xray_root_as_w3c("Root=2-5759e988-bd862e3fe1be46a994272793"), None);
        assert_eq!(xray_root_as_w3c("Parent=53995c3f42cd8ad8"), None);
        assert_eq!(xray_root_as_w3c("Root=1-zz59e988-bd862e3fe1be46a994272793"), None);
        let id = begin_trace(None, "r-1");
        assert_eq!(id.len(), 32);
        assert_eq!(current_trace_id(), Some(id));
    }

    #[test]
    fn the_caller_segment_is_read_from_the_header() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995C3F42CD8AD8;Sampled=1";
        assert_eq!(xray_parent(header).as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(xray_parent("Root=1-5759e988-bd862e3fe1be46a994272793"), None);
        assert_eq!(xray_parent("Parent=53995c3f42cd8ad"), None);
    }

    #[tokio::test]
    async fn a_shipment_to_aws_is_signed_for_xray_and_sent_as_otlp_json() {
        use wiremock::matchers::{header, method, path};
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("POST"))
            .and(path("/v1/traces"))
            .and(header("content-type", "application/json"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("{}"))
            .mount(&server)
            .await;
        let credentials = aws_credential_types::Credentials::from_keys("AKIDEXAMPLE", "secret", Some("token".into()));
        let signing =
            OtlpSigning { region: "us-east-1".into(), credentials: SharedCredentialsProvider::new(credentials) };
        let url = url::Url::parse(&format!("{}/v1/traces", server.uri())).unwrap();
        let body = br#"{"resourceSpans":[]}"#.to_vec();
        assert_eq!(post(&reqwest::Client::new(), &url, Some(&signing), body.clone()).await, Ok(()));
        let seen = &server.received_requests().await.unwrap()[0];
        let authorization = seen.headers.get("authorization").unwrap().to_str().unwrap();
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{authorization}");
        assert!(authorization.contains("/us-east-1/xray/aws4_request"), "{authorization}");
        assert!(seen.headers.get("x-amz-security-token").is_some());
        assert_eq!(seen.body, body);
        // An endpoint that refuses is reported, not raised.
        let refusing = wiremock::MockServer::start().await;
        wiremock::Mock::given(method("POST")).respond_with(wiremock::ResponseTemplate::new(403)).mount(&refusing).await;
        let url = url::Url::parse(&format!("{}/v1/traces", refusing.uri())).unwrap();
        assert_eq!(post(&reqwest::Client::new(), &url, None, body).await, Err("rejected"));
    }
}
