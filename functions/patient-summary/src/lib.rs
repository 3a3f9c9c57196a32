//! Pre-visit patient summary tool: its arguments (`args`), what it reads (`fetch`), the pure domain
//! (`summary`), and the action the shell runs (`action`). `main.rs` only wires adapters.

pub mod action;
pub mod args;
pub mod fetch;
pub mod summary;

pub use action::{PatientSummary, SummaryContext};
pub use args::SummaryInput;

use shared::schema::ToolSchema;
use shared::tool::ToolInput;

/// What an agent is told about this tool (rendered into `schemas/` by the `e2e` tool-schema test).
pub fn tool_schemas() -> Vec<ToolSchema> {
    vec![SummaryInput::schema()]
}
