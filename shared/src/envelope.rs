//! How tool calls arrive and how replies must look: Bedrock Agent action groups (OpenAPI and
//! function-details), AgentCore Gateway Lambda targets, and our direct invocation (see `ENVELOPES.md`).
//!
//! Identity, session id and break-glass reason are read only from channels the model cannot write:
//! Bedrock `sessionAttributes` (set by the application calling InvokeAgent), Gateway propagated headers
//! (allow-listed by the target configuration), or the direct event. Tool arguments never carry them.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, ToolError};

/// Session attribute (Bedrock) holding the caller's JWT.
pub const IDENTITY_ATTRIBUTE: &str = "identity_token";
/// Session attribute (Bedrock) holding a break-glass reason the clinician typed in the front end.
pub const BREAK_GLASS_ATTRIBUTE: &str = "break_glass_reason";
/// Propagated header (Gateway) holding the caller's JWT; `Authorization` itself cannot be allow-listed.
pub const IDENTITY_HEADER: &str = "x-identity-token";
/// Propagated header (Gateway) holding a break-glass reason.
pub const BREAK_GLASS_HEADER: &str = "x-break-glass-reason";
/// The AgentCore Runtime session header, propagated to the Gateway target.
pub const AGENTCORE_SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

/// Which envelope a call came in, with what its reply must echo.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    BedrockOpenApi { action_group: String, api_path: String, http_method: String, echo: SessionEcho },
    BedrockFunction { action_group: String, function: String, echo: SessionEcho },
    Gateway,
    Direct,
}

/// Bedrock replies hand the session attributes back unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionEcho {
    pub session_attributes: Value,
    pub prompt_session_attributes: Value,
}

/// A tool call, whatever envelope it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub envelope: Envelope,
    /// The tool asked for: an OpenAPI path, a function name, a Gateway tool name without its target
    /// prefix, or the direct event's `tool`.
    pub tool: String,
    pub arguments: Map<String, Value>,
    /// Raw, not yet validated.
    pub session_id: Option<String>,
    pub identity_token: Option<String>,
    pub break_glass_reason: Option<String>,
}

/// What a tool returns on success: structured JSON for the agent and a short text rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolReply {
    pub result: Value,
    pub text: String,
}

/// Reads an invocation. A payload that fits no envelope comes back as an error to render as a direct reply.
pub fn parse(payload: &[u8], client_context: Option<&Value>) -> Result<ToolCall, ToolError> {
    let event: Value =
        serde_json::from_slice(payload).map_err(|_| ToolError::invalid("the event is not valid json"))?;
    let Value::Object(mut event) = event else {
        return Err(ToolError::invalid("the event must be a json object"));
    };
    if let Some(tool) = client_context.and_then(gateway_tool_name) {
        return Ok(parse_gateway(tool, event, client_context));
    }
    if event.contains_key("messageVersion") && event.contains_key("actionGroup") {
        return parse_bedrock(event);
    }
    if event.contains_key("tool") {
        let tool = take_string(&mut event, "tool").ok_or_else(|| ToolError::invalid("`tool` must be a string"))?;
        let arguments = match event.remove("arguments") {
            Some(Value::Object(args)) => args,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(ToolError::invalid("`arguments` must be an object")),
        };
        return Ok(ToolCall {
            envelope: Envelope::Direct,
            tool,
            arguments,
            session_id: take_string(&mut event, "session_id"),
            identity_token: take_string(&mut event, "identity_token"),
            break_glass_reason: take_string(&mut event, "break_glass_reason"),
        });
    }
    Err(ToolError::invalid("the event matches no known envelope"))
}

fn gateway_tool_name(client_context: &Value) -> Option<String> {
    let raw = client_context.get("custom")?.get("bedrockAgentCoreToolName")?.as_str()?;
    // `<target>___<tool>`: the target prefix is the Gateway's, not the tool's.
    Some(raw.split_once("___").map_or(raw, |(_, tool)| tool).to_owned())
}

fn parse_gateway(tool: String, arguments: Map<String, Value>, client_context: Option<&Value>) -> ToolCall {
    let headers = client_context.and_then(|c| c.get("custom")).map(propagated_headers).unwrap_or_default();
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    ToolCall {
        envelope: Envelope::Gateway,
        tool,
        arguments,
        session_id: header(AGENTCORE_SESSION_HEADER),
        identity_token: header(IDENTITY_HEADER),
        break_glass_reason: header(BREAK_GLASS_HEADER),
    }
}

/// Propagated headers arrive as a nested object, as a JSON string of one, or flattened into `custom`.
fn propagated_headers(custom: &Value) -> Vec<(String, String)> {
    let nested = match custom.get("bedrockAgentCorePropagatedHeaders") {
        Some(Value::Object(map)) => Some(map.clone()),
        Some(Value::String(raw)) => serde_json::from_str::<Map<String, Value>>(raw).ok(),
        _ => None,
    };
    let flat = custom.as_object().cloned().unwrap_or_default();
    nested
        .into_iter()
        .flatten()
        .chain(flat)
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Array(items) => items.first().and_then(Value::as_str).map(|s| (k, s.to_owned())),
            _ => None,
        })
        .collect()
}

