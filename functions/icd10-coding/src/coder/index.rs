//! A lexical index of the code table: every billable code's description and inclusion terms (and the stems of
//! codes that take a 7th character), as weighted words, searched by the words of a clause.
//!
//! Weights are inverse document frequencies, so `metacarpal` counts for more than `fracture`. ICD-10-CM's own
//! convention marks nonessential modifiers with parentheses: those words are optional here.

use std::borrow::Cow;
use std::collections::HashMap;

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

/// One description or inclusion term, its word ids held in the index's flat list.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TermRecord {
    entry: u32,
    /// Where its required word ids start in `Index::ids`; the optional ones follow them.
    start: u32,
    required_len: u16,
    optional_len: u16,
    side: TermSide,
    needs_seventh: bool,
    inclusion: bool,
    required_weight: f32,
}

/// A term as the matcher reads it.
#[derive(Debug, Clone, Copy)]
pub struct Term<'a> {
    /// Index of the code (or 7th-character stem) in the table.
    pub entry: usize,
    pub required: &'a [u32],
    pub optional: &'a [u32],
    pub required_weight: f32,
    pub side: TermSide,
    /// The code needs a 7th character chosen from the clause.
    pub needs_seventh: bool,
    /// From an inclusion term rather than the description.
    pub inclusion: bool,
}

/// A term before interning: entry, required words, optional words, side, needs a 7th character, inclusion.
type RawTerm = (usize, Vec<String>, Vec<String>, TermSide, bool, bool);

/// The one code index of the tool: built from the table by [`Index::build`] (the build script does it once and
/// embeds the result, which [`Index::from_bytes`] reads back at cold start without tokenizing anything).
#[derive(Debug, PartialEq)]
pub struct Index {
    records: Vec<TermRecord>,
    /// Every term's required then optional word ids, one run per term.
    ids: Vec<u32>,
    /// The words, sorted, concatenated; a word's id is its rank.
    word_text: Cow<'static, str>,
    word_ends: Vec<u32>,
    weights: Vec<f32>,
    posting_ends: Vec<u32>,
    /// The terms that require each word, word by word.
    postings: Vec<u32>,
}

/// What the embedded form starts with; a blob without it is not read.
const MAGIC: &[u8; 8] = b"ICDIDX02";

