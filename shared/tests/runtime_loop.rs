//! The runtime loop against a fake Lambda Runtime API (wiremock).
//!
//! `lambda_runtime` builds its `Context` before any handler or layer runs and returns from its loop when
//! the client context is not a map of strings — which is what an AgentCore Gateway sends when propagated
//! headers arrive nested. The first test proves that failure; the second that our loop answers anyway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use shared::runtime::{Handler, Invocation, serve};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NESTED_CONTEXT: &str = r#"{"custom":{"bedrockAgentCoreToolName":"t___patient_summary","bedrockAgentCorePropagatedHeaders":{"X-Identity-Token":"abc"}}}"#;

#[test]
fn lambda_runtime_rejects_a_nested_client_context() {
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_static("r1"));
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_static("1"));
    headers.insert("lambda-runtime-client-context", HeaderValue::from_static(NESTED_CONTEXT));
    let config = Arc::new(lambda_runtime::Config::default());
    // In lambda_runtime 1.x this error is returned with `?` from the invocation loop: the process exits.
    assert!(lambda_runtime::Context::new("r1", config, &headers).is_err());
}

struct Echo;

impl Handler for Echo {
    async fn call(&self, invocation: Invocation) -> Value {
        json!({
            "request_id": invocation.request_id,
            "tool": invocation.client_context.as_ref().and_then(|c| c["custom"]["bedrockAgentCoreToolName"].as_str()).map(str::to_owned),
            "token": invocation.client_context.as_ref().and_then(|c| c["custom"]["bedrockAgentCorePropagatedHeaders"]["X-Identity-Token"].as_str()).map(str::to_owned),
            "payload": serde_json::from_slice::<Value>(&invocation.payload).ok(),
            "seconds_left": invocation.deadline.saturating_duration_since(std::time::Instant::now()).as_secs(),
        })
    }
}

#[tokio::test]
async fn our_loop_answers_a_nested_client_context_and_keeps_serving() {
    let api = MockServer::start().await;
    let deadline = (time::OffsetDateTime::now_utc().unix_timestamp() + 60) * 1000;
    Mock::given(method("GET"))
        .and(path("/2018-06-01/runtime/invocation/next"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("lambda-runtime-aws-request-id", "req-nested")
                .insert_header("lambda-runtime-deadline-ms", deadline.to_string().as_str())
                .insert_header("lambda-runtime-client-context", NESTED_CONTEXT)
                .set_body_json(json!({"patient_id": "p1"})),
        )
        .up_to_n_times(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/2018-06-01/runtime/invocation/next"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("lambda-runtime-aws-request-id", "req-plain")
                // cargo-lambda's emulator sends the timeout itself, not an epoch time.
                .insert_header("lambda-runtime-deadline-ms", "600000")
                .set_body_json(json!({"tool": "x"})),
        )
        .mount(&api)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(202)).mount(&api).await;

    let client =
        lambda_runtime_api_client::Client::builder().with_endpoint(api.uri().parse().unwrap()).build().unwrap();
    serve(&client, &Echo, Some(2)).await.unwrap();

    let posts: Vec<_> =
        api.received_requests().await.unwrap().into_iter().filter(|r| r.method.as_str() == "POST").collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].url.path(), "/2018-06-01/runtime/invocation/req-nested/response");
    let first: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(first["tool"], "t___patient_summary");
    assert_eq!(first["token"], "abc");
    assert_eq!(first["payload"]["patient_id"], "p1");
    assert!((55..=60).contains(&first["seconds_left"].as_u64().unwrap()), "{first}");
    assert_eq!(posts[1].url.path(), "/2018-06-01/runtime/invocation/req-plain/response");
    let second: Value = serde_json::from_slice(&posts[1].body).unwrap();
    assert!((590..=600).contains(&second["seconds_left"].as_u64().unwrap()), "{second}");
}
