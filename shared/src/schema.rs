//! Tool schemas generated from the Rust input/output types, rendered for the two ways an agent reaches a tool:
//! an OpenAPI 3.0 document for a Bedrock Agent action group, and MCP tool definitions for an AgentCore Gateway
//! Lambda target. The rendered files live in `schemas/` and a test (`tests/tests/tool_schemas.rs`) fails when
//! they drift from the code, so nobody maintains a schema by hand.
//!
//! # Adding a tool
//!
//! 1. Derive `Deserialize` and `schemars::JsonSchema` on the tool's input type, with
//!    `#[serde(deny_unknown_fields)]` (the model must not invent arguments) and a doc comment on every field
//!    (it becomes the description the model reads).
//! 2. In the tool crate's lib: `pub fn tool_schemas() -> Vec<ToolSchema>` returning
//!    `ToolSchema::new::<Input>("tool_name", "what it does, for the model")` (`.with_output::<Output>()` when
//!    the output type derives `JsonSchema`).
//! 3. One line in the `TOOLS` table of `tests/tests/tool_schemas.rs` (plus the crate as a dev-dependency of
//!    `tests`), then `UPDATE_SCHEMAS=1 cargo test -p e2e --test tool_schemas` writes the files.
//!
//! Both renderers take the same schema and drop what their target does not accept: Bedrock's OpenAPI 3.0 has
//! no type arrays (`nullable` instead) and no `const`; the Gateway's tool schema knows only `type`,
//! `properties`, `required`, `items` and `description`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

pub use schemars;

/// One tool as an agent sees it.
#[derive(Debug, Clone)]
pub struct ToolSchema {
    /// Tool name: the Gateway tool name and, with a leading `/`, the OpenAPI path.
    pub name: String,
    /// What the tool does and when to use it, written for the model.
    pub description: String,
    pub input: Schema,
    pub output: Option<Schema>,
    /// A Bedrock Agent asks the user to confirm before invoking it (`x-requireConfirmation` /
    /// `requireConfirmation`; Bedrock guide "Get user confirmation before invoking action group function").
    pub require_confirmation: bool,
}

impl ToolSchema {
    /// The schema of a tool taking `I`.
    pub fn new<I: JsonSchema>(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            input: schema_of::<I>(),
            output: None,
            require_confirmation: false,
        }
    }

    /// The same tool, confirmed by the user before a Bedrock Agent invokes it.
    #[must_use]
    pub fn confirmed(mut self, require: bool) -> Self {
        self.require_confirmation = require;
        self
    }

    /// The same tool, declaring its output as `O`.
    #[must_use]
    pub fn with_output<O: JsonSchema>(mut self) -> Self {
        self.output = Some(schema_of::<O>());
        self
    }
}

/// The JSON Schema (2020-12) of `T`, with every subschema inlined: neither target resolves `$ref`s.
pub fn schema_of<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<T>()
}

/// An OpenAPI 3.0 document for a Bedrock Agent action group: one `POST /<name>` per tool with a JSON request
/// body and a `200` JSON response, each with a description and an `operationId` (what the agent reads).
pub fn openapi(title: &str, version: &str, description: &str, tools: &[ToolSchema]) -> Value {
    let mut paths = Map::new();
    for tool in tools {
        let response_schema =
            tool.output.as_ref().map_or_else(|| json!({ "type": "object" }), |s| openapi30(s.as_value()));
        let mut operation = json!({
                    "operationId": tool.name,
                    "summary": first_sentence(&tool.description),
                    "description": tool.description,
                    "requestBody": {
                        "required": true,
                        "content": { "application/json": { "schema": openapi30(tool.input.as_value()) } },
                    },
                    "responses": {
                        "200": {
                            "description": "The tool's result.",
                            "content": { "application/json": { "schema": response_schema } },
                        },
                    },
        });
        if tool.require_confirmation {
            operation["x-requireConfirmation"] = json!("ENABLED");
        }
        paths.insert(format!("/{}", tool.name), json!({ "post": operation }));
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": title, "version": version, "description": description },
        "paths": paths,
    })
}

/// MCP tool definitions (`name`, `description`, `inputSchema`, optional `outputSchema`): the inline tool schema
/// of an AgentCore Gateway Lambda target.
pub fn mcp_tools(tools: &[ToolSchema]) -> Value {
    let defs: Vec<Value> = tools
        .iter()
        .map(|tool| {
            let mut def = json!({
                "name": tool.name,
                "description": tool.description,
                "inputSchema": gateway(tool.input.as_value()),
            });
            if let (Some(output), Some(obj)) = (&tool.output, def.as_object_mut()) {
                obj.insert("outputSchema".to_owned(), gateway(output.as_value()));
            }
            def
        })
        .collect();
    Value::Array(defs)
}

