//! Prior-authorization drafts: Da Vinci PAS-shaped Bundle and letter, every criterion cited, human sign-off.

pub mod args;
pub mod domain;
pub mod draft;
pub mod finalize;
pub mod policies;
pub mod queries;
pub mod reply;
pub mod service;
pub mod store;

pub use draft::PriorAuthDraft;
pub use finalize::PriorAuthFinalize;
pub use service::{DraftContent, PriorAuth};

use shared::tool::ToolInput;

/// The tools' input schemas, for the OpenAPI and MCP renderings (`shared::schema`).
pub fn tool_schemas() -> Vec<shared::schema::ToolSchema> {
    vec![args::DraftArgs::schema(), args::FinalizeArgs::schema()]
}
