//! Makes the code data the function embeds, once, at compile time (`src/code_data.rs` includes both):
//! - `OUT_DIR/icd10cm-2026.tsv.zz`: the tabular, zlib-compressed (9.4 MB → 0.86 MB; it was a third of the
//!   binary, which every cold start downloads; issue 10);
//! - `OUT_DIR/coder_index.bin.zz`: the coder's code index in compact form, compressed too, so cold start reads
//!   it instead of tokenizing 98,000 descriptions and inclusion terms (issue 15: code data ready in ≤ 30 ms);
//! - `OUT_DIR/index_paths.tsv.zz`: the Alphabetic Index paths of the coder's general walk
//!   (`data/index_paths.tsv`, 181 KB, its words normalised → 14 KB), read on the warm-up thread;
//! - `OUT_DIR/code_data_sizes.rs`: the three inflated sizes.
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
    for input in [
        "build.rs",
        "src/table.rs",
        "src/coder/text.rs",
        "src/coder/index.rs",
        "data/icd10cm-2026.tsv",
        "data/index_paths.tsv",
    ] {
        println!("cargo::rerun-if-changed={input}");
    }
    let text: &'static str = std::fs::read_to_string("data/icd10cm-2026.tsv")?.leak();
    let table = table::CodeTable::parse(text).map_err(|e| e.to_string())?;
    let index = index::Index::build(&table);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let index = index.to_bytes().ok_or("the coder index does not fit its embedded form")?;
    let paths = normalized_paths(&std::fs::read_to_string("data/index_paths.tsv")?);
    std::fs::write(out.join("coder_index.bin.zz"), miniz_oxide::deflate::compress_to_vec_zlib(&index, 9))?;
    std::fs::write(out.join("icd10cm-2026.tsv.zz"), miniz_oxide::deflate::compress_to_vec_zlib(text.as_bytes(), 9))?;
    std::fs::write(out.join("index_paths.tsv.zz"), miniz_oxide::deflate::compress_to_vec_zlib(paths.as_bytes(), 9))?;
    // The inflated sizes, so cold start inflates each into one buffer of the right size instead of growing one.
    std::fs::write(
        out.join("code_data_sizes.rs"),
        format!(
            "const TABLE_LEN: usize = {};\nconst INDEX_LEN: usize = {};\nconst PATHS_LEN: usize = {};\n",
            text.len(),
            index.len(),
            paths.len()
        ),
    )?;
    Ok(())
}

/// Words of an Index level that name no condition of their own: "Insomnia, due to, anxiety disorder" is documented
/// by "insomnia due to anxiety" (the tabular's fillers too).
const GENERIC: &[&str] = &["disorder", "disease", "diseased", "condition"];

/// The Index walk's paths with their words spelt as the coder's tokenizer spells the note's (`text::normalize_word`,
/// stop words dropped, generic slots dropped beside a named one), so cold start only splits them: one line per
/// path, `slots<TAB>code<TAB>head`, slots space-separated, a slot's alternatives joined by `|`.
fn normalized_paths(tsv: &str) -> String {
    let mut out = String::with_capacity(tsv.len());
    for line in tsv.lines() {
        let mut f = line.split('\t');
        let (Some(required), Some(_optional), Some(code)) = (f.next(), f.next(), f.next()) else { continue };
        let head = f.next().unwrap_or_default();
        let slots: Vec<Vec<String>> = required
            .split(' ')
            .map(|slot| {
                slot.split('|').map(text::normalize_word).filter(|w| !w.is_empty() && !text::is_stopword(w)).collect()
            })
            .filter(|alternatives: &Vec<String>| !alternatives.is_empty())
            .collect();
        let generic = |slot: &Vec<String>| slot.iter().all(|w| GENERIC.contains(&w.as_str()));
        let named: Vec<&Vec<String>> = slots.iter().filter(|slot| !generic(slot)).collect();
        let kept: Vec<&Vec<String>> = if named.is_empty() { slots.iter().collect() } else { named };
        if kept.is_empty() {
            continue;
        }
        let kept: Vec<String> = kept.iter().map(|slot| slot.join("|")).collect();
        out.push_str(&format!("{}\t{code}\t{head}\n", kept.join(" ")));
    }
    out
}