impl Index {
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
            // Brackets enclose synonyms (I.A.7): a closing "[croup]", "[common cold]", "[fifth disease]" names
            // the code's condition by itself. Eponyms and acronyms are left to the code's own words ("[Sweet]",
            // "[Wells]" are also plain words), as are a residual's brackets and part lists ("[any part]").
            if let Some(synonym) = closing_synonym(entry.code, entry.description) {
                let (req, opt, side) = term_words(synonym);
                if !req.is_empty() {
                    raw.push((i, req, opt, side, needs_seventh, true));
                }
            }
        }
        // "Other specified viral diseases": a residual code is never found by one word.
        raw.retain(|(_, req, opt, ..)| !(req.len() < 2 && opt.iter().any(|w| w == "other")));
        // Word ids are ranks in sorted order, so the embedded form looks words up by binary search.
        let mut vocabulary: Vec<&str> =
            raw.iter().flat_map(|(_, req, opt, ..)| req.iter().chain(opt.iter())).map(String::as_str).collect();
        vocabulary.sort_unstable();
        vocabulary.dedup();
        let id_of = |w: &str| vocabulary.binary_search(&w).map_or(0, |i| i as u32);
        let mut records = Vec::with_capacity(raw.len());
        let mut ids = Vec::new();
        for (entry, req, opt, side, needs_seventh, inclusion) in &raw {
            let mut required: Vec<u32> = req.iter().map(|w| id_of(w)).collect();
            required.sort_unstable();
            required.dedup();
            // A word counts once: as required if it is, else as optional.
            let mut optional: Vec<u32> = opt.iter().map(|w| id_of(w)).collect();
            optional.sort_unstable();
            optional.dedup();
            optional.retain(|id| required.binary_search(id).is_err());
            records.push(TermRecord {
                entry: *entry as u32,
                start: ids.len() as u32,
                required_len: required.len().min(u16::MAX as usize) as u16,
                optional_len: optional.len().min(u16::MAX as usize) as u16,
                side: *side,
                needs_seventh: *needs_seventh,
                inclusion: *inclusion,
                required_weight: 0.0,
            });
            ids.extend(required);
            ids.extend(optional);
        }
        let weights = idf_weights(&records, &ids, vocabulary.len());
        let mut word_text = String::new();
        let mut word_ends = Vec::with_capacity(vocabulary.len());
        for w in &vocabulary {
            word_text.push_str(w);
            word_ends.push(word_text.len() as u32);
        }
        let mut index = Self {
            records,
            ids,
            word_text: Cow::Owned(word_text),
            word_ends,
            weights,
            posting_ends: Vec::new(),
            postings: Vec::new(),
        };
        index.finish();
        index
    }

    /// Required weights and postings, which follow from the terms and the word weights.
    /// Weighs every term and inverts the terms into each word's postings, in term order. A counting pass sizes
    /// each word's run first, so the postings are filled in place (one list per word took a fifth of the read).
    fn finish(&mut self) {
        let mut counts = vec![0u32; self.weights.len()];
        for t in 0..self.records.len() {
            let Some(record) = self.records.get(t).copied() else { continue };
            let required = self.required_ids(&record);
            let weight: f32 = required.iter().map(|&w| self.weight(w)).sum();
            for &w in required {
                if let Some(count) = counts.get_mut(w as usize) {
                    *count += 1;
                }
            }
            if let Some(r) = self.records.get_mut(t) {
                r.required_weight = weight;
            }
        }
        self.posting_ends.clear();
        let mut end = 0;
        for count in &counts {
            end += count;
            self.posting_ends.push(end);
        }
        // Where each word's next posting goes: the start of its run.
        let mut next: Vec<u32> = self.posting_ends.iter().zip(&counts).map(|(end, count)| end - count).collect();
        let mut postings = vec![0; end as usize];
        for (t, record) in self.records.iter().enumerate() {
            for &w in self.required_ids(record) {
                if let Some(at) = next.get_mut(w as usize)
                    && let Some(slot) = postings.get_mut(*at as usize)
                {
                    *slot = t as u32;
                    *at += 1;
                }
            }
        }
        self.postings = postings;
    }

    fn required_ids(&self, r: &TermRecord) -> &[u32] {
        let start = r.start as usize;
        self.ids.get(start..start + r.required_len as usize).unwrap_or(&[])
    }

    fn optional_ids(&self, r: &TermRecord) -> &[u32] {
        let start = r.start as usize + r.required_len as usize;
        self.ids.get(start..start + r.optional_len as usize).unwrap_or(&[])
    }

    /// The term `t` (a posting), if there is one.
    pub fn term(&self, t: u32) -> Option<Term<'_>> {
        let r = self.records.get(t as usize)?;
        Some(Term {
            entry: r.entry as usize,
            required: self.required_ids(r),
            optional: self.optional_ids(r),
            required_weight: r.required_weight,
            side: r.side,
            needs_seventh: r.needs_seventh,
            inclusion: r.inclusion,
        })
    }

    pub fn terms(&self) -> impl Iterator<Item = Term<'_>> {
        (0..self.records.len() as u32).filter_map(|t| self.term(t))
    }

    fn word_at(&self, id: usize) -> &str {
        let start = if id == 0 { 0 } else { self.word_ends.get(id - 1).map_or(0, |&e| e as usize) };
        let end = self.word_ends.get(id).map_or(start, |&e| e as usize);
        self.word_text.get(start..end).unwrap_or("")
    }

    pub fn word(&self, word: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.word_ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.word_at(mid).cmp(word) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    pub fn weight(&self, word: u32) -> f32 {
        self.weights.get(word as usize).copied().unwrap_or(0.0)
    }

    pub fn postings(&self, word: u32) -> &[u32] {
        let w = word as usize;
        let start = if w == 0 { 0 } else { self.posting_ends.get(w - 1).map_or(0, |&e| e as usize) };
        let end = self.posting_ends.get(w).map_or(start, |&e| e as usize);
        self.postings.get(start..end).unwrap_or(&[])
    }

    /// The compact form the build script embeds, little-endian, one column after another: the words as text and
    /// their lengths (`u8`), then each term's table entry (`u32`), its word counts (`u8` required, `u8` optional)
    /// and its side and flags (`u8`), then the terms' word ids (`u16`). What follows from these (where a term's
    /// ids start, the word weights, the postings) is not stored: [`Index::from_bytes`] works it out as
    /// [`Index::build`] does. Half the size of fixed `u32` records, so it inflates in half the time. `None` if a
    /// value does not fit its column (the build then fails).
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(24 + self.word_text.len() + self.word_ends.len() + self.records.len() * 7);
        out.extend_from_slice(MAGIC);
        for n in [self.word_ends.len(), self.word_text.len(), self.records.len(), self.ids.len()] {
            out.extend_from_slice(&u32::try_from(n).ok()?.to_le_bytes());
        }
        out.extend_from_slice(self.word_text.as_bytes());
        let mut previous = 0;
        for &end in &self.word_ends {
            out.push(u8::try_from(end.checked_sub(previous)?).ok()?);
            previous = end;
        }
        let mut next_start = 0u32;
        for r in &self.records {
            // The ids are stored term after term, so each start is the sum of the counts before it.
            if r.start != next_start {
                return None;
            }
            next_start += u32::from(r.required_len) + u32::from(r.optional_len);
            let (side, l) = match r.side {
                TermSide::Any => (0u8, None),
                TermSide::Unspecified => (1, None),
                TermSide::Is(l) => (2, Some(l)),
                TermSide::One(l) => (3, Some(l)),
            };
            let l = match l {
                None => 0u8,
                Some(Laterality::Right) => 1,
                Some(Laterality::Left) => 2,
                Some(Laterality::Bilateral) => 3,
            };
            out.extend_from_slice(&r.entry.to_le_bytes());
            out.push(u8::try_from(r.required_len).ok()?);
            out.push(u8::try_from(r.optional_len).ok()?);
            out.push(side | l << 2 | u8::from(r.needs_seventh) << 4 | u8::from(r.inclusion) << 5);
        }
        if next_start as usize != self.ids.len() {
            return None;
        }
        for &id in &self.ids {
            out.extend_from_slice(&u16::try_from(id).ok()?.to_le_bytes());
        }
        Some(out)
    }

    /// Reads the embedded form back; `None` if it is not one (then the caller builds from the table).
    pub fn from_bytes(bytes: &'static [u8]) -> Option<Self> {
        let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let mut take = |n: usize| -> Option<&'static [u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let mut count = || -> Option<usize> {
            let b = take(4)?;
            Some(u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]) as usize)
        };
        let (n_words, text_len, n_records, n_ids) = (count()?, count()?, count()?, count()?);
        let word_text = std::str::from_utf8(take(text_len)?).ok()?;
        let mut end = 0u32;
        let word_ends: Vec<u32> = take(n_words)?
            .iter()
            .map(|&len| {
                end += u32::from(len);
                end
            })
            .collect();
        let raw_records = take(n_records.checked_mul(7)?)?;
        let ids: Vec<u32> =
            take(n_ids.checked_mul(2)?)?.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect();
        if !rest.is_empty() || end as usize != text_len || ids.iter().any(|&id| id as usize >= n_words) {
            return None;
        }
        let mut start = 0u32;
        let records: Vec<TermRecord> = raw_records
            .chunks_exact(7)
            .map(|r| {
                let (required_len, optional_len, meta) = (r[4], r[5], r[6]);
                let l = match meta >> 2 & 3 {
                    1 => Laterality::Right,
                    2 => Laterality::Left,
                    _ => Laterality::Bilateral,
                };
                let record = TermRecord {
                    entry: u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                    start,
                    required_len: u16::from(required_len),
                    optional_len: u16::from(optional_len),
                    side: match meta & 3 {
                        0 => TermSide::Any,
                        1 => TermSide::Unspecified,
                        2 => TermSide::Is(l),
                        _ => TermSide::One(l),
                    },
                    needs_seventh: meta >> 4 & 1 == 1,
                    inclusion: meta >> 5 & 1 == 1,
                    required_weight: 0.0,
                };
                start += u32::from(required_len) + u32::from(optional_len);
                record
            })
            .collect();
        if start as usize != n_ids {
            return None;
        }
        let weights = idf_weights(&records, &ids, n_words);
        let mut index = Self {
            records,
            ids,
            word_text: Cow::Borrowed(word_text),
            word_ends,
            weights,
            posting_ends: Vec::new(),
            postings: Vec::new(),
        };
        index.finish();
        Some(index)
    }
}

