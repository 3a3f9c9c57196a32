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
/// Session attribute (Bedrock) holding a break-glass grant the front end set after the clinician asked.
pub const BREAK_GLASS_ATTRIBUTE: &str = "break_glass";
/// Session attribute (Bedrock) holding a clinician's sign-off the front end set after the clinician acted.
pub const SIGNOFF_ATTRIBUTE: &str = "clinician_signoff";

/// Default Gateway header names. AWS lets a Gateway target allow-list at most 10 request headers, none
/// starting with `X-Amz-` or `X-Amzn-` (but the `X-Amzn-Bedrock-AgentCore-Runtime-Custom-` prefix), values at
/// most 4 KB (AgentCore developer guide, "Header propagation with Gateway"; API `MetadataConfiguration`).
pub const DEFAULT_SESSION_HEADER: &str = "x-session-id";
pub const DEFAULT_IDENTITY_HEADER: &str = "x-identity-token";
pub const DEFAULT_BREAK_GLASS_HEADER: &str = "x-break-glass";
pub const DEFAULT_SIGNOFF_HEADER: &str = "x-clinician-signoff";
/// The largest header value the Gateway propagates.
pub const GATEWAY_HEADER_VALUE_MAX: usize = 4096;

/// The envelopes a deployment accepts, and the Gateway header names it reads. Read once at cold start;
/// a header name AWS cannot allow-list refuses the start, so a deployment never waits for a header that
/// can never arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSettings {
    pub accepted: Vec<EnvelopeKind>,
    pub session_header: String,
    pub identity_header: String,
    pub break_glass_header: String,
    pub signoff_header: String,
}

/// The kinds of envelope, by the names `ACCEPTED_ENVELOPES` and the audit record use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    BedrockOpenApi,
    BedrockFunction,
    Gateway,
    Direct,
}

impl EnvelopeKind {
    pub const ALL: [Self; 4] = [Self::BedrockOpenApi, Self::BedrockFunction, Self::Gateway, Self::Direct];

    pub const fn name(self) -> &'static str {
        match self {
            Self::BedrockOpenApi => "bedrock_openapi",
            Self::BedrockFunction => "bedrock_function",
            Self::Gateway => "agentcore_gateway",
            Self::Direct => "direct",
        }
    }
}

