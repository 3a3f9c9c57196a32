//! The agent-facing tool schemas in `schemas/` are generated from the tools' Rust input types
//! (`shared::schema`); this test regenerates them and fails when the checked-in files differ, so a changed
//! input type cannot ship with a stale schema. After an intended change:
//!
//! ```text
//! UPDATE_SCHEMAS=1 cargo test -p e2e --test tool_schemas
//! ```
//!
//! Adding a tool: one line in `TOOLS` (and the crate as a dev-dependency in `tests/Cargo.toml`).

use std::path::PathBuf;

use serde_json::Value;
use shared::schema::{ToolSchema, check, function_schema, mcp_tools, openapi};

/// A tool crate's `tool_schemas`.
type Schemas = fn() -> Vec<ToolSchema>;

/// (crate name, its schemas). The crate name names `schemas/<crate>.openapi.json` (one Bedrock Agent action
/// group per Lambda function).
const TOOLS: &[(&str, Schemas)] = &[
    ("patient-summary", patient_summary::tool_schemas),
    ("icd10-coding", icd10_coding::tool_schemas),
    ("prior-auth-draft", prior_auth_draft::tool_schemas),
];

const API_VERSION: &str = "1.0.0";

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("schemas")
}

#[expect(clippy::unwrap_used, reason = "test code: a schema that does not render fails the test")]
fn rendered() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    let mut all = Vec::new();
    for (crate_name, schemas) in TOOLS {
        let tools = schemas();
        let doc = openapi(
            &format!("{crate_name} tools"),
            API_VERSION,
            &format!("Action group of the {crate_name} Lambda function (clinical agent tools)."),
            &tools,
        );
        files.push((format!("{crate_name}.openapi.json"), doc));
        files.push((format!("{crate_name}.function-schema.json"), function_schema(&tools).unwrap()));
        all.extend(tools);
    }
    files.push(("mcp-tools.json".to_owned(), mcp_tools(&all)));
    files
}

#[test]
fn checked_in_schemas_match_the_code() {
    let update = std::env::var("UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, value) in rendered() {
        let path = schemas_dir().join(&name);
        let text = format!("{}\n", serde_json::to_string_pretty(&value).unwrap());
        if update {
            std::fs::create_dir_all(schemas_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/{stale:?} differ from the code: run `UPDATE_SCHEMAS=1 cargo test -p e2e --test tool_schemas` and commit"
    );
}

#[test]
fn every_tool_appears_once_in_both_renderings() {
    let files = rendered();
    let mcp = files.iter().find(|(n, _)| n == "mcp-tools.json").map(|(_, v)| v.clone()).unwrap();
    let names: Vec<&str> = mcp.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate tool names: {names:?}");
    for name in names {
        let in_openapi = files.iter().filter(|(_, doc)| doc["paths"].get(format!("/{name}")).is_some()).count();
        assert_eq!(in_openapi, 1, "{name}");
    }
}

fn walk(value: &Value, visit: &mut impl FnMut(&serde_json::Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            visit(map);
            map.values().for_each(|v| walk(v, visit));
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, visit)),
        _ => {}
    }
}

/// The rules of each target, walked over every generated file: Bedrock action-group OpenAPI is `3.0.0` without
/// `enum` or combinators ("Action group OpenAPI schemas"); Gateway tool schemas know only `type` (on every node),
/// `description`, `properties`, `required`, `items` ("Lambda targets" tool schema); function-details parameters
/// are string, number, integer, boolean or array (API `ParameterDetail`).
#[test]
fn every_generated_schema_follows_its_targets_rules() {
    for (name, doc) in rendered() {
        if name.ends_with(".openapi.json") {
            assert_eq!(doc["openapi"], "3.0.0", "{name}");
            walk(&doc, &mut |node| {
                for banned in ["enum", "const", "anyOf", "oneOf", "allOf", "$ref"] {
                    assert!(!node.contains_key(banned), "{name}: `{banned}` in {node:?}");
                }
            });
        } else if name == "mcp-tools.json" {
            for tool in doc.as_array().unwrap() {
                fn gateway_node(node: &Value, name: &str) {
                    let obj = node.as_object().unwrap();
                    assert!(obj.contains_key("type"), "{name}: untyped node {obj:?}");
                    for key in obj.keys() {
                        assert!(
                            ["type", "description", "properties", "required", "items"].contains(&key.as_str()),
                            "{name}: `{key}`"
                        );
                    }
                    obj.get("properties")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .for_each(|(_, v)| gateway_node(v, name));
                    if let Some(items) = obj.get("items") {
                        gateway_node(items, name);
                    }
                }
                gateway_node(&tool["inputSchema"], &name);
            }
        } else {
            for function in doc["functions"].as_array().unwrap() {
                for (parameter, detail) in function["parameters"].as_object().unwrap() {
                    let ty = detail["type"].as_str().unwrap();
                    assert!(
                        ["string", "number", "integer", "boolean", "array"].contains(&ty),
                        "{name}: {parameter} {ty}"
                    );
                    assert!(detail["required"].is_boolean());
                }
            }
        }
    }
    for (_, schemas) in TOOLS {
        for tool in schemas() {
            check(&tool).unwrap();
        }
    }
}

#[test]
fn combinators_and_untyped_nodes_are_refused_before_they_reach_an_agent() {
    #[derive(shared::schema::schemars::JsonSchema)]
    #[schemars(crate = "shared::schema::schemars")]
    #[allow(dead_code, reason = "only its schema is used")]
    enum Either {
        Code(String),
        Count(u32),
    }
    #[derive(shared::schema::schemars::JsonSchema)]
    #[schemars(crate = "shared::schema::schemars")]
    #[allow(dead_code, reason = "only its schema is used")]
    struct WithEither {
        /// One or the other.
        value: Either,
    }
    let tool = ToolSchema::new::<WithEither>("either", "A test tool.");
    assert!(check(&tool).is_err());
    assert!(function_schema(&[tool]).is_err());
}

/// Only the sign-off step asks a Bedrock Agent for the user's confirmation (Bedrock guide, "Get user
/// confirmation before invoking action group function": `x-requireConfirmation` / `requireConfirmation`).
#[test]
fn finalize_and_only_finalize_requires_the_users_confirmation() {
    let files = rendered();
    let find = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    let openapi = find("prior-auth-draft.openapi.json");
    assert_eq!(openapi["paths"]["/prior_auth_finalize"]["post"]["x-requireConfirmation"], "ENABLED");
    assert!(openapi["paths"]["/prior_auth_draft"]["post"].get("x-requireConfirmation").is_none());
    let functions = find("prior-auth-draft.function-schema.json");
    for function in functions["functions"].as_array().unwrap() {
        let confirmed = function.get("requireConfirmation").and_then(Value::as_str) == Some("ENABLED");
        assert_eq!(confirmed, function["name"] == "prior_auth_finalize", "{function}");
    }
}
