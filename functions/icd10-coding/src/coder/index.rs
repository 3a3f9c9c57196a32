//! A lexical index of the code table: every billable code's description and inclusion terms (and the stems of
//! codes that take a 7th character), as weighted words, searched by the words of a clause.
//!
//! Weights are inverse document frequencies, so `metacarpal` counts for more than `fracture`. ICD-10-CM's own
//! convention marks nonessential modifiers with parentheses: those words are optional here.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::text::{Laterality, is_filler, is_stopword, laterality_of, tokenize};
use crate::table::{CodeEntry, CodeTable};

/// Laterality a term requires of the clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermSide {
    Any,
    /// "unspecified eye": for notes that do not name the side.
    Unspecified,
    Is(Laterality),
    /// `unilateral … right hip`: one named side.
    One(Laterality),
}

#[derive(Debug, Clone)]
pub struct Term {
    /// Index of the code (or 7th-character stem) in the table.
    pub entry: usize,
    pub required: Vec<u32>,
    pub optional: Vec<u32>,
    pub required_weight: f32,
    pub side: TermSide,
    /// The code needs a 7th character chosen from the clause.
    pub needs_seventh: bool,
    /// From an inclusion term rather than the description.
    pub inclusion: bool,
}

/// A term before interning: entry, required words, optional words, side, needs a 7th character, inclusion.
type RawTerm = (usize, Vec<String>, Vec<String>, TermSide, bool, bool);

pub struct Index {
    pub terms: Vec<Term>,
    words: HashMap<String, u32>,
    weights: Vec<f32>,
    postings: Vec<Vec<u32>>,
}

static INDEX: LazyLock<Option<Index>> = LazyLock::new(|| CodeTable::embedded().ok().map(Index::build));

impl Index {
    /// The index over the embedded table, built once.
    pub fn embedded() -> Option<&'static Index> {
        INDEX.as_ref()
    }

    pub fn build(table: &CodeTable) -> Self {
        let mut raw: Vec<RawTerm> = Vec::new();
        let mut category_synonyms: HashMap<&str, Vec<String>> = HashMap::new();
        for (i, entry) in table.entries().iter().enumerate() {
            let (indexed, needs_seventh) = if entry.billable && compact_len(entry.code) < 7 {
                (true, false)
            } else if !entry.billable && takes_seventh(table, entry) {
                (true, true)
            } else {
                (false, false)
            };
            // Manifestation codes are reported after their etiology, never found by wording alone.
            if !indexed || entry.description.contains("in diseases classified elsewhere") {
                continue;
            }
            // The category's bracketed synonyms ("Zoster [herpes zoster]") describe every code in it.
            let category = entry.code.get(..3).unwrap_or(entry.code);
            let synonyms = category_synonyms.entry(category).or_insert_with(|| {
                table
                    .get(category)
                    .map(|c| tokenize(c.description, 0).into_iter().filter(|t| t.aside).map(|t| t.word).collect())
                    .unwrap_or_default()
            });
            let (req, mut opt, side) = term_words(entry.description);
            opt.extend(synonyms.iter().cloned());
            raw.push((i, req, opt, side, needs_seventh, false));
            for inclusion in entry.inclusion_terms() {
                let (req, mut opt, side) = term_words(inclusion);
                opt.extend(synonyms.iter().cloned());
                raw.push((i, req, opt, side, needs_seventh, true));
            }
        }
        let mut words: HashMap<String, u32> = HashMap::new();
        let mut df: Vec<u32> = Vec::new();
        let intern = |w: &str, words: &mut HashMap<String, u32>, df: &mut Vec<u32>| -> u32 {
            if let Some(&id) = words.get(w) {
                return id;
            }
            let id = df.len() as u32;
            words.insert(w.to_owned(), id);
            df.push(0);
            id
        };
        let mut terms = Vec::with_capacity(raw.len());
        for (entry, req, opt, side, needs_seventh, inclusion) in raw {
            // "Other specified viral diseases": a residual code is never found by one word.
            if req.len() < 2 && opt.iter().any(|w| w == "other") {
                continue;
            }
            let mut required: Vec<u32> = req.iter().map(|w| intern(w, &mut words, &mut df)).collect();
            required.sort_unstable();
            required.dedup();
            // A word counts once: as required if it is, else as optional.
            let mut optional: Vec<u32> = opt.iter().map(|w| intern(w, &mut words, &mut df)).collect();
            optional.sort_unstable();
            optional.dedup();
            optional.retain(|id| required.binary_search(id).is_err());
            for &id in &required {
                df[id as usize] += 1;
            }
            terms.push(Term { entry, required, optional, required_weight: 0.0, side, needs_seventh, inclusion });
        }
        let n = terms.len().max(1) as f32;
        let weights: Vec<f32> = df.iter().map(|&d| (n / (d.max(1) as f32)).ln().max(0.5)).collect();
        let mut postings = vec![Vec::new(); weights.len()];
        for (t, term) in terms.iter_mut().enumerate() {
            term.required_weight = term.required.iter().map(|&w| weights[w as usize]).sum();
            for &w in &term.required {
                postings[w as usize].push(t as u32);
            }
        }
        Self { terms, words, weights, postings }
    }

    pub fn word(&self, word: &str) -> Option<u32> {
        self.words.get(word).copied()
    }

    pub fn weight(&self, word: u32) -> f32 {
        self.weights.get(word as usize).copied().unwrap_or(0.0)
    }

    pub fn postings(&self, word: u32) -> &[u32] {
        self.postings.get(word as usize).map_or(&[], Vec::as_slice)
    }
}

