//! Builds the coder's code index from the embedded tabular once, at compile time, and writes its compact form
//! to `OUT_DIR/coder_index.bin` for `include_bytes!`: the function then reads it at cold start instead of
//! tokenizing 98,000 descriptions and inclusion terms (issue 15: code data ready in ≤ 30 ms).
//!
//! The same sources the crate compiles (`src/table.rs`, `src/coder/text.rs`, `src/coder/index.rs`) are
//! compiled here too, so the embedded index cannot drift from the code that reads it; a unit test also checks
//! that the embedded index equals one built at run time.
#![allow(dead_code, reason = "the shared modules carry functions only the crate uses")]

#[path = "src/coder/index.rs"]
mod index;
#[path = "src/table.rs"]
mod table;
#[path = "src/coder/text.rs"]
mod text;

/// `text.rs` names its spans `super::Span`; the crate's is the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for input in ["build.rs", "src/table.rs", "src/coder/text.rs", "src/coder/index.rs", "data/icd10cm-2026.tsv"] {
        println!("cargo::rerun-if-changed={input}");
    }
    let table = table::CodeTable::parse(table::DATA).map_err(|e| e.to_string())?;
    let index = index::Index::build(&table);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("coder_index.bin");
    std::fs::write(out, index.to_bytes())?;
    Ok(())
}