/// Each word's weight: the inverse frequency of the terms that require it, at least 0.5 (a word that is only ever
/// optional weighs as a word of one term).
fn idf_weights(records: &[TermRecord], ids: &[u32], n_words: usize) -> Vec<f32> {
    let mut df = vec![0u32; n_words];
    for r in records {
        let start = r.start as usize;
        for &id in ids.get(start..start + r.required_len as usize).unwrap_or(&[]) {
            if let Some(d) = df.get_mut(id as usize) {
                *d += 1;
            }
        }
    }
    let n = records.len().max(1) as f32;
    df.iter().map(|&d| (n / (d.max(1) as f32)).ln().max(0.5)).collect()
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

/// The synonym a description closes with in brackets, when it is a lowercase name of the whole condition (the
/// brackets of chapters 16 and 21 explain a word: "[battery]", "[part of]").
fn closing_synonym<'a>(code: &str, description: &'a str) -> Option<&'a str> {
    if code.starts_with('P') || code.starts_with('Z') {
        return None;
    }
    let body = description.strip_suffix(']')?;
    let (head, synonym) = body.rsplit_once('[')?;
    let residual = head.starts_with("Other") || head.starts_with("Unspecified");
    let plain = synonym.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && synonym.chars().all(|c| c.is_ascii_lowercase() || c == ' ' || c == '\'' || c == '-');
    let part_list = synonym.starts_with("any ") || synonym.contains("except");
    (plain && !residual && !part_list && !head.trim_end().ends_with(']')).then_some(synonym)
}