fn compact_len(code: &str) -> usize {
    code.chars().filter(|c| *c != '.').count()
}

/// A header whose children are its 7th-character extensions (`S62.336` → `S62.336A`).
fn takes_seventh(table: &CodeTable, entry: &CodeEntry) -> bool {
    let compact = compact_len(entry.code);
    (4..=6).contains(&compact) && seventh_code(table, entry.code, 'A').is_some()
        || seventh_code(table, entry.code, '1').is_some() && compact == 6
}

/// The code with its 7th character, placeholders `X` filled in, if billable.
pub fn seventh_code(table: &CodeTable, stem: &str, seventh: char) -> Option<&'static str> {
    let mut compact: String = stem.chars().filter(|c| *c != '.').collect();
    if compact.len() < 3 || compact.len() > 6 {
        return None;
    }
    while compact.len() < 6 {
        compact.push('X');
    }
    compact.push(seventh);
    table.billable(&compact).map(|e| e.code)
}

/// Paired body parts: "unspecified eye" means the side was not documented.
const SIDED: &[&str] = &[
    "eye", "ear", "side", "limb", "arm", "leg", "hand", "foot", "knee", "hip", "shoulder", "elbow", "wrist", "ankle",
    "finger", "toe", "thumb", "lung", "kidney", "breast", "ovary", "testis", "forearm", "thigh", "upper", "lower",
    "eyelid", "orbit", "femur", "tibia", "fibula", "humerus", "radius", "ulna", "buttock",
];

