//! The local knowledge base: an embedded lexical index over the billable codes of the table (description and
//! inclusion terms), behind the same `KnowledgeBase` port as the Bedrock Knowledge Base on AWS.
//!
//! Scoring is BM25 over word tokens (lower-cased, stop words dropped): enough to put the right family of
//! codes in front of a model, which then selects; it never proposes anything itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::session::SessionContext;

use crate::table::CodeTable;

/// Words too common to rank by; "with", "without", "other" and "unspecified" stay: they tell codes apart.
const STOP_WORDS: &[&str] =
    &["a", "an", "and", "as", "at", "by", "for", "from", "in", "is", "it", "of", "on", "or", "the", "to", "was", "has"];
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Most results one retrieval returns, whatever the query asks.
const MAX_RESULTS: usize = 50;

/// Lower-cased alphanumeric words of `text`, without stop words.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
}

struct Postings {
    /// token → (document, term frequency)
    terms: HashMap<String, Vec<(u32, u16)>>,
    lengths: Vec<u16>,
    average_length: f32,
}

/// The index over `table`, built on the first retrieval (the deterministic path never needs it).
pub struct LexicalIndex {
    table: &'static CodeTable,
    /// Indexes into `table.entries()` of the billable codes, in document order.
    documents: Vec<usize>,
    postings: OnceLock<Postings>,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex").field("documents", &self.documents.len()).finish()
    }
}

impl LexicalIndex {
    pub fn new(table: &'static CodeTable) -> Self {
        let documents = table.entries().iter().enumerate().filter(|(_, e)| e.billable).map(|(i, _)| i).collect();
        Self { table, documents, postings: OnceLock::new() }
    }

    fn postings(&self) -> &Postings {
        self.postings.get_or_init(|| {
            let entries = self.table.entries();
            let mut terms: HashMap<String, Vec<(u32, u16)>> = HashMap::new();
            let mut lengths = Vec::with_capacity(self.documents.len());
            for (doc, &i) in self.documents.iter().enumerate() {
                let entry = &entries[i];
                let mut counts: BTreeMap<String, u16> = BTreeMap::new();
                let text = std::iter::once(entry.description).chain(entry.inclusion_terms());
                let mut length = 0u16;
                for part in text {
                    for token in tokens(part) {
                        *counts.entry(token).or_insert(0) += 1;
                        length = length.saturating_add(1);
                    }
                }
                let doc = u32::try_from(doc).unwrap_or(u32::MAX);
                for (token, count) in counts {
                    terms.entry(token).or_default().push((doc, count));
                }
                lengths.push(length.max(1));
            }
            let total: f32 = lengths.iter().map(|&l| f32::from(l)).sum();
            let average_length = total / (lengths.len().max(1) as f32);
            Postings { terms, lengths, average_length }
        })
    }

    /// The best-matching billable codes for `query`, best first, as (code, score).
    pub fn search(&self, query: &str, limit: usize) -> Vec<(&'static str, f32)> {
        let postings = self.postings();
        let n = self.documents.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        let mut seen = Vec::new();
        for token in tokens(query) {
            if seen.contains(&token) {
                continue;
            }
            let Some(list) = postings.terms.get(&token) else { continue };
            let df = list.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in list {
                let tf = f32::from(tf);
                let length = f32::from(postings.lengths[doc as usize]);
                let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / postings.average_length));
                *scores.entry(doc).or_insert(0.0) += idf * norm;
            }
            seen.push(token);
        }
        let mut ranked: Vec<(u32, f32)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let entries = self.table.entries();
        ranked.into_iter().take(limit).map(|(doc, score)| (entries[self.documents[doc as usize]].code, score)).collect()
    }
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
                let entry = self.table.get(code)?;
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
        LexicalIndex::new(CodeTable::embedded().unwrap())
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
    fn a_query_of_stop_words_finds_nothing() {
        assert!(index().search("the of and", 5).is_empty());
    }
}