/// JSON Schema 2020-12 → the OpenAPI 3.0 schema object subset.
fn openapi30(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else { return json!({}) };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "$schema" | "$id" | "$defs" | "examples" | "title" => {}
            "type" => match value {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if let Some(first) = non_null.first() {
                        out.insert("type".to_owned(), (*first).clone());
                    }
                    if non_null.len() < types.len() {
                        out.insert("nullable".to_owned(), Value::Bool(true));
                    }
                }
                other => {
                    out.insert("type".to_owned(), other.clone());
                }
            },
            // Bedrock action-group schemas do not support `enum` ("Action group OpenAPI schemas"): the allowed
            // values go into the description the model reads, and the tool checks them.
            "const" | "enum" => {}
            // Rust integer formats (uint32, …) are not OpenAPI formats; the bounds say the same.
            "format"
                if !matches!(value.as_str(), Some("date" | "date-time" | "int32" | "int64" | "float" | "double")) => {}
            "properties" => {
                let props = value.as_object().map(|p| p.iter().map(|(k, v)| (k.clone(), openapi30(v))).collect());
                out.insert(key.clone(), Value::Object(props.unwrap_or_default()));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), openapi30(value));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(allowed) = allowed_values(obj) {
        let description = out.get("description").and_then(Value::as_str).map(str::to_owned);
        let text = description.map_or(allowed.clone(), |d| format!("{d} {allowed}"));
        out.insert("description".to_owned(), Value::String(text));
    }
    Value::Object(out)
}

/// `One of: a, b.` for an `enum` or `const` node: what the model is told instead of a keyword the target lacks.
fn allowed_values(obj: &Map<String, Value>) -> Option<String> {
    let values: Vec<Value> = match (obj.get("enum"), obj.get("const")) {
        (Some(Value::Array(values)), _) => values.clone(),
        (_, Some(value)) => vec![value.clone()],
        _ => return None,
    };
    let list: Vec<String> = values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
    Some(format!("One of: {}.", list.join(", ")))
}

/// Why a tool's input type cannot be rendered for an agent target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// `anyOf`/`oneOf`/`allOf`: neither Bedrock's OpenAPI subset nor the Gateway's tool schema has them.
    #[error("tool `{tool}` uses `{keyword}`, which agent tool schemas do not support")]
    Unsupported { tool: String, keyword: &'static str },
    /// A node without a `type` (the Gateway requires one on every node).
    #[error("tool `{tool}` has a schema node without a `type`")]
    Untyped { tool: String },
    /// Function-details parameters are flat: string, number, integer, boolean or array.
    #[error("tool `{tool}` has parameter `{parameter}` that a function-details action group cannot carry")]
    NotAParameter { tool: String, parameter: String },
}

/// Checks that `tool`'s input renders for every target: no combinators anywhere and a `type` on every node.
pub fn check(tool: &ToolSchema) -> Result<(), SchemaError> {
    fn walk(node: &Value, tool: &str) -> Result<(), SchemaError> {
        let Some(obj) = node.as_object() else { return Ok(()) };
        for keyword in ["anyOf", "oneOf", "allOf", "not", "$ref"] {
            if obj.contains_key(keyword) {
                return Err(SchemaError::Unsupported { tool: tool.to_owned(), keyword });
            }
        }
        if !obj.contains_key("type") && !obj.contains_key("enum") && !obj.contains_key("const") {
            return Err(SchemaError::Untyped { tool: tool.to_owned() });
        }
        for child in obj.get("properties").and_then(Value::as_object).into_iter().flat_map(|p| p.values()) {
            walk(child, tool)?;
        }
        if let Some(items) = obj.get("items") {
            walk(items, tool)?;
        }
        Ok(())
    }
    walk(tool.input.as_value(), &tool.name)
}

/// A Bedrock Agent function-details action group (`functionSchema`, API `FunctionSchema` / `ParameterDetail`):
/// one function per tool, its arguments as flat typed parameters. The values arrive as strings and are parsed
/// back by their declared type (`envelope`).
pub fn function_schema(tools: &[ToolSchema]) -> Result<Value, SchemaError> {
    let mut functions = Vec::new();
    for tool in tools {
        check(tool)?;
        let input = tool.input.as_value();
        let required: Vec<&str> = input
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut parameters = Map::new();
        for (name, node) in input.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let ty = match node.get("type") {
                Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned(),
                other => other.cloned(),
            };
            let ty = ty.and_then(|t| t.as_str().map(str::to_owned)).unwrap_or_else(|| "string".to_owned());
            if !matches!(ty.as_str(), "string" | "number" | "integer" | "boolean" | "array") {
                return Err(SchemaError::NotAParameter { tool: tool.name.clone(), parameter: name.clone() });
            }
            let mut description = node.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(allowed) = node.as_object().and_then(allowed_values) {
                description = format!("{description} {allowed}").trim().to_owned();
            }
            parameters.insert(
                name.clone(),
                json!({ "type": ty, "description": description, "required": required.contains(&name.as_str()) }),
            );
        }
        let mut function = json!({ "name": tool.name, "description": tool.description, "parameters": parameters });
        if tool.require_confirmation {
            function["requireConfirmation"] = json!("ENABLED");
        }
        functions.push(function);
    }
    Ok(json!({ "functions": functions }))
}

