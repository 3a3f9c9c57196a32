//! ICD-10-CM coding proposals from encounter notes, with evidence spans, grounding scores and a FHIR history
//! cross-check. Nothing is written back: the reply is a proposal list for a human coder.
//!
//! `coder` (deterministic rules) and `table` (the FY2026 tabular, embedded compressed by `code_data`) are the
//! domain; `index` is the local knowledge base, `select` the model path and its validation, `history` the FHIR
//! cross-check, `reply` the output and its grounding score, `model_path` the model path and the merge, `args`
//! the arguments and `action` what the shell runs. `main.rs` only wires adapters.

pub mod action;
pub mod args;
pub mod code_data;
pub mod coder;
pub mod history;
pub mod index;
pub mod model_path;
pub mod reply;
pub mod select;
pub mod table;

pub use action::{CodingContext, Icd10Coding};
pub use args::{CodingInput, MAX_NOTE_BYTES};

use shared::schema::ToolSchema;
use shared::tool::ToolInput;

/// What an agent is told about this tool (rendered into `schemas/` by the `e2e` tool-schema test).
pub fn tool_schemas() -> Vec<ToolSchema> {
    vec![CodingInput::schema()]
}
