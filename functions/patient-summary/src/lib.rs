//! Pre-visit patient summary tool: the domain (`summary`, pure), what it reads (`fetch`), and the handler
//! that gates it (`handler`). `main.rs` only wires adapters.

pub mod fetch;
pub mod handler;
pub mod summary;

pub use handler::SummaryTool;