/// Why envelope settings were refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeSettingsError {
    #[error(
        "`ACCEPTED_ENVELOPES` names an unknown envelope (known: bedrock_openapi, bedrock_function, agentcore_gateway, direct)"
    )]
    UnknownEnvelope,
    #[error("`ACCEPTED_ENVELOPES` is empty")]
    NoEnvelope,
    #[error(
        "`{0}` names a header an AgentCore Gateway cannot propagate (names starting `X-Amz-`/`X-Amzn-` other than `X-Amzn-Bedrock-AgentCore-Runtime-Custom-…`, and Authorization, content, caching and connection headers, cannot be allow-listed)"
    )]
    ForbiddenHeader(&'static str),
    #[error("`{0}` is not a valid HTTP header name")]
    InvalidHeader(&'static str),
    #[error("two Gateway header settings name the same header")]
    DuplicateHeader,
}

impl Default for EnvelopeSettings {
    /// Every envelope and the default header names: tests and the local stack.
    fn default() -> Self {
        Self {
            accepted: EnvelopeKind::ALL.to_vec(),
            session_header: DEFAULT_SESSION_HEADER.to_owned(),
            identity_header: DEFAULT_IDENTITY_HEADER.to_owned(),
            break_glass_header: DEFAULT_BREAK_GLASS_HEADER.to_owned(),
            signoff_header: DEFAULT_SIGNOFF_HEADER.to_owned(),
        }
    }
}

impl EnvelopeSettings {
    /// `ACCEPTED_ENVELOPES` (comma list; all when unset) and `GATEWAY_SESSION_HEADER`,
    /// `GATEWAY_IDENTITY_HEADER`, `GATEWAY_BREAK_GLASS_HEADER`, `GATEWAY_SIGNOFF_HEADER`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, EnvelopeSettingsError> {
        let get = |key: &str| get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let accepted = match get("ACCEPTED_ENVELOPES") {
            None => EnvelopeKind::ALL.to_vec(),
            Some(list) => {
                let mut kinds = Vec::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let kind = EnvelopeKind::ALL
                        .into_iter()
                        .find(|k| k.name() == name)
                        .ok_or(EnvelopeSettingsError::UnknownEnvelope)?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                if kinds.is_empty() {
                    return Err(EnvelopeSettingsError::NoEnvelope);
                }
                kinds
            }
        };
        let header = |key: &'static str, default: &str| -> Result<String, EnvelopeSettingsError> {
            let name = get(key).unwrap_or_else(|| default.to_owned()).to_ascii_lowercase();
            check_gateway_header(key, &name)?;
            Ok(name)
        };
        let settings = Self {
            accepted,
            session_header: header("GATEWAY_SESSION_HEADER", DEFAULT_SESSION_HEADER)?,
            identity_header: header("GATEWAY_IDENTITY_HEADER", DEFAULT_IDENTITY_HEADER)?,
            break_glass_header: header("GATEWAY_BREAK_GLASS_HEADER", DEFAULT_BREAK_GLASS_HEADER)?,
            signoff_header: header("GATEWAY_SIGNOFF_HEADER", DEFAULT_SIGNOFF_HEADER)?,
        };
        let names = settings.gateway_headers();
        if names.iter().enumerate().any(|(i, n)| names[..i].contains(n)) {
            return Err(EnvelopeSettingsError::DuplicateHeader);
        }
        Ok(settings)
    }

    /// The request headers a Gateway target must allow-list for these tools.
    pub fn gateway_headers(&self) -> [&str; 4] {
        [&self.session_header, &self.identity_header, &self.break_glass_header, &self.signoff_header]
    }

    fn accepts(&self, kind: EnvelopeKind) -> bool {
        self.accepted.contains(&kind)
    }
}

/// AWS's naming rules for propagated headers ("Header propagation with Gateway").
fn check_gateway_header(key: &'static str, name: &str) -> Result<(), EnvelopeSettingsError> {
    let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(EnvelopeSettingsError::InvalidHeader(key));
    }
    const CUSTOM: &str = "x-amzn-bedrock-agentcore-runtime-custom-";
    let reserved_prefix = (name.starts_with("x-amz-") || name.starts_with("x-amzn-"))
        && !(name.starts_with(CUSTOM) && name.len() > CUSTOM.len());
    const RESERVED: &[&str] = &[
        "authorization",
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "cache-control",
        "pragma",
        "expires",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "cookie",
        "set-cookie",
    ];
    if reserved_prefix || name.starts_with("content-") || RESERVED.contains(&name) {
        return Err(EnvelopeSettingsError::ForbiddenHeader(key));
    }
    Ok(())
}

/// Which envelope a call came in, with what its reply must echo.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    BedrockOpenApi { action_group: String, api_path: String, http_method: String, echo: SessionEcho },
    BedrockFunction { action_group: String, function: String, echo: SessionEcho },
    Gateway,
    Direct,
}

impl Envelope {
    pub fn kind(&self) -> EnvelopeKind {
        match self {
            Self::BedrockOpenApi { .. } => EnvelopeKind::BedrockOpenApi,
            Self::BedrockFunction { .. } => EnvelopeKind::BedrockFunction,
            Self::Gateway => EnvelopeKind::Gateway,
            Self::Direct => EnvelopeKind::Direct,
        }
    }

    /// The envelope's name in audit records.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
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
    /// A break-glass grant from the front end (raw JSON; the tool checks it).
    pub break_glass: Option<String>,
    /// A clinician's sign-off from the front end (raw; the tool checks it).
    pub signoff: Option<String>,
}

