//! A lean loop over the Lambda Runtime API.
//!
//! Why not `lambda_runtime::run`: it parses the client context into a map of strings before any handler
//! or layer runs, and returns from the loop when that fails, so an AgentCore Gateway invocation whose
//! propagated headers arrive as a nested object ends the process (Runtime.ExitError) instead of being
//! answered. This loop keeps the client context as raw JSON and leaves its interpretation to the envelope
//! parser. Transport is the runtime's own `lambda_runtime_api_client`.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use lambda_runtime_api_client::Client;
use lambda_runtime_api_client::body::Body;
use tracing::{error, warn};

use crate::session::deadline_from_epoch_ms;

const API_PREFIX: &str = "/2018-06-01/runtime";
/// Epoch milliseconds of 2001-09-09: a deadline below it cannot be a wall-clock time, so it is taken as a
/// duration from now.
const RELATIVE_DEADLINE_BELOW_MS: u64 = 1_000_000_000_000;

/// One invocation as the runtime API delivered it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub deadline: Instant,
    pub payload: Bytes,
    /// The `Lambda-Runtime-Client-Context` header as JSON, whatever its shape.
    pub client_context: Option<serde_json::Value>,
    /// The `Lambda-Runtime-Trace-Id` header (X-Ray `Root=…`), when the runtime sent one.
    pub trace_header: Option<String>,
}

/// A tool's entry point: always answers with a JSON reply, errors included (they are rendered in the
/// caller's envelope, not raised to the runtime).
pub trait Handler {
    fn call(&self, invocation: Invocation) -> impl Future<Output = serde_json::Value>;
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("AWS_LAMBDA_RUNTIME_API is not set or not a valid authority")]
    NoRuntimeApi,
    #[error("the runtime api could not be reached")]
    Transport,
    #[error("the runtime api answered with status {0}")]
    Status(u16),
}

/// A client for the runtime API named by `AWS_LAMBDA_RUNTIME_API`.
pub fn client_from_env() -> Result<Client, RuntimeError> {
    let raw = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| RuntimeError::NoRuntimeApi)?;
    Client::builder().with_endpoint(runtime_api_uri(&raw)?).build().map_err(|_| RuntimeError::NoRuntimeApi)
}

/// Lambda sets a bare `host:port`; cargo-lambda's emulator sets a full URL with a per-function path.
fn runtime_api_uri(raw: &str) -> Result<http::Uri, RuntimeError> {
    let url = if raw.starts_with("http://") || raw.starts_with("https://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let uri: http::Uri = url.parse().map_err(|_| RuntimeError::NoRuntimeApi)?;
    if uri.authority().is_none() {
        return Err(RuntimeError::NoRuntimeApi);
    }
    Ok(uri)
}

/// Serves invocations until the runtime API fails, or until `limit` invocations when given (tests, benches).
pub async fn serve<H: Handler>(client: &Client, handler: &H, limit: Option<usize>) -> Result<(), RuntimeError> {
    let mut served = 0;
    while limit.is_none_or(|l| served < l) {
        let Some(invocation) = next(client).await? else { continue };
        let request_id = invocation.request_id.clone();
        let reply = handler.call(invocation).await;
        let body = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec());
        let path = format!("{API_PREFIX}/invocation/{request_id}/response");
        if let Err(e) = post(client, &path, body).await {
            // The invocation is lost either way; the loop must go on serving the next one.
            error!(error = %e, "reply could not be posted to the runtime api");
        }
        // After the reply, before the next poll: the caller never waits for the spans, and Lambda does not
        // freeze the instance until it asks for the next invocation.
        crate::telemetry::ship().await;
        served += 1;
    }
    Ok(())
}

/// Tells the runtime API that initialisation failed (invalid policies, bad configuration): the function
/// refuses to start rather than serve with a broken guard.
pub async fn report_init_error(client: &Client, error_type: &str, message: &str) -> Result<(), RuntimeError> {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    post(client, &format!("{API_PREFIX}/init/error"), serde_json::to_vec(&body).unwrap_or_default()).await
}

async fn next(client: &Client) -> Result<Option<Invocation>, RuntimeError> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("{API_PREFIX}/invocation/next"))
        .body(Body::empty())
        .map_err(|_| RuntimeError::Transport)?;
    let response = client.call(request).await.map_err(|_| RuntimeError::Transport)?;
    // cargo-lambda's emulator answers 204 to keep an idle function polling.
    if response.status() == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(RuntimeError::Status(response.status().as_u16()));
    }
    let (parts, body) = response.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = header("lambda-runtime-aws-request-id").ok_or(RuntimeError::Status(parts.status.as_u16()))?;
    let deadline_ms = header("lambda-runtime-deadline-ms").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let deadline = if deadline_ms < RELATIVE_DEADLINE_BELOW_MS {
        // cargo-lambda's emulator sends the function timeout (e.g. 600000) rather than an epoch time.
        Instant::now() + Duration::from_millis(deadline_ms)
    } else {
        deadline_from_epoch_ms(deadline_ms)
    };
    let client_context = header("lambda-runtime-client-context").filter(|raw| !raw.is_empty()).and_then(|raw| {
        let parsed = client_context_json(&raw);
        if parsed.is_none() {
            warn!("client context is neither json nor base64 json; ignored");
        }
        parsed
    });
    let trace_header = header("lambda-runtime-trace-id");
    let payload = body.collect().await.map_err(|_| RuntimeError::Transport)?.to_bytes();
    Ok(Some(Invocation { request_id, deadline, payload, client_context, trace_header }))
}

/// Lambda hands the client context over as JSON; cargo-lambda's emulator passes on the base64 form the
/// Invoke API takes. Both are accepted.
fn client_context_json(raw: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    serde_json::from_str(raw).ok().or_else(|| {
        let decoded = base64::engine::general_purpose::STANDARD.decode(raw.trim()).ok()?;
        serde_json::from_slice(&decoded).ok()
    })
}

async fn post(client: &Client, path: &str, body: Vec<u8>) -> Result<(), RuntimeError> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .map_err(|_| RuntimeError::Transport)?;
    let response = client.call(request).await.map_err(|_| RuntimeError::Transport)?;
    if response.status().is_success() { Ok(()) } else { Err(RuntimeError::Status(response.status().as_u16())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_address_with_or_without_scheme() {
        assert_eq!(
            runtime_api_uri("127.0.0.1:9001").map(|u| u.to_string()).ok().as_deref(),
            Some("http://127.0.0.1:9001/")
        );
        let emulator = runtime_api_uri("http://127.0.0.1:9000/.rt/patient-summary").ok();
        assert_eq!(emulator.map(|u| u.path().to_owned()).as_deref(), Some("/.rt/patient-summary"));
        assert!(runtime_api_uri("").is_err());
    }

    #[test]
    fn client_context_as_json_or_base64_json() {
        let json = r#"{"custom":{"a":{"b":"c"}}}"#;
        let b64 = "eyJjdXN0b20iOnsiYSI6eyJiIjoiYyJ9fX0=";
        assert_eq!(client_context_json(json), client_context_json(b64));
        assert_eq!(client_context_json(json).map(|v| v["custom"]["a"]["b"].clone()), Some("c".into()));
        assert_eq!(client_context_json("not json"), None);
    }
}
