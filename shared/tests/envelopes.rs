//! Every envelope shape, from the fixtures in `events/`, parsed and answered in its own format.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use serde_json::{Value, json};
use shared::ToolError;
use shared::envelope::{Envelope, EnvelopeSettings, EnvelopeSettingsError, ToolReply, parse, render};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../events/patient-summary/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn client_context(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn reply() -> Result<ToolReply, ToolError> {
    Ok(ToolReply { result: json!({"answer": 42}), text: "the answer".into() })
}

fn settings() -> EnvelopeSettings {
    EnvelopeSettings::default()
}

const PATIENT: &str = "fdc61ab3-9be9-412c-b470-dfa65cb5e6e6";

#[test]
fn direct_event() {
    let call = parse(&fixture("direct.json"), None, &settings()).unwrap();
    assert_eq!(call.envelope, Envelope::Direct);
    assert_eq!(call.tool, "patient_summary");
    assert_eq!(call.arguments["patient_id"], PATIENT);
    assert!(call.session_id.is_some() && call.identity_token.is_some());

    let ok = render(&call.envelope, &reply(), "req-1");
    assert_eq!(ok, json!({"ok": true, "result": {"answer": 42}, "text": "the answer", "request_id": "req-1"}));
    let err = render(&call.envelope, &Err(ToolError::Denied), "req-1");
    assert_eq!(err["ok"], false);
    assert_eq!(err["error"]["kind"], "denied");
}

#[test]
fn bedrock_openapi_event() {
    let call = parse(&fixture("bedrock-openapi.json"), None, &settings()).unwrap();
    assert_eq!(call.tool, "/patient-summary");
    assert_eq!(call.arguments["patient_id"], PATIENT);
    assert_eq!(call.session_id.as_deref(), Some("bedrock-session-7d1c2b3a"));
    assert_eq!(call.identity_token.as_deref(), Some("<minted>"));

    let ok = render(&call.envelope, &reply(), "req-1");
    assert_eq!(ok["messageVersion"], "1.0");
    assert_eq!(ok["response"]["actionGroup"], "clinical-tools");
    assert_eq!(ok["response"]["apiPath"], "/patient-summary");
    assert_eq!(ok["response"]["httpMethod"], "POST");
    assert_eq!(ok["response"]["httpStatusCode"], 200);
    let body: Value =
        serde_json::from_str(ok["response"]["responseBody"]["application/json"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["result"]["answer"], 42);
    assert_eq!(ok["sessionAttributes"]["identity_token"], "<minted>");
    assert_eq!(ok["promptSessionAttributes"], json!({}));

    // A denial is an answer the agent relays: 200 with the typed error, no responseState ("agents-lambda" does
    // not document what a 4xx does; API `ApiResult`: FAILURE fails InvokeAgent).
    let err = render(&call.envelope, &Err(ToolError::Denied), "req-1");
    assert_eq!(err["response"]["httpStatusCode"], 200);
    assert!(err["response"].get("responseState").is_none(), "{err}");
    let body: Value =
        serde_json::from_str(err["response"]["responseBody"]["application/json"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["kind"], "denied");
    let invalid = render(&call.envelope, &Err(ToolError::invalid("`patient_id` is missing")), "req-1");
    assert_eq!(invalid["response"]["responseState"], "REPROMPT");
    let down = render(&call.envelope, &Err(ToolError::UpstreamUnavailable), "req-1");
    assert_eq!(down["response"]["responseState"], "FAILURE");
    assert_eq!(down["response"]["httpStatusCode"], 503);
}

#[test]
fn bedrock_function_event() {
    let call = parse(&fixture("bedrock-function.json"), None, &settings()).unwrap();
    assert_eq!(call.tool, "patient_summary");
    assert_eq!(call.arguments["patient_id"], PATIENT);

    let ok = render(&call.envelope, &reply(), "req-1");
    assert_eq!(ok["response"]["function"], "patient_summary");
    assert!(ok["response"]["functionResponse"].get("responseState").is_none(), "omitted on success");
    let body: Value =
        serde_json::from_str(ok["response"]["functionResponse"]["responseBody"]["TEXT"]["body"].as_str().unwrap())
            .unwrap();
    assert_eq!(body["text"], "the answer");

    // FAILURE makes InvokeAgent throw DependencyFailedException (Bedrock guide "agents-lambda", API
    // `FunctionResult`): a denial, a missing record or a rejected sign-in must come back as a normal reply.
    for relayable in [ToolError::Denied, ToolError::NotFound, ToolError::Unauthenticated] {
        let reply = render(&call.envelope, &Err(relayable.clone()), "req-1");
        assert!(reply["response"]["functionResponse"].get("responseState").is_none(), "{relayable:?}: {reply}");
    }
    let invalid = render(&call.envelope, &Err(ToolError::invalid("`patient_id` is missing")), "req-1");
    assert_eq!(invalid["response"]["functionResponse"]["responseState"], "REPROMPT");
    for failure in [ToolError::UpstreamUnavailable, ToolError::Internal] {
        let reply = render(&call.envelope, &Err(failure.clone()), "req-1");
        assert_eq!(reply["response"]["functionResponse"]["responseState"], "FAILURE", "{failure:?}");
    }
}

#[test]
fn function_details_parameters_are_parsed_by_their_declared_type() {
    let mut event: Value = serde_json::from_slice(&fixture("bedrock-function.json")).unwrap();
    event["parameters"] = json!([
        {"name": "big", "type": "integer", "value": "9007199254740993"},
        {"name": "ratio", "type": "number", "value": "0.5"},
        {"name": "codes", "type": "array", "value": "[\"E11.9\", \"I10\"]"},
        {"name": "flag", "type": "boolean", "value": "true"},
        {"name": "bad", "type": "integer", "value": "twelve"},
    ]);
    let call = parse(event.to_string().as_bytes(), None, &settings()).unwrap();
    assert_eq!(call.arguments["big"], json!(9_007_199_254_740_993_i64), "no rounding through f64");
    assert_eq!(call.arguments["ratio"], json!(0.5));
    assert_eq!(call.arguments["codes"], json!(["E11.9", "I10"]));
    assert_eq!(call.arguments["flag"], json!(true));
    assert_eq!(call.arguments["bad"], json!("twelve"), "left as text for the argument check to report");
}

#[test]
fn gateway_header_names_follow_aws_rules() {
    // "Header propagation with Gateway": no X-Amz-/X-Amzn- names but the Runtime-Custom- prefix, no
    // Authorization or content headers.
    let with = |key: &'static str, value: &'static str| move |k: &str| (k == key).then(|| value.to_owned());
    for forbidden in ["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "X-Amz-Session", "Authorization", "Content-Type"] {
        let err = EnvelopeSettings::from_lookup(with("GATEWAY_SESSION_HEADER", forbidden)).err();
        assert_eq!(err, Some(EnvelopeSettingsError::ForbiddenHeader("GATEWAY_SESSION_HEADER")), "{forbidden}");
    }
    let custom = EnvelopeSettings::from_lookup(with(
        "GATEWAY_SESSION_HEADER",
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Session",
    ))
    .unwrap();
    assert_eq!(custom.session_header, "x-amzn-bedrock-agentcore-runtime-custom-session");
    assert!(EnvelopeSettings::from_lookup(with("GATEWAY_IDENTITY_HEADER", "x-session-id")).is_err(), "duplicate");
    assert!(EnvelopeSettings::from_lookup(with("GATEWAY_IDENTITY_HEADER", "bad header")).is_err());
    let defaults = EnvelopeSettings::from_lookup(|_| None).unwrap();
    assert_eq!(
        defaults.gateway_headers(),
        ["x-session-id", "x-identity-token", "x-break-glass", "x-clinician-signoff"]
    );
}

#[test]
fn a_deployment_accepts_only_its_envelopes() {
    let production = EnvelopeSettings::from_lookup(|k| {
        (k == "ACCEPTED_ENVELOPES").then(|| "bedrock_openapi,bedrock_function,agentcore_gateway".to_owned())
    })
    .unwrap();
    let direct = parse(&fixture("direct.json"), None, &production).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(direct.contains("does not accept the `direct` envelope"), "{direct}");
    assert!(parse(&fixture("bedrock-function.json"), None, &production).is_ok());
    assert!(EnvelopeSettings::from_lookup(|k| (k == "ACCEPTED_ENVELOPES").then(|| "smtp".to_owned())).is_err());
}

#[test]
fn a_propagated_header_over_4kb_did_not_come_through_a_gateway() {
    let mut context = client_context("gateway.client-context.json");
    context["custom"]["bedrockAgentCorePropagatedHeaders"]["X-Identity-Token"] = json!("a".repeat(4097));
    assert!(matches!(parse(&fixture("gateway.json"), Some(&context), &settings()), Err(ToolError::InvalidInput(_))));
}

#[test]
fn gateway_event_with_nested_propagated_headers() {
    let call =
        parse(&fixture("gateway.json"), Some(&client_context("gateway.client-context.json")), &settings()).unwrap();
    assert_eq!(call.envelope, Envelope::Gateway);
    assert_eq!(call.tool, "patient_summary", "target prefix stripped");
    assert_eq!(call.arguments["patient_id"], PATIENT);
    assert_eq!(call.session_id.as_deref(), Some("agentcore-session-3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7"));
    assert_eq!(call.identity_token.as_deref(), Some("<minted>"));

    let ok = render(&call.envelope, &reply(), "req-1");
    assert_eq!(ok["isError"], false);
    assert_eq!(ok["content"][0]["type"], "text");
    let text: Value = serde_json::from_str(ok["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["result"]["answer"], 42);
    let err = render(&call.envelope, &Err(ToolError::UpstreamUnavailable), "req-1");
    assert_eq!(err["isError"], true);
}

#[test]
fn gateway_event_with_stringified_propagated_headers() {
    let call = parse(&fixture("gateway.json"), Some(&client_context("gateway.client-context.flat.json")), &settings())
        .unwrap();
    assert_eq!(call.session_id.as_deref(), Some("agentcore-session-3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7"));
    assert_eq!(call.identity_token.as_deref(), Some("<minted>"));
}

#[test]
fn identity_in_tool_arguments_is_ignored() {
    // A model that writes a token, a session or a break-glass reason into the arguments changes nothing.
    let event =
        json!({"patient_id": PATIENT, "identity_token": "forged", "x-identity-token": "forged", "break_glass": "x"});
    let mut context = client_context("gateway.client-context.json");
    context["custom"]["bedrockAgentCorePropagatedHeaders"] = json!({});
    let call = parse(event.to_string().as_bytes(), Some(&context), &settings()).unwrap();
    assert_eq!(call.identity_token, None);
    assert_eq!(call.break_glass, None);

    let mut bedrock: Value = serde_json::from_slice(&fixture("bedrock-function.json")).unwrap();
    bedrock["sessionAttributes"] = json!({});
    bedrock["promptSessionAttributes"] = json!({"identity_token": "from the model"});
    bedrock["parameters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "identity_token", "type": "string", "value": "forged"}));
    let call = parse(bedrock.to_string().as_bytes(), None, &settings()).unwrap();
    assert_eq!(call.identity_token, None);
}

#[test]
fn unusable_events_are_invalid_input() {
    for bad in
        [&b"not json"[..], b"[1,2]", b"{\"hello\": 1}", b"{\"tool\": 5}", b"{\"tool\": \"x\", \"arguments\": []}"]
    {
        assert!(
            matches!(parse(bad, None, &settings()), Err(ToolError::InvalidInput(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_bedrock_sign_off_is_consumed_by_the_call_it_reaches() {
    // The function's reply sets the session's attributes ("agents-lambda"): the sign-off is left out of them, so
    // it cannot stay in the session for a later call; the identity and a break-glass grant stay.
    let mut event: Value = serde_json::from_slice(&fixture("bedrock-function.json")).unwrap();
    event["sessionAttributes"]["clinician_signoff"] = json!("{\"draft_id\": \"d1\"}");
    event["sessionAttributes"]["break_glass"] = json!("{\"patient_id\": \"p1\"}");
    let call = parse(event.to_string().as_bytes(), None, &settings()).unwrap();
    assert_eq!(call.signoff.as_deref(), Some("{\"draft_id\": \"d1\"}"));
    let reply = render(&call.envelope, &reply(), "req-1");
    assert!(reply["sessionAttributes"].get("clinician_signoff").is_none(), "{reply}");
    assert_eq!(reply["sessionAttributes"]["identity_token"], "<minted>");
    assert!(reply["sessionAttributes"].get("break_glass").is_some());
}