fn parse_bedrock(mut event: Map<String, Value>) -> Result<ToolCall, ToolError> {
    let action_group = take_string(&mut event, "actionGroup").unwrap_or_default();
    let session_attributes = event.remove("sessionAttributes").unwrap_or_else(|| json!({}));
    let prompt_session_attributes = event.remove("promptSessionAttributes").unwrap_or_else(|| json!({}));
    let attribute = |name: &str| session_attributes.get(name).and_then(Value::as_str).map(str::to_owned);
    let identity_token = attribute(IDENTITY_ATTRIBUTE);
    let break_glass_reason = attribute(BREAK_GLASS_ATTRIBUTE);
    let echo = SessionEcho { session_attributes: session_attributes.clone(), prompt_session_attributes };
    let session_id = take_string(&mut event, "sessionId");

    let mut arguments = Map::new();
    collect_parameters(event.get("parameters"), &mut arguments);
    let body_properties = event
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(|c| c.get("application/json"))
        .and_then(|j| j.get("properties"));
    collect_parameters(body_properties, &mut arguments);

    let (envelope, tool) = match (take_string(&mut event, "function"), take_string(&mut event, "apiPath")) {
        (Some(function), _) => (Envelope::BedrockFunction { action_group, function: function.clone(), echo }, function),
        (None, Some(api_path)) => {
            let http_method = take_string(&mut event, "httpMethod").unwrap_or_else(|| "POST".to_owned());
            (Envelope::BedrockOpenApi { action_group, api_path: api_path.clone(), http_method, echo }, api_path)
        }
        (None, None) => {
            return Err(ToolError::invalid("the bedrock agent event names neither `function` nor `apiPath`"));
        }
    };
    Ok(ToolCall { envelope, tool, arguments, session_id, identity_token, break_glass_reason })
}

/// Bedrock sends every parameter as `{name, type, value}` with the value as a string.
fn collect_parameters(list: Option<&Value>, into: &mut Map<String, Value>) {
    let Some(Value::Array(items)) = list else { return };
    for item in items {
        let (Some(name), Some(value)) = (item.get("name").and_then(Value::as_str), item.get("value")) else { continue };
        let typed = match (item.get("type").and_then(Value::as_str), value.as_str()) {
            (Some("integer" | "number"), Some(raw)) => {
                raw.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
            }
            (Some("boolean"), Some(raw)) => raw.parse::<bool>().ok().map(Value::Bool),
            _ => None,
        };
        into.insert(name.to_owned(), typed.unwrap_or_else(|| value.clone()));
    }
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: ErrorKind,
    message: String,
    retryable: bool,
    request_id: &'a str,
}

fn error_body<'a>(error: &ToolError, request_id: &'a str) -> ErrorBody<'a> {
    ErrorBody { kind: error.kind(), message: error.to_string(), retryable: error.should_retry(), request_id }
}

/// Renders a tool's outcome in the envelope the call came in.
pub fn render(envelope: &Envelope, outcome: &Result<ToolReply, ToolError>, request_id: &str) -> Value {
    match envelope {
        Envelope::Direct => match outcome {
            Ok(reply) => json!({ "ok": true, "result": reply.result, "text": reply.text, "request_id": request_id }),
            Err(e) => json!({ "ok": false, "error": error_body(e, request_id) }),
        },
        Envelope::Gateway => {
            let (text, is_error, structured) = match outcome {
                Ok(reply) => (reply_json(reply).to_string(), false, reply.result.clone()),
                Err(e) => {
                    let body = json!({ "error": error_body(e, request_id) });
                    (body.to_string(), true, body)
                }
            };
            json!({ "content": [{ "type": "text", "text": text }], "structuredContent": structured, "isError": is_error })
        }
        Envelope::BedrockOpenApi { action_group, api_path, http_method, echo } => {
            let (status, body) = match outcome {
                Ok(reply) => (200, reply_json(reply)),
                Err(e) => (e.http_status(), json!({ "error": error_body(e, request_id) })),
            };
            json!({
                "messageVersion": "1.0",
                "response": {
                    "actionGroup": action_group, "apiPath": api_path, "httpMethod": http_method, "httpStatusCode": status,
                    "responseBody": { "application/json": { "body": body.to_string() } }
                },
                "sessionAttributes": echo.session_attributes,
                "promptSessionAttributes": echo.prompt_session_attributes,
            })
        }
        Envelope::BedrockFunction { action_group, function, echo } => {
            let mut function_response = serde_json::Map::new();
            let body = match outcome {
                Ok(reply) => reply_json(reply).to_string(),
                Err(e) => {
                    // Invalid input is the model's to fix: ask it to try again; anything else is a failure.
                    let state = if matches!(e, ToolError::InvalidInput(_)) { "REPROMPT" } else { "FAILURE" };
                    function_response.insert("responseState".into(), state.into());
                    json!({ "error": error_body(e, request_id) }).to_string()
                }
            };
            function_response.insert("responseBody".into(), json!({ "TEXT": { "body": body } }));
            json!({
                "messageVersion": "1.0",
                "response": { "actionGroup": action_group, "function": function, "functionResponse": function_response },
                "sessionAttributes": echo.session_attributes,
                "promptSessionAttributes": echo.prompt_session_attributes,
            })
        }
    }
}

fn reply_json(reply: &ToolReply) -> Value {
    json!({ "result": reply.result, "text": reply.text })
}