/// JSON Schema 2020-12 → the AgentCore Gateway tool-schema subset (`type`, `properties`, `required`, `items`,
/// `description`). Allowed values of an enum are kept for the model in the description.
fn gateway(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else { return json!({}) };
    let mut out = Map::new();
    let ty = match obj.get("type") {
        Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned(),
        Some(other) => Some(other.clone()),
        None if obj.contains_key("enum") => Some(json!("string")),
        None => None,
    };
    if let Some(ty) = ty {
        out.insert("type".to_owned(), ty);
    }
    let mut description = obj.get("description").and_then(Value::as_str).map(str::to_owned);
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        let list: Vec<String> =
            values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
        let allowed = format!("One of: {}.", list.join(", "));
        description = Some(description.map_or(allowed.clone(), |d| format!("{d} {allowed}")));
    }
    if let Some(description) = description {
        out.insert("description".to_owned(), Value::String(description));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        out.insert(
            "properties".to_owned(),
            Value::Object(props.iter().map(|(k, v)| (k.clone(), gateway(v))).collect()),
        );
    }
    if let Some(required) = obj.get("required") {
        out.insert("required".to_owned(), required.clone());
    }
    if let Some(items) = obj.get("items").filter(|i| i.is_object()) {
        out.insert("items".to_owned(), gateway(items));
    }
    Value::Object(out)
}

fn first_sentence(text: &str) -> &str {
    text.split_once(". ").map_or(text, |(first, _)| first).trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// A coding request.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the schema is used")]
    struct Input {
        /// FHIR id of the patient.
        patient_id: String,
        /// How many proposals at most.
        limit: Option<u32>,
        /// Which encounter.
        encounter: Nested,
        mode: Mode,
    }

    #[derive(Deserialize, JsonSchema)]
    #[expect(dead_code, reason = "only the schema is used")]
    struct Nested {
        /// Encounter id.
        id: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Outpatient,
        Inpatient,
    }

    fn tools() -> Vec<ToolSchema> {
        vec![ToolSchema::new::<Input>("code_encounter", "Proposes codes. Never final.").with_output::<Nested>()]
    }

    fn walk(value: &Value, visit: &mut impl FnMut(&Map<String, Value>)) {
        match value {
            Value::Object(obj) => {
                visit(obj);
                obj.values().for_each(|v| walk(v, visit));
            }
            Value::Array(list) => list.iter().for_each(|v| walk(v, visit)),
            _ => {}
        }
    }

    #[test]
    fn openapi_has_one_post_per_tool_with_json_body_and_200() {
        let doc = openapi("Tools", "1.0.0", "test", &tools());
        assert_eq!(doc["openapi"], "3.0.0");
        let op = &doc["paths"]["/code_encounter"]["post"];
        assert_eq!(op["operationId"], "code_encounter");
        assert_eq!(op["summary"], "Proposes codes");
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["type"], "object");
        assert_eq!(body["additionalProperties"], false);
        assert_eq!(body["required"], json!(["patient_id", "encounter", "mode"]));
        assert_eq!(body["properties"]["patient_id"]["description"], "FHIR id of the patient.");
        // Option<u32>: no type array in OpenAPI 3.0, and no Rust-only format.
        assert_eq!(body["properties"]["limit"]["type"], "integer");
        assert_eq!(body["properties"]["limit"]["nullable"], true);
        assert!(body["properties"]["limit"].get("format").is_none());
        assert_eq!(body["properties"]["encounter"]["properties"]["id"]["type"], "string");
        assert_eq!(op["responses"]["200"]["content"]["application/json"]["schema"]["type"], "object");
        walk(&doc, &mut |obj| {
            assert!(!obj.contains_key("$ref") && !obj.contains_key("$schema") && !obj.contains_key("const"));
            assert!(obj.get("type").is_none_or(|t| !t.is_array()), "type array in {obj:?}");
        });
    }

    #[test]
    fn mcp_definitions_use_only_the_gateway_keywords() {
        let defs = mcp_tools(&tools());
        let def = &defs[0];
        assert_eq!(def["name"], "code_encounter");
        assert_eq!(def["description"], "Proposes codes. Never final.");
        assert_eq!(def["inputSchema"]["type"], "object");
        assert_eq!(def["inputSchema"]["required"], json!(["patient_id", "encounter", "mode"]));
        assert_eq!(def["inputSchema"]["properties"]["limit"]["type"], "integer");
        let mode = def["inputSchema"]["properties"]["mode"]["description"].as_str().unwrap_or_default();
        assert!(mode.contains("outpatient") && mode.contains("inpatient"), "{mode}");
        assert_eq!(def["outputSchema"]["properties"]["id"]["type"], "string");
        let allowed = ["type", "properties", "required", "items", "description"];
        for schema in [&def["inputSchema"], &def["outputSchema"]] {
            walk(schema, &mut |obj| {
                // Property maps have tool-defined keys; every schema object only the allowed ones.
                if obj.contains_key("type") {
                    assert!(obj.keys().all(|k| allowed.contains(&k.as_str())), "{obj:?}");
                }
            });
        }
    }
}
