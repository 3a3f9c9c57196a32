//! ICD-10-CM coding proposals from encounter notes, with evidence spans, grounding scores and a FHIR history
//! cross-check. Nothing is written back: the reply is a proposal list for a human coder.
//!
//! `coder` (deterministic rules) and `table` (the embedded FY2026 tabular) are the domain; `index` is the local
//! knowledge base, `select` the model path and its validation, `history` the FHIR cross-check, `reply` the
//! output and its grounding score, `handler` the gate. `main.rs` only wires adapters.

pub mod coder;
pub mod handler;
pub mod history;
pub mod index;
pub mod reply;
pub mod select;
pub mod table;

pub use handler::{CodingInput, CodingTool, MAX_NOTE_BYTES};