/// Required words, optional words and the side a description or inclusion term names.
pub fn term_words(text: &str) -> (Vec<String>, Vec<String>, TermSide) {
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
    let mut except_left = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        let word = token.word.clone();
        let absent = without_left > 0 && word != "of";
        // "without loss of consciousness", "without spontaneous rupture of ear drum": an absent event's object
        // is as absent as the event; elsewhere `of` starts the site ("without foreign body of right hand").
        let absent_event = i > 0 && matches!(tokens[i - 1].word.as_str(), "loss" | "rupture" | "evidence");
        without_left = match word.as_str() {
            "without" if !required.is_empty() => 4,
            "of" if without_left > 0 && absent_event => 3,
            "of" | "with" => 0,
            _ => without_left.saturating_sub(1),
        };
        // "due to plants, except food", "except ankle and foot": what a code excepts is never documented for it.
        if word == "except" {
            except_left = 3;
        }
        let excepted = except_left > 0;
        except_left = except_left.saturating_sub(1);
        let absent = absent || word == "without" && without_left == 4;
        // "unspecified organism", "unspecified ligament": what is unspecified need not be documented; nor
        // need "without complications", the default when none is documented. (Not "tendon": the only code with
        // "unspecified tendon", M66.9, would be coded from "spontaneous rupture" of an eardrum.)
        let after_unspecified = i > 1
            && tokens[i - 1].word == "unspecified"
            && matches!(
                word.as_str(),
                "organism"
                    | "ligament"
                    | "cause"
                    | "agent"
                    | "joint"
                    | "muscle"
                    | "quadrant"
                    | "location"
                    | "degree"
                    | "trimester"
                    | "episode"
                    | "severity"
            );
        let no_complications = (word == "without" || word == "complication")
            && tokens.windows(2).any(|w| w[0].word == "without" && w[1].word == "complication");
        // "without foreign body" is the default of an open wound; it is rarely written.
        let no_foreign_body = matches!(word.as_str(), "without" | "foreign" | "body")
            && tokens.windows(3).any(|w| w[0].word == "without" && w[1].word == "foreign" && w[2].word == "body");
        let unspecified_side = i > 0 && tokens[i - 1].word == "unspecified" && SIDED.contains(&word.as_str());
        if unspecified_side {
            side_unspecified = true;
        }
        // "unspecified ovary", "unspecified knee": the side is unspecified, the organ is not, so it stays
        // required ("cancer" alone is no neoplasm of the ovary). "Unspecified side" names nothing, and the ear
        // chapter's conditions name their organ ("otitis media" is of an ear).
        let unspecified_side = unspecified_side && matches!(word.as_str(), "side" | "ear");
        // "A fracture not indicated as displaced or nondisplaced should be coded to displaced" (I.C.19.c.1):
        // the default need not be written; "nondisplaced" stays required. Nor need "uncomplicated", the default
        // of a use or dependence without a named complication.
        let displaced_default = word == "displaced" || word == "uncomplicated";
        // "X and other diseases of Y": what follows names a residual group, not something to document.
        if word == "and" && required.len() >= 2 && tokens.get(i + 1).is_some_and(|n| n.word == "other") {
            alternatives = true;
        }
        // "Dizziness and giddiness", "…, ankle and foot": `and` in a title means "and/or" (I.A.14), so the word
        // after a final `and` need not be documented.
        if word == "and" && !required.is_empty() && i + 2 == tokens.len() {
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
            || excepted
            || unspecified_side
            || displaced_default
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
    fn the_embedded_index_is_the_one_the_table_builds() {
        let table = CodeTable::embedded().unwrap();
        let built = Index::build(table);
        assert_eq!(Index::embedded().unwrap(), &built);
        let bytes: &'static [u8] = Box::leak(built.to_bytes().unwrap().into_boxed_slice());
        assert_eq!(Index::from_bytes(bytes).as_ref(), Some(&built));
        assert!(Index::from_bytes(&bytes[..bytes.len() - 4]).is_none(), "a cut blob is refused");
        assert!(Index::from_bytes(b"not an index").is_none());
    }

    #[test]
    fn seventh_character_stems_are_indexed() {
        let table = CodeTable::embedded().unwrap();
        assert_eq!(seventh_code(table, "S62.336", 'A'), Some("S62.336A"));
        assert_eq!(seventh_code(table, "E11.329", '3'), Some("E11.3293"));
        let index = Index::embedded().unwrap();
        let stem = table.entries().iter().position(|e| e.code == "S62.336").unwrap();
        assert!(index.terms().any(|t| t.entry == stem && t.needs_seventh));
        let hefh = table.entries().iter().position(|e| e.code == "E78.011").unwrap();
        assert!(index.terms().any(|t| t.entry == hefh && !t.needs_seventh));
    }
}