/// Required words, optional words and the side a description or inclusion term names.
fn term_words(text: &str) -> (Vec<String>, Vec<String>, TermSide) {
    let mut required = Vec::new();
    let mut optional = Vec::new();
    let mut side = None;
    let mut unilateral = false;
    let mut alternatives = false;
    let mut side_unspecified = false;
    let tokens = tokenize(text, 0);
    // "without spontaneous rupture of ear drum", "without loss of consciousness": what a code is without is its
    // default and rarely written, so those words (up to `of`, at most four) support but are not required.
    let mut without_left = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        let word = token.word.clone();
        let absent = without_left > 0 && word != "of";
        without_left = match word.as_str() {
            "without" if !required.is_empty() => 4,
            "of" | "with" => 0,
            _ => without_left.saturating_sub(1),
        };
        let absent = absent || word == "without" && without_left == 4;
        // "unspecified organism", "unspecified ligament": what is unspecified need not be documented; nor
        // need "without complications", the default when none is documented.
        let after_unspecified = i > 1
            && tokens[i - 1].word == "unspecified"
            && matches!(word.as_str(), "organism" | "ligament" | "cause" | "agent" | "joint" | "muscle" | "tendon");
        let no_complications = (word == "without" || word == "complication")
            && tokens.windows(2).any(|w| w[0].word == "without" && w[1].word == "complication");
        // "without foreign body" is the default of an open wound; it is rarely written.
        let no_foreign_body = matches!(word.as_str(), "without" | "foreign" | "body")
            && tokens.windows(3).any(|w| w[0].word == "without" && w[1].word == "foreign" && w[2].word == "body");
        let unspecified_side = i > 0 && tokens[i - 1].word == "unspecified" && SIDED.contains(&word.as_str());
        if unspecified_side {
            side_unspecified = true;
        }
        // "X and other diseases of Y": what follows names a residual group, not something to document.
        if word == "and" && required.len() >= 2 && tokens.get(i + 1).is_some_and(|n| n.word == "other") {
            alternatives = true;
        }
        if word == "unilateral" {
            unilateral = true;
            continue;
        }
        if let Some(l) = laterality_of(&word).filter(|_| !token.aside) {
            side = Some(l);
            continue;
        }
        if is_stopword(&word) || word == "secondary" && tokens.get(i + 1).is_some_and(|n| n.word == "to") {
            continue;
        }
        if token.aside
            || alternatives
            || after_unspecified
            || no_complications
            || no_foreign_body
            || absent
            || unspecified_side
            || is_filler(&word)
        {
            optional.push(word);
        } else {
            required.push(word);
        }
    }
    let side = match side {
        Some(l) if unilateral => TermSide::One(l),
        Some(l) => TermSide::Is(l),
        None if side_unspecified => TermSide::Unspecified,
        None => TermSide::Any,
    };
    (required, optional, side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_keep_what_must_be_documented() {
        let (req, opt, side) = term_words("Iron deficiency anemia secondary to blood loss (chronic)");
        assert_eq!(req, ["iron", "deficiency", "anemia", "blood", "loss"]);
        assert_eq!(opt, ["chronic"]);
        assert_eq!(side, TermSide::Any);
        let (req, _, side) = term_words("Unilateral primary osteoarthritis, right hip");
        assert_eq!(req, ["primary", "osteoarthritis", "hip"]);
        assert_eq!(side, TermSide::One(Laterality::Right));
        let (req, opt, _) = term_words("Sprain of unspecified ligament of right ankle");
        assert_eq!(req, ["sprain", "ankle"]);
        assert!(opt.contains(&"ligament".to_owned()));
        let (req, _, _) = term_words("Type 2 diabetes mellitus without complications");
        assert_eq!(req, ["2", "diabetes", "mellitus"]);
    }

    #[test]
    fn residual_groups_are_optional() {
        let (req, opt, _) =
            term_words("Family history of ischemic heart disease and other diseases of the circulatory system");
        assert_eq!(req, ["family", "history", "ischemic", "heart"]);
        assert!(opt.contains(&"circulatory".to_owned()));
    }

    #[test]
    fn seventh_character_stems_are_indexed() {
        let table = CodeTable::embedded().unwrap();
        assert_eq!(seventh_code(table, "S62.336", 'A'), Some("S62.336A"));
        assert_eq!(seventh_code(table, "E11.329", '3'), Some("E11.3293"));
        let index = Index::embedded().unwrap();
        let stem = table.entries().iter().position(|e| e.code == "S62.336").unwrap();
        assert!(index.terms.iter().any(|t| t.entry == stem && t.needs_seventh));
        let hefh = table.entries().iter().position(|e| e.code == "E78.011").unwrap();
        assert!(index.terms.iter().any(|t| t.entry == hefh && !t.needs_seventh));
    }
}
