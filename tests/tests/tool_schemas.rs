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
use shared::schema::{ToolSchema, mcp_tools, openapi};

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
