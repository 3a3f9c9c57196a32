//! The code data the binary carries, made by `build.rs`, zlib-compressed: the FY2026 tabular (9.4 MB → 0.86 MB),
//! the coder's index over it (`coder::Index::embedded`, 0.89 MB → 0.33 MB) and the Alphabetic Index paths of
//! the coder's general walk (`data/index_paths.tsv`, 181 KB → 14 KB). [`warm_up`] inflates and reads
//! all three on a thread started at the end of cold start, so the function polls the runtime API for its first event
//! without waiting for them; a note that arrives before they are ready waits on the first use.

use std::sync::LazyLock;

use crate::coder::Index;
use crate::table::{CodeTable, TableError};

const PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/icd10cm-2026.tsv.zz"));
const PACKED_INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/coder_index.bin.zz"));
const PACKED_PATHS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/index_paths.tsv.zz"));

include!(concat!(env!("OUT_DIR"), "/code_data_sizes.rs"));

static TEXT: LazyLock<Option<String>> = LazyLock::new(inflate);
static INDEX_BYTES: LazyLock<Option<Vec<u8>>> = LazyLock::new(inflate_index);

static TABLE: LazyLock<Result<CodeTable, TableError>> = LazyLock::new(|| CodeTable::parse(text()?));

/// Inflates `packed` into one buffer of the size `build.rs` recorded; `None` unless it inflates to exactly that
/// many bytes with a good checksum. (Growing a buffer as the data comes, as `decompress_to_vec` does, zeroed and
/// copied the table's 9.4 MB about twice over.)
fn inflate_exact(packed: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0; len];
    let written = miniz_oxide::inflate::decompress_slice_iter_to_slice(&mut out, std::iter::once(packed), true, false);
    (written.ok()? == len).then_some(out)
}

/// Inflates the embedded table afresh (what cold start does once; the bench times it).
pub fn inflate() -> Option<String> {
    String::from_utf8(inflate_exact(PACKED, TABLE_LEN)?).ok()
}

/// Inflates the embedded coder index afresh (the bench times it).
pub fn inflate_index() -> Option<Vec<u8>> {
    inflate_exact(PACKED_INDEX, INDEX_LEN)
}

/// The Alphabetic Index paths of the coder's general walk (`data/index_paths.tsv`), inflated afresh; empty when
/// unreadable (the walk then finds nothing and the tabular's wording codes alone).
pub fn index_paths() -> String {
    inflate_exact(PACKED_PATHS, PATHS_LEN).and_then(|bytes| String::from_utf8(bytes).ok()).unwrap_or_default()
}

/// The coder index's compact form, inflated on first use.
pub fn index_bytes() -> Option<&'static [u8]> {
    INDEX_BYTES.as_deref()
}

/// The tabular's text (`data/icd10cm-2026.tsv`), inflated on first use.
pub fn text() -> Result<&'static str, TableError> {
    TEXT.as_deref().ok_or(TableError(0))
}

impl CodeTable {
    /// The table in the binary, inflated and parsed on first use.
    pub fn embedded() -> Result<&'static CodeTable, &'static TableError> {
        TABLE.as_ref()
    }
}

/// Starts reading the table and the index on a background thread; an unreadable table is logged (without
/// content) here and every coding call then fails as an internal error.
pub fn warm_up() {
    let _ = std::thread::Builder::new().name("icd10-code-data".to_owned()).spawn(|| {
        if CodeTable::embedded().is_err() || Index::embedded().is_none() || crate::coder::warm_up_index_paths() == 0 {
            tracing::error!("the embedded code data cannot be read");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_is_the_tsv() {
        let tsv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/icd10cm-2026.tsv")).unwrap();
        assert!(text().unwrap() == tsv, "the embedded table differs from data/icd10cm-2026.tsv");
        assert!(PACKED.len() < tsv.len() / 8, "compressed: {} of {} bytes", PACKED.len(), tsv.len());
        let index = index_bytes().unwrap();
        assert!(PACKED_INDEX.len() < index.len() / 2, "compressed: {} of {} bytes", PACKED_INDEX.len(), index.len());
        assert!(!index_paths().is_empty());
    }

    #[test]
    fn a_buffer_of_the_wrong_size_or_a_damaged_stream_inflates_to_nothing() {
        assert!(inflate_exact(PACKED_PATHS, PATHS_LEN).is_some());
        assert!(inflate_exact(PACKED_PATHS, PATHS_LEN - 1).is_none(), "too small");
        assert!(inflate_exact(PACKED_PATHS, PATHS_LEN + 1).is_none(), "too large");
        let mut damaged = PACKED_PATHS.to_vec();
        if let Some(byte) = damaged.get_mut(PACKED_PATHS.len() / 2) {
            *byte ^= 0x55;
        }
        assert!(inflate_exact(&damaged, PATHS_LEN).is_none(), "damaged stream or checksum");
    }
}
