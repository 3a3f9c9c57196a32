//! The local knowledge base: BM25 over the billable codes, behind the same `KnowledgeBase` port as the Bedrock
//! Knowledge Base on AWS.
//!
//! It reads the coder's code index (`coder::Index`, built once at compile time): one index and one tokenizer for
//! the code table in the whole tool (issue 10). A document is a billable code: the words of its description and
//! inclusion terms, or for a code with a 7th character those of its stem. Enough to put the right family of
//! codes in front of a model, which then selects; it never proposes anything itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::session::SessionContext;

use crate::coder::{Index, query_words};
use crate::table::CodeTable;

/// Words too common to rank by; "with", "without", "other" and "unspecified" stay: they tell codes apart.
const STOP_WORDS: &[&str] =
    &["a", "an", "and", "as", "at", "by", "for", "from", "in", "is", "it", "of", "on", "or", "the", "to", "was", "has"];
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Most results one retrieval returns, whatever the query asks.
const MAX_RESULTS: usize = 50;

/// Lower-cased alphanumeric words of `text`, without stop words (the reply's evidence check).
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
}

struct Postings {
    /// word id of the code index → (document, term frequency)
    terms: Vec<Vec<(u32, u16)>>,
    lengths: Vec<u16>,
    average_length: f32,
}

/// BM25 postings over the code index.
pub struct LexicalIndex {
    /// Derived on the first retrieval (the deterministic path never needs them).
    ready: OnceLock<Option<Ready>>,
}

struct Ready {
    table: &'static CodeTable,
    index: &'static Index,
    /// Indexes into `table.entries()` of the billable codes, in document order.
    documents: Vec<usize>,
    postings: Postings,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex").field("ready", &self.ready.get().is_some()).finish()
    }
}

impl Default for LexicalIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl LexicalIndex {
    /// Over the embedded table and the coder's index, both read on first use.
    pub fn new() -> Self {
        Self { ready: OnceLock::new() }
    }

    fn ready(&self) -> Option<&Ready> {
        self.ready
            .get_or_init(|| {
                let table = CodeTable::embedded().ok()?;
                let index = Index::embedded()?;
                let documents: Vec<usize> =
                    table.entries().iter().enumerate().filter(|(_, e)| e.billable).map(|(i, _)| i).collect();
                let postings = build_postings(table, index, &documents);
                Some(Ready { table, index, documents, postings })
            })
            .as_ref()
    }

    /// The best-matching billable codes for `query`, best first, as (code, score).
    pub fn search(&self, query: &str, limit: usize) -> Vec<(&'static str, f32)> {
        let Some(Ready { table, index, documents, postings }) = self.ready() else { return Vec::new() };
        let n = documents.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        let mut seen = Vec::new();
        for word in query_words(query) {
            let Some(id) = index.word(&word) else { continue };
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let Some(list) = postings.terms.get(id as usize).filter(|l| !l.is_empty()) else { continue };
            let df = list.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in list {
                let tf = f32::from(tf);
                let length = f32::from(postings.lengths.get(doc as usize).copied().unwrap_or(1));
                let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / postings.average_length));
                *scores.entry(doc).or_insert(0.0) += idf * norm;
            }
        }
        let mut ranked: Vec<(u32, f32)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let entries = table.entries();
        ranked
            .into_iter()
            .filter_map(|(doc, score)| Some((entries.get(*documents.get(doc as usize)?)?.code, score)))
            .take(limit)
            .collect()
    }
}

/// Each billable code's word counts, from the index's terms: a term's words count for its code, or for a stem
/// that takes a 7th character, for every billable code under it.
fn build_postings(table: &CodeTable, index: &Index, documents: &[usize]) -> Postings {
    let entries = table.entries();
    // Table position → document number.
    let mut doc_of: HashMap<usize, u32> = HashMap::with_capacity(documents.len());
    for (doc, &i) in documents.iter().enumerate() {
        doc_of.insert(i, doc as u32);
    }
    let mut counts: Vec<BTreeMap<u32, u16>> = vec![BTreeMap::new(); documents.len()];
    for term in index.terms() {
        let Some(entry) = entries.get(term.entry) else { continue };
        let docs: Vec<u32> = if term.needs_seventh {
            entries
                .get(term.entry + 1..)
                .unwrap_or_default()
                .iter()
                .take_while(|e| e.code.starts_with(entry.code))
                .enumerate()
                .filter_map(|(k, _)| doc_of.get(&(term.entry + 1 + k)).copied())
                .collect()
        } else {
            doc_of.get(&term.entry).copied().into_iter().collect()
        };
        for doc in docs {
            let Some(c) = counts.get_mut(doc as usize) else { continue };
            for &w in term.required.iter().chain(term.optional) {
                let n = c.entry(w).or_insert(0);
                *n = n.saturating_add(1);
            }
        }
    }
    let mut terms: Vec<Vec<(u32, u16)>> = Vec::new();
    let mut lengths = Vec::with_capacity(documents.len());
    for (doc, c) in counts.into_iter().enumerate() {
        let mut length = 0u16;
        for (w, n) in c {
            let w = w as usize;
            if terms.len() <= w {
                terms.resize_with(w + 1, Vec::new);
            }
            if let Some(list) = terms.get_mut(w) {
                list.push((doc as u32, n));
            }
            length = length.saturating_add(n);
        }
        lengths.push(length.max(1));
    }
    let total: f32 = lengths.iter().map(|&l| f32::from(l)).sum();
    let average_length = total / (lengths.len().max(1) as f32);
    Postings { terms, lengths, average_length }
}

impl KnowledgeBase for LexicalIndex {
    async fn retrieve(
        &self,
        _session: &SessionContext,
        query: &RetrievalQuery,
    ) -> Result<Vec<Passage>, KnowledgeError> {
        let limit = usize::try_from(query.max_results).unwrap_or(MAX_RESULTS).clamp(1, MAX_RESULTS);
        Ok(self
            .search(&query.text, limit)
            .into_iter()
            .filter_map(|(code, score)| {
                let entry = self.ready()?.table.get(code)?;
                let inclusion: Vec<&str> = entry.inclusion_terms().collect();
                let text = if inclusion.is_empty() {
                    format!("{code} {}", entry.description)
                } else {
                    format!("{code} {} (includes: {})", entry.description, inclusion.join("; "))
                };
                Some(Passage {
                    text,
                    source: format!("icd10cm-2026:{code}"),
                    score,
                    metadata: BTreeMap::from([("code".to_owned(), code.to_owned())]),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> LexicalIndex {
        LexicalIndex::new()
    }

    #[test]
    fn retrieval_ranks_the_documented_concept_first_among_billable_codes() {
        let index = index();
        let hits = index.search("iron deficiency anemia secondary to chronic blood loss", 10);
        assert!(hits.iter().take(3).any(|(code, _)| *code == "D50.0"), "{hits:?}");
        let hits = index.search("herpes zoster without complications", 5);
        assert!(hits.iter().take(3).any(|(code, _)| *code == "B02.9"), "{hits:?}");
        let table = CodeTable::embedded().unwrap();
        assert!(hits.iter().all(|(code, _)| table.billable(code).is_some()));
    }

    #[test]
    fn codes_with_a_seventh_character_are_found_by_their_stem() {
        let hits = index().search("nondisplaced fracture of neck of fifth metacarpal bone, left hand", 20);
        assert!(hits.iter().any(|(code, _)| code.starts_with("S62.336")), "{hits:?}");
    }

    #[test]
    fn a_query_of_stop_words_finds_nothing() {
        assert!(index().search("the of and", 5).is_empty());
    }
}