/// What a tool returns on success: structured JSON for the agent and a short text rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolReply {
    pub result: Value,
    pub text: String,
}

/// Reads an invocation. A payload that fits no envelope comes back as an error to render as a direct reply.
///
/// The envelope is told apart by what only it has: a Gateway call by the tool name in the client context,
/// a Bedrock Agent call by `messageVersion` and `actionGroup`, a direct call by `tool`. An envelope the
/// deployment does not accept is refused before anything in it is used.
pub fn parse(
    payload: &[u8],
    client_context: Option<&Value>,
    settings: &EnvelopeSettings,
) -> Result<ToolCall, ToolError> {
    let event: Value =
        serde_json::from_slice(payload).map_err(|_| ToolError::invalid("the event is not valid json"))?;
    let Value::Object(mut event) = event else {
        return Err(ToolError::invalid("the event must be a json object"));
    };
    let refuse = |kind: EnvelopeKind| {
        ToolError::invalid(format!("this deployment does not accept the `{}` envelope", kind.name()))
    };
    if let Some(tool) = client_context.and_then(gateway_tool_name) {
        if !settings.accepts(EnvelopeKind::Gateway) {
            return Err(refuse(EnvelopeKind::Gateway));
        }
        return parse_gateway(tool, event, client_context, settings);
    }
    if event.contains_key("messageVersion") && event.contains_key("actionGroup") {
        let call = parse_bedrock(event)?;
        let kind = call.envelope.kind();
        return if settings.accepts(kind) { Ok(call) } else { Err(refuse(kind)) };
    }
    if event.contains_key("tool") {
        if !settings.accepts(EnvelopeKind::Direct) {
            return Err(refuse(EnvelopeKind::Direct));
        }
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
            break_glass: take_json_text(&mut event, "break_glass"),
            signoff: take_json_text(&mut event, "clinician_signoff"),
        });
    }
    Err(ToolError::invalid("the event matches no known envelope"))
}

fn gateway_tool_name(client_context: &Value) -> Option<String> {
    let raw = client_context.get("custom")?.get("bedrockAgentCoreToolName")?.as_str()?;
    // `<target>___<tool>`: the target prefix is the Gateway's, not the tool's.
    Some(raw.split_once("___").map_or(raw, |(_, tool)| tool).to_owned())
}

fn parse_gateway(
    tool: String,
    arguments: Map<String, Value>,
    client_context: Option<&Value>,
    settings: &EnvelopeSettings,
) -> Result<ToolCall, ToolError> {
    let headers = client_context.and_then(|c| c.get("custom")).map(propagated_headers).unwrap_or_default();
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    if headers.iter().any(|(_, v)| v.len() > GATEWAY_HEADER_VALUE_MAX) {
        // The Gateway never propagates a longer value, so this one did not come through it.
        return Err(ToolError::invalid("a propagated header value is longer than 4 KB"));
    }
    Ok(ToolCall {
        envelope: Envelope::Gateway,
        tool,
        arguments,
        session_id: header(&settings.session_header),
        identity_token: header(&settings.identity_header),
        break_glass: header(&settings.break_glass_header),
        signoff: header(&settings.signoff_header),
    })
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
    let break_glass = attribute(BREAK_GLASS_ATTRIBUTE);
    let signoff = attribute(SIGNOFF_ATTRIBUTE);
    // The reply's session attributes become the session's ("agents-lambda": the function may modify them). A
    // sign-off is for one call, so it is consumed: the reply leaves it out and it cannot linger in the session.
    let mut echoed = session_attributes.clone();
    if let Some(attributes) = echoed.as_object_mut() {
        attributes.remove(SIGNOFF_ATTRIBUTE);
    }
    let echo = SessionEcho { session_attributes: echoed, prompt_session_attributes };
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
    Ok(ToolCall { envelope, tool, arguments, session_id, identity_token, break_glass, signoff })
}

