//! Pre-visit patient summary tool: the domain (`summary`, pure), what it reads (`fetch`), and the handler
//! that gates it (`handler`). `main.rs` only wires adapters.

pub mod fetch;
pub mod handler;
pub mod summary;

pub use handler::{SummaryInput, SummaryTool};

use shared::schema::ToolSchema;

/// What an agent is told about this tool (rendered into `schemas/` by the `e2e` tool-schema test).
pub fn tool_schemas() -> Vec<ToolSchema> {
    vec![ToolSchema::new::<SummaryInput>(
        "patient_summary",
        "Pre-visit summary of one patient for the signed-in clinician: active problems, medications, allergies, \
         recent results with trends and care gaps, each fact citing its FHIR resource. Read-only. Access needs a \
         care relationship (or break-glass through the front end); the caller is identified by their sign-in, \
         never by an argument.",
    )]
}