/// Bedrock sends every parameter as `{name, type, value}` with the value as a string ("agents-lambda"). Each
/// is parsed by its declared type: integers as integers (not through `f64`, which rounds above 2^53), numbers
/// as numbers, booleans, and arrays from their JSON text. A value that does not parse as its type stays a
/// string, so the argument check reports the field instead of a wrong value passing silently.
fn collect_parameters(list: Option<&Value>, into: &mut Map<String, Value>) {
    let Some(Value::Array(items)) = list else { return };
    for item in items {
        let (Some(name), Some(value)) = (item.get("name").and_then(Value::as_str), item.get("value")) else { continue };
        let typed = match (item.get("type").and_then(Value::as_str), value.as_str()) {
            (Some("integer"), Some(raw)) => raw
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| raw.trim().parse::<u64>().ok().map(Value::from)),
            (Some("number"), Some(raw)) => {
                raw.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
            }
            (Some("boolean"), Some(raw)) => raw.trim().parse::<bool>().ok().map(Value::Bool),
            (Some("array"), Some(raw)) => serde_json::from_str::<Value>(raw).ok().filter(Value::is_array),
            _ => None,
        };
        into.insert(name.to_owned(), typed.unwrap_or_else(|| value.clone()));
    }
}

/// A channel value of the direct event: a JSON object (kept as its text, as the other envelopes carry it) or
/// a string.
fn take_json_text(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(object @ Value::Object(_)) => Some(object.to_string()),
        _ => None,
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
            // What a 4xx `httpStatusCode` does to the agent is not documented ("agents-lambda"); a 200 with a
            // typed error body is read by the model like any answer, so it can tell the clinician why.
            // `responseState` (API `ApiResult`) asks for a retry on invalid input; FAILURE ends InvokeAgent
            // with DependencyFailedException and is kept for real failures.
            let (status, state, body) = match outcome {
                Ok(reply) => (200, None, reply_json(reply)),
                Err(e) => {
                    let state = bedrock_state(e);
                    let status = if state == Some("FAILURE") { e.http_status() } else { 200 };
                    (status, state, json!({ "error": error_body(e, request_id) }))
                }
            };
            let mut response = json!({
                "actionGroup": action_group, "apiPath": api_path, "httpMethod": http_method, "httpStatusCode": status,
                "responseBody": { "application/json": { "body": body.to_string() } }
            });
            if let (Some(state), Some(map)) = (state, response.as_object_mut()) {
                map.insert("responseState".into(), state.into());
            }
            json!({
                "messageVersion": "1.0",
                "response": response,
                "sessionAttributes": echo.session_attributes,
                "promptSessionAttributes": echo.prompt_session_attributes,
            })
        }
        Envelope::BedrockFunction { action_group, function, echo } => {
            let mut function_response = serde_json::Map::new();
            let body = match outcome {
                Ok(reply) => reply_json(reply).to_string(),
                Err(e) => {
                    if let Some(state) = bedrock_state(e) {
                        function_response.insert("responseState".into(), state.into());
                    }
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

/// The Bedrock `responseState` of an error ("agents-lambda", API `FunctionResult`): invalid input is the
/// model's to fix (`REPROMPT`); a denial, a missing record or a rejected sign-in is an answer the agent
/// must be able to relay (no state); only internal and upstream failures are `FAILURE`, which makes
/// InvokeAgent fail with `DependencyFailedException`.
fn bedrock_state(error: &ToolError) -> Option<&'static str> {
    match error {
        ToolError::InvalidInput(_) => Some("REPROMPT"),
        ToolError::Denied | ToolError::NotFound | ToolError::Unauthenticated => None,
        ToolError::UpstreamUnavailable | ToolError::Internal => Some("FAILURE"),
    }
}

fn reply_json(reply: &ToolReply) -> Value {
    json!({ "result": reply.result, "text": reply.text })
}
