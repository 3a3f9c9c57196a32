//! The outpatient coding rules (Official Guidelines Section IV with the Section I conventions) applied to
//! what the index matched: context, integral symptoms, combination codes, long-term drug therapy, BMI and
//! Excludes1.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::alphabetic;
use super::context::{Analysis, Clause, Section, analyse};
use super::encounter;
use super::index::{Index, TermSide, seventh_code};
use super::text::Laterality;
use super::{Assertion, Basis, Coding, Proposal, SkipReason, Skipped, Span};
use crate::table::{CodeEntry, CodeTable};

/// A term must have this share of its required (weighted) words documented.
const MIN_STRENGTH: f32 = 0.8;

#[derive(Debug, Clone)]
struct Candidate {
    code: &'static str,
    /// Positions (in the clause) of the words matched.
    matched: Vec<usize>,
    matched_weight: f32,
    strength: f32,
    score: f32,
    /// Matched one side of a condition documented on both, where the category has no bilateral code.
    one_of_both: bool,
    /// An "Unspecified …" or "Other …" code: the default or the residual of its category.
    residual: bool,
}

#[derive(Debug, Clone)]
struct Found {
    proposal: Proposal,
    item: usize,
    score: f32,
}

pub fn code(table: &CodeTable, index: &Index, note: &str) -> Coding {
    let analysis = analyse(note);
    let mut found: Vec<Found> = Vec::new();
    let mut skipped: Vec<Skipped> = analysis
        .not_documentation
        .iter()
        .map(|&span| Skipped { code: None, span, reason: SkipReason::NotDocumentation })
        .collect();

    // A visit after active treatment of an injury takes the subsequent-encounter 7th character (I.C.19.a).
    let follow_up = encounter::follow_up_visit(note, &analysis);
    for clause in coded_clauses(&analysis) {
        let before = found.len();
        let mut queue = select(index, table, clause, follow_up);
        let mut reselected = false;
        let mut next = 0;
        while let Some(mut candidate) = queue.get(next).cloned() {
            next += 1;
            if clause.family && matches!(candidate.code, "Z80.8" | "Z80.9") {
                candidate.code = family_cancer_by_site(index, table, clause, follow_up).unwrap_or(candidate.code);
            }
            let span = evidence_span(clause, &candidate.matched);
            let description = table.get(candidate.code).map_or("", |e| e.description);
            match judge(clause, &candidate, description) {
                Err(reason) => {
                    skipped.push(Skipped { code: Some(candidate.code), span, reason });
                    // An uncertain diagnosis is not coded; what the clause states with certainty is — the
                    // documented sign, the condition without its uncertain qualifier (IV.D, IV.H).
                    if reason == SkipReason::Uncertain && !reselected {
                        reselected = true;
                        let certain = certain_part(clause);
                        for c in select(index, table, &certain, follow_up) {
                            if !queue.iter().any(|q| q.code == c.code) {
                                queue.push(c);
                            }
                        }
                    }
                }
                Ok(None) => {}
                Ok(Some(assertion)) => {
                    let Some(entry) = table.billable(candidate.code) else { continue };
                    let basis = match assertion {
                        Assertion::Present if is_symptom(entry.code, entry.description) => {
                            Basis::SymptomWithoutDiagnosis
                        }
                        Assertion::Present => Basis::DiagnosisMatch,
                        _ => Basis::History,
                    };
                    found.push(Found {
                        proposal: Proposal {
                            code: entry.code,
                            description: entry.description,
                            evidence: vec![span],
                            assertion,
                            basis,
                            match_strength: candidate.strength.min(1.0),
                        },
                        item: clause.item,
                        score: candidate.score,
                    });
                }
            }
        }
        // Where the tabular's wording found no history code, the Index's History subterms may (I.C.21.c.4).
        let history_found = found.get(before..).unwrap_or_default().iter().any(|f| is_history_code(f.proposal.code));
        if !history_found && let Some((code, at)) = alphabetic::history_code(table, clause) {
            let Some(entry) = table.billable(code) else { continue };
            let family = code.starts_with("Z8") && code.get(..3).is_some_and(|z| z < "Z85");
            found.push(Found {
                proposal: Proposal {
                    code: entry.code,
                    description: entry.description,
                    evidence: vec![evidence_span(clause, &at)],
                    assertion: if family { Assertion::FamilyHistory } else { Assertion::PersonalHistory },
                    basis: Basis::History,
                    match_strength: 1.0,
                },
                item: clause.item,
                score: 1.0,
            });
        }
        index_walk(table, clause, &mut found, before, follow_up);
        // Z86.73 is the history of a stroke "without residual deficits": with a deficit documented the stroke's
        // sequela is coded instead (I.C.9.d), never the history code.
        let residual = clause.words.iter().any(|w| {
            w.negated_by.is_none()
                && matches!(
                    w.token.word.as_str(),
                    "residual" | "sequela" | "sequelae" | "hemiparesis" | "hemiplegia" | "aphasia" | "weakness"
                )
        });
        if residual && let Some(from) = found.get(before..).map(|f| f.len()) {
            let keep_until = found.len() - from;
            let mut k = 0;
            found.retain(|f| {
                k += 1;
                k <= keep_until || f.proposal.code != "Z86.73"
            });
        }
    }

    bph_with_its_symptoms(table, note, &mut found);
    drop_integral_symptoms(table, &mut found, &mut skipped);
    drop_less_specified(&mut found);
    combine(table, &mut found);
    long_term_drugs(table, &analysis, &mut found, &mut skipped);
    body_mass_index(table, note, &mut found);
    encounter_reasons(table, note, &analysis, &mut found);
    // A follow-up after completed treatment is reported with the history code of the treated condition (I.C.21.c.8).
    if let Some(z09) =
        found.iter().find(|f| f.proposal.code == "Z09").and_then(|f| f.proposal.evidence.first().copied())
    {
        let visit_reason = coded_clauses(&analysis)
            .filter(|c| c.section == Section::Assessment && c.span.start <= z09.end)
            .filter(|c| {
                analysis.clauses.iter().any(|o| o.item == c.item && o.span.start <= z09.start && z09.start < o.span.end)
            })
            .filter_map(|c| alphabetic::history_code_as(table, c, true).map(|(code, at)| (c, code, at)))
            .find(|(_, code, _)| code.starts_with("Z8"));
        if let Some((clause, code, at)) = visit_reason
            && let Some(entry) = table.billable(code)
            && !found.iter().any(|f| f.proposal.code == entry.code)
        {
            found.push(Found {
                proposal: Proposal {
                    code: entry.code,
                    description: entry.description,
                    evidence: vec![evidence_span(clause, &at)],
                    assertion: Assertion::PersonalHistory,
                    basis: Basis::History,
                    match_strength: 1.0,
                },
                item: clause.item,
                score: 1.0,
            });
        }
    }
    resolve_excludes1(table, &mut found, &mut skipped);

    // One proposal per code, with every span that supports it.
    let mut by_code: BTreeMap<&'static str, Proposal> = BTreeMap::new();
    for f in found {
        by_code
            .entry(f.proposal.code)
            .and_modify(|p| {
                p.evidence.extend(f.proposal.evidence.iter().copied());
                p.match_strength = p.match_strength.max(f.proposal.match_strength);
            })
            .or_insert(f.proposal);
    }
    let proposals = by_code
        .into_values()
        .map(|mut p| {
            p.evidence.sort();
            p.evidence.dedup();
            p
        })
        .collect();
    Coding { proposals, skipped }
}

/// The Alphabetic Index's general walk (`alphabetic::index_code`) for one clause: where the tabular's wording
/// left the clause's condition at an unspecified code and the Index's subterms reach the axis the note documents
/// (stage, quadrant, side, class, subtype, site), the Index's code replaces it — when it is of the same category,
/// or its path covers every word the unspecified code rested on. A clause the tabular left uncoded takes the
/// Index's code only from a path of a main term and at least one subterm, all documented: one word never
/// carries a code.
fn index_walk(
    table: &CodeTable,
    clause: &Clause,
    found: &mut Vec<Found>,
    before: usize,
    follow_up: bool,
) -> Option<()> {
    let walked = alphabetic::index_code(table, clause)?;
    let code = match table.billable(walked.code) {
        Some(entry) => entry.code,
        None => choose_seventh(table, walked.code, clause, follow_up)?,
    };
    let entry = table.billable(code)?;
    let span = evidence_span(clause, &walked.at);
    let unspecified = |d: &str| d.to_lowercase().matches("unspecified").count();
    let from_clause = found.get_mut(before..)?;
    if from_clause.iter().any(|f| f.proposal.code == entry.code) {
        return Some(());
    }
    let covered = |f: &Found| {
        f.proposal.assertion == Assertion::Present
            && unspecified(f.proposal.description) > unspecified(entry.description)
            && (same_category(f.proposal.code, entry.code)
                || f.proposal.evidence.iter().all(|e| span.start <= e.start && e.end <= span.end))
    };
    // The code of the walked code's category, or else of the condition's own unspecified code (the main term's:
    // "Insomnia, unspecified" for insomnia due to anxiety), is the one it specifies. Another unspecified code of
    // that condition goes too; the rest stay ("code also" the anxiety disorder, the infection beside J44.0).
    let head = |f: &Found| !walked.head.is_empty() && same_category(f.proposal.code, walked.head);
    let at = from_clause
        .iter()
        .position(|f| covered(f) && same_category(f.proposal.code, entry.code))
        .or_else(|| from_clause.iter().position(|f| covered(f) && head(f)))
        .or_else(|| from_clause.iter().position(covered));
    if let Some(at) = at {
        let f = &mut from_clause[at];
        f.proposal.code = entry.code;
        f.proposal.description = entry.description;
        f.proposal.basis = Basis::AlphabeticIndex;
        f.proposal.evidence.push(span);
        let mut k = 0;
        found.retain(|f| {
            let keep = k < before || k == before + at || !(covered(f) && head(f));
            k += 1;
            keep
        });
        return Some(());
    }
    if !from_clause.is_empty() || walked.slots < 2 {
        return None;
    }
    found.push(Found {
        proposal: Proposal {
            code: entry.code,
            description: entry.description,
            evidence: vec![span],
            assertion: Assertion::Present,
            basis: Basis::AlphabeticIndex,
            match_strength: 1.0,
        },
        item: clause.item,
        score: 1.0,
    });
    Some(())
}

/// A condition documented with its axis in one place and without it in another ("Generalized anxiety disorder.
/// Insomnia due to anxiety.", "CKD stage 4 … Anemia in CKD") is one condition, coded to the highest specificity
/// the note documents (I.B.1, I.A.17): the "unspecified" code yields to a code under the same parent that
/// specifies more. Under the same parent only: a symptom category holds different conditions side by side
/// ("Dyspnea, unspecified" R06.00 and "Wheezing" R06.2 are two findings, not one condition at two levels).
fn drop_less_specified(found: &mut Vec<Found>) {
    let unspecified = |d: &str| d.to_lowercase().matches("unspecified").count();
    let current = |f: &Found| f.proposal.assertion == Assertion::Present && !f.proposal.code.starts_with('Z');
    let specific: Vec<(&'static str, usize)> =
        found.iter().filter(|f| current(f)).map(|f| (f.proposal.code, unspecified(f.proposal.description))).collect();
    found.retain(|f| {
        let n = unspecified(f.proposal.description);
        !(current(f)
            && n > 0
            && specific
                .iter()
                .any(|&(code, m)| code != f.proposal.code && under_parent_of(f.proposal.code, code) && m < n))
    });
}

/// Z80–Z87 and the classification's own "old" history codes (I25.2).
fn is_history_code(code: &str) -> bool {
    code.get(..3).is_some_and(|z| ("Z80".."Z88").contains(&z)) || code == "I25.2"
}

/// A relative's cancer by the organ group the Tabular gives each Z80 code ("conditions classifiable to
/// C15-C26"): the clause read as the patient's own names the neoplasm's category, as the Index's "History,
/// family, malignant neoplasm (of) site" does. `None` when the site names no single group.
fn family_cancer_by_site(index: &Index, table: &CodeTable, clause: &Clause, follow_up: bool) -> Option<&'static str> {
    // The relative's cancer read as the patient's own and current: "family history of colon cancer" names the
    // site through "colon cancer", not through the patient's own history code (Z85.038).
    let mut own = clause.clone();
    own.family = false;
    for word in &mut own.words {
        word.history = false;
    }
    let neoplasms: Vec<&'static str> = select(index, table, &own, follow_up)
        .into_iter()
        .map(|c| c.code)
        .filter(|c| c.starts_with('C') && *c != "C80.1")
        .collect();
    let groups: HashSet<&'static str> = neoplasms
        .iter()
        .filter_map(|&neoplasm| {
            table.entries().iter().find(|e| {
                e.billable
                    && e.code.starts_with("Z80")
                    && e.inclusion_terms().any(|term| {
                        term.strip_prefix("Conditions classifiable to ")
                            .is_some_and(|refs| refs.split(", ").any(|r| CodeTable::reference_covers(r, neoplasm)))
                    })
            })
        })
        .map(|e| e.code)
        .collect();
    match groups.len() {
        1 => groups.into_iter().next(),
        _ => None,
    }
}

/// The assessment states what is coded; elsewhere only relatives' conditions are taken (family history is
/// often written in the history of present illness). A note without an assessment is read whole.
fn coded_clauses(analysis: &Analysis) -> impl Iterator<Item = &Clause> {
    analysis.clauses.iter().filter(move |c| !analysis.has_assessment || c.section == Section::Assessment || c.family)
}

fn select(index: &Index, table: &CodeTable, clause: &Clause, follow_up: bool) -> Vec<Candidate> {
    // Word ids with their positions; the history and family contexts add the words of the Z codes.
    let mut positions: HashMap<u32, Vec<usize>> = HashMap::new();
    // Each word of the clause looked up once.
    // The narrative's "presenting with" tells how the patient came, never a qualifier of the condition
    // ("Fever presenting with conditions classified elsewhere" is not any fever).
    let word_ids: Vec<Option<u32>> = clause
        .words
        .iter()
        .map(|w| if NARRATIVE.contains(&w.token.word.as_str()) { None } else { index.word(&w.token.word) })
        .collect();
    for (i, id) in word_ids.iter().enumerate() {
        if let Some(id) = *id {
            positions.entry(id).or_default().push(i);
        }
    }
    let history = clause.words.iter().any(|w| w.history);
    let mut virtual_words = Vec::new();
    if clause.family {
        virtual_words.extend(["family", "history"]);
    }
    if history {
        virtual_words.extend(["personal", "history", "old"]);
    }
    let virtual_ids: HashSet<u32> = virtual_words.iter().filter_map(|w| index.word(w)).collect();

    let context_ids: HashSet<u32> =
        ["family", "history", "personal", "long", "term", "use"].iter().filter_map(|w| index.word(w)).collect();
    // "Other X" is a specified form the classification does not list; the unspecified code is the default.
    let site_ids: HashSet<u32> = SITES.iter().filter_map(|w| index.word(w)).collect();
    let generic_ids: HashSet<u32> = ["disorder", "disease", "condition", "abnormality", "illness", "problem"]
        .iter()
        .filter_map(|w| index.word(w))
        .collect();
    let other_id = index.word("other");
    let injury_id = index.word("injury");
    let unspecified_id = index.word("unspecified");
    let mut acc: HashMap<u32, f32> = HashMap::new();
    // In a fixed order: sums of floats depend on it, and a code must not depend on a hash seed.
    for id in positions.keys().chain(virtual_ids.iter()).collect::<std::collections::BTreeSet<_>>() {
        let weight = index.weight(*id);
        for &t in index.postings(*id) {
            *acc.entry(t).or_default() += weight;
        }
    }

    let mut candidates = Vec::new();
    for (t, matched_weight) in acc {
        let Some(term) = index.term(t) else { continue };
        if term.required_weight <= 0.0 {
            continue;
        }
        let strength = matched_weight / term.required_weight;
        if strength < MIN_STRENGTH {
            continue;
        }
        let matched: Vec<usize> =
            term.required.iter().filter_map(|id| positions.get(id)).flat_map(|p| p.iter().copied()).collect();
        let real_weight: f32 =
            term.required.iter().filter(|id| positions.contains_key(id)).map(|&id| index.weight(id)).sum();
        let direct_weight: f32 = term
            .required
            .iter()
            .filter(|id| positions.get(id).is_some_and(|p| p.iter().any(|&i| !clause.words[i].token.aside)))
            .map(|&id| index.weight(id))
            .sum();
        // Parenthetical asides support a match but cannot carry it alone; neither can the words of the
        // context ("family history of", "long term use of").
        let content_weight: f32 = term
            .required
            .iter()
            .filter(|id| positions.contains_key(id) && !context_ids.contains(id))
            .map(|&id| index.weight(id))
            .sum();
        if content_weight < 1.0 || direct_weight < 0.5 * real_weight {
            continue;
        }
        // "Infection of bone NOS" is not any infection: an organ or function the term requires is documented.
        if term.required.iter().any(|id| site_ids.contains(id) && !positions.contains_key(id)) {
            continue;
        }
        // Nor is one word beside an optional organ ("Infection of bone NOS": bone is filler in fracture terms).
        if term.required.len() == 1
            && term.optional.iter().any(|id| site_ids.contains(id) && !positions.contains_key(id))
        {
            continue;
        }
        // "Illness, unspecified": a term of generic words alone never carries a code.
        if term.required.iter().all(|id| generic_ids.contains(id)) {
            continue;
        }
        // "Disorder of lung", "Sleep disorder": a code whose only required word is a site or function needs
        // its disorder word documented, or one generic word ("lungs clear") would carry it.
        if term.required.len() <= 2
            && term.required.iter().all(|id| site_ids.contains(id))
            && term.optional.iter().any(|id| generic_ids.contains(id))
            && !term.optional.iter().any(|id| generic_ids.contains(id) && positions.contains_key(id))
        {
            continue;
        }
        // "Unspecified disorder of eyelid", "Disease of pancreas, unspecified": a code named by a generic word
        // and its site is a disorder the provider calls a disorder; the site alone ("upper eyelid") is not one.
        let generic_head = table.entries().get(term.entry).is_some_and(|e| {
            let d = e.description.to_lowercase();
            [
                "disorder",
                "unspecified disorder",
                "other disorder",
                "disease of",
                "diseases of",
                "unspecified disease",
                "other disease",
            ]
            .iter()
            .any(|h| d.starts_with(h))
        });
        if generic_head && !generic_ids.iter().any(|id| positions.contains_key(id)) {
            continue;
        }
        // Nor is an organ an injury of it: "diverticulitis of sigmoid colon" is no "unspecified injury of sigmoid
        // colon". A code whose condition is an injury needs the injury documented.
        if injury_id.is_some_and(|id| term.required.contains(&id) && !positions.contains_key(&id)) {
            continue;
        }
        let term_code = table.entries().get(term.entry).map_or("", |e| e.code);
        let (side_bonus, one_of_both) = match (term.side, clause.laterality) {
            (TermSide::Any, _) | (TermSide::Unspecified, None) => (0.0, false),
            (TermSide::Is(l), Some(c)) if l == c => (1.0, false),
            (TermSide::One(l), Some(c)) if l == c => (1.0, false),
            // No bilateral code: each side is coded (I.B.13); a bilateral code, where there is one, scores higher.
            (TermSide::Is(l) | TermSide::One(l), Some(Laterality::Bilateral))
                if l != Laterality::Bilateral && !has_bilateral_sibling(table, term_code) =>
            {
                (0.5, true)
            }
            _ => continue,
        };
        let entry = &table.entries()[term.entry];
        let code = if term.needs_seventh {
            match choose_seventh(table, entry.code, clause, follow_up) {
                Some(code) => code,
                None => continue,
            }
        } else {
            entry.code
        };
        let z = code.get(..3).unwrap_or("");
        let family_code = ("Z80".."Z85").contains(&z);
        let history_code = ("Z85".."Z88").contains(&z) || z == "Z86" || z == "Z92";
        if family_code && !clause.family || history_code && !history {
            continue;
        }
        // An optional word supports a code only where it is stated: the "acute" of "probably viral URI" is not.
        let stated = |id: &u32| {
            positions
                .get(id)
                .is_some_and(|p| p.iter().any(|&i| !clause.words[i].uncertain && !clause.words[i].hypothetical))
        };
        let optional: f32 = term.optional.iter().filter(|id| stated(id)).map(|&id| index.weight(id)).sum::<f32>();
        // A required word left undocumented costs at least as much as a fairly specific word: common
        // anatomical words ("eye", "hand") still distinguish codes.
        let missing: f32 = term
            .required
            .iter()
            .filter(|id| !positions.contains_key(id) && !virtual_ids.contains(id))
            .map(|&id| index.weight(id).max(3.0))
            .sum();
        // Documented words a trigger outside the code's wording negates contradict the code.
        // Only a required trigger word is the code's own: an optional "without" (a default) negates as usual.
        let term_words: HashSet<u32> = term.required.iter().copied().collect();
        let contradicted: f32 = term
            .required
            .iter()
            .filter(|id| {
                positions.get(id).is_some_and(|p| {
                    p.iter().all(|&i| {
                        clause.words[i].negated_by.is_some_and(|t| {
                            word_ids.get(t).copied().flatten().is_none_or(|tid| !term_words.contains(&tid))
                        })
                    })
                })
            })
            .map(|&id| index.weight(id))
            .sum();
        candidates.push(Candidate {
            code,
            matched,
            matched_weight,
            strength,
            // Every documented word counts for a code, every required word left undocumented against it.
            score: matched_weight - 2.0 * missing - 2.0 * contradicted + 0.8 * optional
                - 0.05 * (term.optional.iter().filter(|&&id| Some(id) != unspecified_id).count() as f32)
                - 0.05 * (term.optional.iter().any(|&id| Some(id) == other_id) as u8 as f32)
                + side_bonus,
            one_of_both,
            residual: entry.description.starts_with("Unspecified") || entry.description.starts_with("Other"),
        });
    }
    // A relative's condition is coded only as family history (I.C.21.c.4): the patient's own codes for the same
    // words would take them from the family history code in the cover below.
    let family_code = |code: &str| code.get(..3).is_some_and(|z| ("Z80".."Z85").contains(&z));
    if clause.family && candidates.iter().any(|c| family_code(c.code)) {
        candidates.retain(|c| family_code(c.code));
    }
    // An "Unspecified …" code is the default when nothing more is documented, and an "Other …" code the residual
    // for a specified form the classification does not list: a code of the category whose every required word
    // is documented ("Colles' fracture of left radius" beside "Unspecified fracture of the lower end of left
    // radius") is the more specific statement and goes first.
    let specific: Vec<(&'static str, f32)> =
        candidates.iter().filter(|c| c.strength >= 1.0 && !c.residual).map(|c| (c.code, c.score)).collect();
    for c in candidates.iter_mut().filter(|c| c.residual) {
        if let Some(best) = specific
            .iter()
            .filter(|(code, score)| same_category(code, c.code) && *score >= c.score - 4.0)
            .map(|(_, score)| *score)
            .max_by(f32::total_cmp)
        {
            c.score = c.score.min(best - 0.01);
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.code.cmp(b.code)));

    // Greedy cover: each further code must rest mostly on words no better code has claimed.
    let mut chosen: Vec<Candidate> = Vec::new();
    let mut claimed: HashSet<String> = HashSet::new();
    for c in candidates {
        // One code per category and clause: a category is one condition at its levels of detail. A symptom
        // category (chapter 18) holds different findings side by side ("shortness of breath and wheezing",
        // R06.02 and R06.2; pain in two quadrants), so a symptom matched on words of its own is coded too.
        let own_finding = |k: &Candidate| c.code.starts_with('R') && c.matched.iter().all(|i| !k.matched.contains(i));
        if chosen.iter().any(|k| same_category(k.code, c.code) && !own_finding(k)) {
            continue;
        }
        let fresh: f32 = c
            .matched
            .iter()
            .filter_map(|&i| Some((clause.words.get(i)?.token.word.as_str(), word_ids.get(i).copied().flatten()?)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .filter(|(w, _)| !claimed.contains(*w))
            .map(|(_, id)| index.weight(id))
            .sum();
        // A lone fresh word that modifies a claimed one ("viral pharyngitis") is part of that concept.
        let fresh_positions: Vec<usize> =
            c.matched.iter().copied().filter(|&i| !claimed.contains(&clause.words[i].token.word)).collect();
        let modifier_only = fresh_positions.len() == 1
            && fresh_positions
                .iter()
                .all(|&i| clause.words.get(i + 1).is_some_and(|n| !n.expanded && claimed.contains(&n.token.word)));
        // A code the tabular asks for beside a chosen one ("use additional code to identify the type of heart
        // failure", "code first the underlying chronic kidney disease") may rest on the same words.
        let paired = chosen.iter().any(|k| {
            notes_say(table, k.code, |e| e.use_additional().any(|r| CodeTable::reference_covers(r, c.code)))
                || notes_say(table, c.code, |e| e.code_first().any(|r| CodeTable::reference_covers(r, k.code)))
        });
        if chosen.is_empty() || paired || fresh >= 2.5 && fresh >= 0.7 * c.matched_weight && !modifier_only {
            claimed.extend(c.matched.iter().map(|&i| clause.words[i].token.word.clone()));
            // A synonym and the note's word it stands for are one concept ("cancer" = "malignant neoplasm"):
            // a code resting on the synonym claims the note's word, so it cannot carry a second, vaguer code.
            let spans: Vec<Span> = c
                .matched
                .iter()
                .filter_map(|&i| clause.words.get(i))
                .filter(|w| w.expanded)
                .map(|w| w.token.span)
                .collect();
            claimed.extend(
                clause
                    .words
                    .iter()
                    .filter(|w| !w.expanded)
                    .filter(|w| spans.iter().any(|s| s.start <= w.token.span.start && w.token.span.end <= s.end))
                    .map(|w| w.token.word.clone()),
            );
            let other_side = c.one_of_both.then(|| other_side(table, c.code)).flatten();
            if let Some(code) = other_side {
                chosen.push(Candidate { code, ..c.clone() });
            }
            chosen.push(c);
        }
    }
    chosen
}

/// Whether the code's subcategory (or a code with a 7th character's stem's) has a bilateral code.
fn has_bilateral_sibling(table: &CodeTable, code: &str) -> bool {
    let entries = table.entries();
    let Some(prefix) = table.parent(code).map(|p| p.code) else { return false };
    let from = entries.partition_point(|e| e.code < prefix);
    entries
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|e| e.code.starts_with(prefix))
        .any(|e| e.description.to_lowercase().contains("bilateral"))
}

/// The same condition on the other side (`M19.041` → `M19.042`): the sibling whose description differs only
/// by right and left.
fn other_side(table: &CodeTable, code: &str) -> Option<&'static str> {
    let entry = table.billable(code)?;
    let description = entry.description.to_lowercase();
    let swapped = if description.contains("right") {
        description.replace("right", "left")
    } else if description.contains("left") {
        description.replace("left", "right")
    } else {
        return None;
    };
    // Under the parent, or for a code with a 7th character under the stem's parent.
    let entries = table.entries();
    let mut ancestor = table.parent(code);
    for _ in 0..2 {
        let prefix = ancestor?.code;
        let from = entries.partition_point(|e| e.code < prefix);
        let found = entries
            .get(from..)?
            .iter()
            .take_while(|e| e.code.starts_with(prefix))
            .find(|e| e.billable && e.code != entry.code && e.description.to_lowercase() == swapped);
        if let Some(e) = found {
            return Some(e.code);
        }
        ancestor = table.parent(prefix);
    }
    None
}

/// Whether `code` or one of its ancestors carries a note that `says`.
fn notes_say(table: &CodeTable, code: &str, says: impl Fn(&CodeEntry) -> bool) -> bool {
    let mut entry = table.get(code);
    while let Some(e) = entry {
        if says(e) {
            return true;
        }
        entry = table.parent(e.code);
    }
    false
}

/// Words of the story of the visit that the classification uses as qualifiers.
const NARRATIVE: &[&str] = &["presenting", "presents", "presented"];

/// Sites and functions: words that name where or what, never by themselves a condition ("lungs clear",
/// "normal growth and development").
const SITES: &[&str] = &[
    "lung",
    "heart",
    "kidney",
    "liver",
    "thyroid",
    "bone",
    "sleep",
    "skin",
    "eye",
    "ear",
    "growth",
    "development",
    "mood",
    "ligament",
    "joint",
    "muscle",
    "tendon",
    "nerve",
    "brain",
    "blood",
    "breast",
    "bladder",
    "prostate",
    "uterus",
    "ovary",
    "colon",
    "stomach",
    "intestine",
    "esophagus",
    "tooth",
    "teeth",
    "nail",
    "hair",
    "spine",
    "endocrine",
    "vascular",
    "respiratory",
    "cardiac",
    "renal",
    "hepatic",
    "digestive",
    "urinary",
    "nose",
    "throat",
];

/// Whether `other` lies under the parent of `code` (`N18.9` → `N18`: `N18.4` does; `R06.00` → `R06.0`: `R06.02`
/// does, `R06.2` does not).
fn under_parent_of(code: &str, other: &str) -> bool {
    let parent = code.get(..code.len().saturating_sub(1)).unwrap_or(code).trim_end_matches('.');
    parent.len() >= 3 && other.starts_with(parent)
}

/// Codes of one category compete within a clause: only the best of `B02.9`/`B02.39` is kept.
fn same_category(a: &str, b: &str) -> bool {
    a.get(..3) == b.get(..3)
}

/// The 7th character: laterality where it designates laterality, the encounter for injuries (initial
/// unless subsequent care or a sequela is documented), otherwise the best-matching meaning.
fn choose_seventh(table: &CodeTable, stem: &str, clause: &Clause, follow_up: bool) -> Option<&'static str> {
    let mut ancestor = table.get(stem);
    let mut options: Vec<(char, &'static str)> = Vec::new();
    while let Some(entry) = ancestor {
        options = entry.seventh_characters().collect();
        if !options.is_empty() {
            break;
        }
        ancestor = table.parent(entry.code);
    }
    let words: HashSet<&str> = clause.words.iter().map(|w| w.token.word.as_str()).collect();
    let has = |w: &str| words.contains(w);
    let pick = |wanted: &dyn Fn(&str) -> bool| options.iter().find(|(_, m)| wanted(m)).map(|(c, _)| *c);
    let healing = if has("nonunion") || has("non") && has("union") {
        "nonunion"
    } else if has("malunion") {
        "malunion"
    } else if has("delayed") {
        "delayed healing"
    } else {
        "routine healing"
    };
    let chosen = if options.iter().any(|(_, m)| m.contains("right") || m.contains("left")) {
        match clause.laterality {
            Some(Laterality::Right) => pick(&|m| m.starts_with("right")),
            Some(Laterality::Left) => pick(&|m| m.starts_with("left")),
            Some(Laterality::Bilateral) => pick(&|m| m.starts_with("bilateral")),
            None => pick(&|m| m.starts_with("unspecified")),
        }
    } else if options.iter().any(|(_, m)| m.contains("initial encounter")) {
        if has("sequela") || has("sequelae") {
            pick(&|m| m == "sequela")
        } else if has("subsequent")
            || has("followup")
            || has("recheck")
            || has("healing")
            || healing != "routine healing"
            || follow_up && !has("initial")
        {
            // A fracture's subsequent encounter carries how it heals (routine, delayed, nonunion, malunion) and,
            // where the category splits them, whether it was open (I.C.19.c.1 and the tabular's 7th characters).
            let subsequent = |open: bool| {
                pick(&|m| {
                    m.starts_with("subsequent encounter")
                        && (!m.contains("fracture") || m.contains(healing) && (m.contains("open") == open))
                })
            };
            subsequent(has("open"))
                .or_else(|| subsequent(!has("open")))
                .or_else(|| pick(&|m| m.starts_with("subsequent encounter") && !m.contains("fracture")))
        } else if has("open") {
            pick(&|m| m.starts_with("initial encounter for open"))
                .or_else(|| pick(&|m| m.starts_with("initial encounter")))
        } else {
            pick(&|m| m.starts_with("initial encounter for closed"))
                .or_else(|| pick(&|m| m.starts_with("initial encounter")))
        }
    } else {
        pick(&|m| m.split_whitespace().all(has))
            .or_else(|| pick(&|m| m.contains("unspecified") || m.contains("not applicable")))
    }?;
    seventh_code(table, stem, chosen)
}

/// The clause with its uncertain words blanked (positions kept, so triggers' indices still hold).
fn certain_part(clause: &Clause) -> Clause {
    let mut certain = clause.clone();
    for w in certain.words.iter_mut().filter(|w| w.uncertain) {
        w.token.word.clear();
    }
    certain
}

/// Asserted, history or family — or why not coded. `Ok(None)`: a current condition worded as history.
fn judge(clause: &Clause, c: &Candidate, description: &str) -> Result<Option<Assertion>, SkipReason> {
    let matched: HashSet<usize> = c.matched.iter().copied().collect();
    let total = c.matched.len().max(1) as f32;
    // A trigger the code's own wording contains ("without macular edema") negates nothing for that code.
    let negated =
        c.matched.iter().filter(|&&i| clause.words[i].negated_by.is_some_and(|t| !matched.contains(&t))).count() as f32;
    // A code named in two words is not stated when one of them is denied: "stable CAD, no angina" states no
    // stable angina (I20.89).
    if negated / total > 0.5 || total <= 2.0 && negated >= 1.0 {
        return Err(SkipReason::Negated);
    }
    // Any uncertain word the code rests on makes it uncertain: "headache, probably tension type" is not a
    // tension-type headache, "T2DM, possible neuropathy" no diabetic neuropathy (IV.H).
    if c.matched.iter().any(|&i| clause.words[i].uncertain) {
        return Err(SkipReason::Uncertain);
    }
    let hypothetical = c.matched.iter().filter(|&&i| clause.words[i].hypothetical).count() as f32;
    if hypothetical / total > 0.5 {
        return Err(SkipReason::Hypothetical);
    }
    // What is vaccinated against or screened for is the encounter layer's business, not a diagnosis.
    if c.matched.iter().filter(|&&i| clause.words[i].not_condition).count() as f32 / total > 0.5 {
        return Ok(None);
    }
    let z = c.code.get(..3).unwrap_or("");
    if ("Z80".."Z85").contains(&z) {
        return Ok(Some(Assertion::FamilyHistory));
    }
    if ("Z85".."Z88").contains(&z) || z == "Z92" || c.code == "Z91.81" {
        return Ok(Some(Assertion::PersonalHistory));
    }
    if clause.family {
        return Ok(None);
    }
    // A graft, implant or artificial joint in place is the patient's status, however its operation is
    // introduced ("s/p CABG": Z95.1).
    if c.code.starts_with("Z95") || c.code.starts_with("Z96") {
        return Ok(Some(Assertion::Present));
    }
    let history = c.matched.iter().filter(|&&i| clause.words[i].history).count() as f32;
    if history / total > 0.5 && !still_treated(clause) {
        // The classification codes some histories itself (old myocardial infarction, I25.2).
        return Ok(description.to_lowercase().starts_with("old ").then_some(Assertion::PersonalHistory));
    }
    Ok(Some(Assertion::Present))
}

/// "History of hypertension, well controlled on lisinopril", "history of breast cancer, on tamoxifen": a
/// condition still under treatment or control is current, whatever word introduces it (I.C.21.c.4: history codes
/// are for conditions that no longer exist; I.C.2.m).
fn still_treated(clause: &Clause) -> bool {
    let words: Vec<&str> = clause.words.iter().filter(|w| !w.expanded).map(|w| w.token.word.as_str()).collect();
    let drug = |w: &str| DRUGS.iter().any(|(d, _)| *d == w) || NO_SPECIFIC_CODE.contains(&w);
    // Antiplatelets and statins are secondary prevention after a TIA, stroke or infarction that is over
    // ("history of TIA, on clopidogrel": Z86.73); "currently off anticoagulation" is no treatment.
    let prevention = |w: &str| {
        matches!(w, "aspirin" | "clopidogrel" | "prasugrel" | "ticagrelor" | "statin") || w.ends_with("statin")
    };
    let currently = words.windows(2).any(|p| p[0] == "currently" && !matches!(p[1], "off" | "not" | "no" | "without"))
        || words.last() == Some(&"currently");
    currently
        || words.iter().any(|w| matches!(*w, "controlled" | "uncontrolled" | "managed" | "ongoing"))
        || words.windows(2).any(|p| matches!(p[0], "on" | "taking") && drug(p[1]) && !prevention(p[1]))
}

fn evidence_span(clause: &Clause, matched: &[usize]) -> Span {
    let start = matched.iter().map(|&i| clause.words[i].token.span.start).min();
    let end = matched.iter().map(|&i| clause.words[i].token.span.end).max();
    match (start, end) {
        (Some(start), Some(end)) => Span { start, end },
        _ => clause.span,
    }
}

/// Signs and symptoms routinely associated with a confirmed diagnosis in the same assessment item are not
/// coded (I.B.5); with only an uncertain diagnosis they are (IV.D).
fn drop_integral_symptoms(table: &CodeTable, found: &mut Vec<Found>, skipped: &mut Vec<Skipped>) {
    let symptom = |f: &Found| is_symptom(f.proposal.code, f.proposal.description);
    let confirmed: Vec<(usize, &'static str)> = found
        .iter()
        .filter(|f| f.proposal.assertion == Assertion::Present && !f.proposal.code.starts_with('Z') && !symptom(f))
        .map(|f| (f.item, f.proposal.code))
        .collect();
    // A diagnosis whose "use additional code" note names its symptoms (N40.1: nocturia, weak stream) keeps them.
    let asked_for = |dx: &str, code: &str| {
        let mut entry = table.get(dx);
        while let Some(e) = entry {
            if e.use_additional().any(|r| CodeTable::reference_covers(r, code)) {
                return true;
            }
            entry = table.parent(e.code);
        }
        false
    };
    found.retain(|f| {
        let integral = symptom(f)
            && confirmed.iter().any(|&(item, dx)| {
                (item == f.item || routinely_with(f.proposal.code, dx)) && !asked_for(dx, f.proposal.code)
            });
        if integral {
            skipped.push(Skipped {
                code: Some(f.proposal.code),
                span: f.proposal.evidence[0],
                reason: SkipReason::IntegralSymptom,
            });
        }
        !integral
    });
}

/// BPH documented with urinary symptoms ("BPH with urinary frequency and nocturia") is BPH with lower urinary tract
/// symptoms (N40.1), whose "use additional code" note names those symptoms, so they stay beside it; N40.0 is BPH
/// without them, coded only when nothing of the kind is documented or the note says "without".
fn bph_with_its_symptoms(table: &CodeTable, note: &str, found: &mut [Found]) {
    let Some(with) = table.billable("N40.1") else { return };
    let symptom = found.iter().any(|f| {
        f.proposal.assertion == Assertion::Present
            && with.use_additional().any(|r| CodeTable::reference_covers(r, f.proposal.code))
    });
    if !symptom {
        return;
    }
    for f in found.iter_mut().filter(|f| f.proposal.code == "N40.0" && f.proposal.assertion == Assertion::Present) {
        let says_without = f
            .proposal
            .evidence
            .iter()
            .any(|s| note.get(s.start..s.end).is_some_and(|q| q.to_lowercase().contains("without")));
        if !says_without {
            f.proposal.code = with.code;
            f.proposal.description = with.description;
        }
    }
}

/// Symptoms the classification's own body-system grouping ties to a family of diagnoses: a confirmed diagnosis
/// anywhere in the assessment accounts for them ("Acute cystitis. Dysuria." — I.B.5), as (symptom prefixes,
/// diagnosis prefixes).
const ROUTINE_SYMPTOMS: &[(&[&str], &[&str])] = &[
    // Urinary symptoms with urinary tract infections.
    (&["R30", "R35.0", "R39.1"], &["N30", "N10", "N39.0", "N34"]),
    // Cough, wheeze, shortness of breath, sore throat, congestion with acute respiratory infections,
    // asthma and COPD.
    (
        &["R05", "R06", "R07.0", "R09.81", "R09.82", "J02.9"],
        &[
            "J0", "J10", "J11", "J12", "J13", "J14", "J15", "J16", "J17", "J18", "J20", "J21", "J22", "J44", "J45",
            "U07.1",
        ],
    ),
    // Nausea, vomiting, diarrhea, abdominal pain with gastroenteritis and the acute digestive diagnoses.
    (&["R11", "R19.7", "R10"], &["A08", "A09", "K29", "K35", "K37", "K52.9", "K57", "K80", "K81", "K85"]),
    // Headache with migraine and the other headache syndromes.
    (&["R51"], &["G43", "G44"]),
    // Ear pain with otitis.
    (&["H92.0"], &["H60", "H65", "H66", "H67"]),
    // Myalgia with influenza and COVID-19.
    (&["M79.1"], &["J09", "J10", "J11", "U07.1"]),
    // Nasal congestion, sneezing, postnasal drip with allergic and chronic rhinitis and sinusitis.
    (&["R09.81", "R09.82", "R06.7"], &["J30", "J31", "J32"]),
    // Heartburn and epigastric pain with reflux, ulcer and gastritis.
    (&["R12", "R10.1"], &["K21", "K25", "K26", "K27", "K29", "K30"]),
    // Chest pain with angina and infarction; palpitations with the arrhythmias; dyspnea and edema with heart
    // failure.
    (&["R07"], &["I20", "I21", "I24"]),
    (&["R00"], &["I47", "I48", "I49"]),
    (&["R06.0", "R60"], &["I50"]),
    // Dizziness with vertigo of vestibular origin.
    (&["R42"], &["H81"]),
    // Joint pain with arthritis and gout of the joints.
    (&["M25.5"], &["M05", "M06", "M10", "M15", "M16", "M17", "M18", "M19"]),
    // Hematuria and flank pain with urinary calculus.
    (&["R31", "R10"], &["N20", "N21"]),
    // Rash and itch with dermatitis and the viral exanthems.
    (
        &["R21", "L29"],
        &["L20", "L21", "L22", "L23", "L24", "L25", "L26", "L27", "L28", "L30", "B01", "B02", "B05", "B08", "B09"],
    ),
    // Swollen glands with pharyngitis, tonsillitis and mononucleosis.
    (&["R59"], &["J02", "J03", "B27"]),
    // Pain at the site with an injury.
    (&["M25.5", "M79.6", "R52"], &["S"]),
    // Fever with acute infections.
    (&["R50"], &["A", "B0", "B3", "J0", "J1", "J20", "J21", "J22", "H66", "N10", "N30", "N39.0", "U07.1"]),
];

fn routinely_with(symptom: &str, diagnosis: &str) -> bool {
    ROUTINE_SYMPTOMS.iter().any(|(symptoms, diagnoses)| {
        symptoms.iter().any(|s| symptom.starts_with(s)) && diagnoses.iter().any(|d| diagnosis.starts_with(d))
    })
}

/// Chapter 18 and the pain codes of other chapters ("Pain in left arm", "Otalgia").
fn is_symptom(code: &str, description: &str) -> bool {
    let d = description.to_lowercase();
    code.starts_with('R')
        || d.starts_with("pain")
        || d.starts_with("otalgia")
        || d.starts_with("myalgia")
        || d.contains(" pain, ")
}

/// Combination codes the classification presumes ("with", I.A.15): diabetes with its complications,
/// hypertension with chronic kidney disease or heart failure.
fn combine(table: &CodeTable, found: &mut Vec<Found>) {
    let present = |found: &[Found], prefix: &str| {
        found.iter().position(|f| f.proposal.assertion == Assertion::Present && f.proposal.code.starts_with(prefix))
    };
    let replace = |found: &mut Vec<Found>, at: usize, code: &str, with: &[usize]| {
        let Some(entry) = table.billable(code) else { return };
        let extra: Vec<Span> = with.iter().flat_map(|&i| found[i].proposal.evidence.clone()).collect();
        let f = &mut found[at];
        f.proposal.code = entry.code;
        f.proposal.description = entry.description;
        f.proposal.basis = Basis::CombinationCode;
        f.proposal.evidence.extend(extra);
    };
    for diabetes in ["E08", "E09", "E10", "E11", "E13"] {
        let Some(d) = present(found, diabetes) else { continue };
        if found[d].proposal.code != format!("{diabetes}.9") {
            continue;
        }
        let complications = [("N18", "22"), ("R73.9", "65"), ("G62.9", "42"), ("G60.9", "42"), ("I73.9", "51")];
        for (with, suffix) in complications {
            if let Some(other) = present(found, with) {
                replace(found, d, &format!("{diabetes}.{suffix}"), &[other]);
                if !with.starts_with("N18") {
                    found.remove(other);
                }
                break;
            }
        }
    }
    // "Elevated blood-pressure reading, without diagnosis of hypertension" never stands beside the diagnosis.
    if found.iter().any(|f| f.proposal.assertion == Assertion::Present && f.proposal.code.starts_with("I1")) {
        found.retain(|f| f.proposal.code != "R03.0");
    }
    // Coronary atherosclerosis and angina are presumed linked (I.C.9.b): one code of I25.11-, by the angina's form.
    if let (Some(cad), Some(angina)) = (
        found.iter().position(|f| f.proposal.code == "I25.10" && f.proposal.assertion == Assertion::Present),
        present(found, "I20"),
    ) {
        let code = match found[angina].proposal.code {
            "I20.0" => "I25.110",
            "I20.1" => "I25.111",
            "I20.2" => "I25.112",
            "I20.9" => "I25.119",
            _ => "I25.118",
        };
        replace(found, cad, code, &[angina]);
        found.remove(angina);
    }
    if let Some(htn) = found.iter().position(|f| f.proposal.code == "I10" && f.proposal.assertion == Assertion::Present)
    {
        let ckd = present(found, "N18");
        let hf = present(found, "I50");
        let end_stage = ckd.is_some_and(|i| matches!(found[i].proposal.code, "N18.5" | "N18.6"));
        let with: Vec<usize> = ckd.into_iter().chain(hf).collect();
        let code = match (ckd.is_some(), hf.is_some()) {
            (true, true) if end_stage => Some("I13.2"),
            (true, true) => Some("I13.0"),
            (true, false) if end_stage => Some("I12.0"),
            (true, false) => Some("I12.9"),
            (false, true) => Some("I11.0"),
            _ => None,
        };
        if let Some(code) = code {
            replace(found, htn, code, &with);
            // The combination code is the hypertension wherever else the note names it ("HTN - at goal" in
            // another item): I10 is never reported beside I11–I13 (I.C.9.a).
            found.retain(|f| !(f.proposal.code == "I10" && f.proposal.assertion == Assertion::Present));
        }
    }
}

/// Drugs whose long-term use has its own Z79 code (I.C.21.c.3). Others (statins, levothyroxine, PPIs,
/// stimulants…) have none, and Z79.899 is not reported for them.
const DRUGS: &[(&str, &str)] = &[
    ("insulin", "Z79.4"),
    ("glargine", "Z79.4"),
    ("lispro", "Z79.4"),
    ("aspart", "Z79.4"),
    ("detemir", "Z79.4"),
    ("degludec", "Z79.4"),
    ("metformin", "Z79.84"),
    ("glipizide", "Z79.84"),
    ("glyburide", "Z79.84"),
    ("glimepiride", "Z79.84"),
    ("sitagliptin", "Z79.84"),
    ("linagliptin", "Z79.84"),
    ("saxagliptin", "Z79.84"),
    ("pioglitazone", "Z79.84"),
    ("empagliflozin", "Z79.84"),
    ("dapagliflozin", "Z79.84"),
    ("canagliflozin", "Z79.84"),
    ("semaglutide", "Z79.85"),
    ("liraglutide", "Z79.85"),
    ("dulaglutide", "Z79.85"),
    ("exenatide", "Z79.85"),
    ("tirzepatide", "Z79.85"),
    ("nsaid", "Z79.1"),
    ("ibuprofen", "Z79.1"),
    ("naproxen", "Z79.1"),
    ("meloxicam", "Z79.1"),
    ("diclofenac", "Z79.1"),
    ("celecoxib", "Z79.1"),
    ("indomethacin", "Z79.1"),
    ("etodolac", "Z79.1"),
    ("nabumetone", "Z79.1"),
    ("aspirin", "Z79.82"),
    ("clopidogrel", "Z79.02"),
    ("prasugrel", "Z79.02"),
    ("ticagrelor", "Z79.02"),
    ("warfarin", "Z79.01"),
    ("apixaban", "Z79.01"),
    ("rivaroxaban", "Z79.01"),
    ("dabigatran", "Z79.01"),
    ("edoxaban", "Z79.01"),
    ("enoxaparin", "Z79.01"),
    ("alendronate", "Z79.83"),
    ("risedronate", "Z79.83"),
    ("ibandronate", "Z79.83"),
    ("zoledronic", "Z79.83"),
    ("bisphosphonate", "Z79.83"),
    ("prednisone", "Z79.52"),
    ("prednisolone", "Z79.52"),
    ("methylprednisolone", "Z79.52"),
    ("hydrocortisone", "Z79.52"),
    ("fluticasone", "Z79.51"),
    ("budesonide", "Z79.51"),
    ("beclomethasone", "Z79.51"),
    ("mometasone", "Z79.51"),
    ("oxycodone", "Z79.891"),
    ("hydrocodone", "Z79.891"),
    ("morphine", "Z79.891"),
    ("hydromorphone", "Z79.891"),
    ("fentanyl", "Z79.891"),
    ("tramadol", "Z79.891"),
    ("methadone", "Z79.891"),
    ("buprenorphine", "Z79.891"),
    ("tamoxifen", "Z79.810"),
    ("raloxifene", "Z79.810"),
    ("anastrozole", "Z79.811"),
    ("letrozole", "Z79.811"),
    ("exemestane", "Z79.811"),
    ("methotrexate", "Z79.631"),
];
/// Drugs clinicians name often that have no specific Z79 code.
const NO_SPECIFIC_CODE: &[&str] = &[
    "atorvastatin",
    "rosuvastatin",
    "simvastatin",
    "pravastatin",
    "statin",
    "levothyroxine",
    "omeprazole",
    "pantoprazole",
    "esomeprazole",
    "lansoprazole",
    "methylphenidate",
    "amphetamine",
    "lisdexamfetamine",
    "lisinopril",
    "losartan",
    "amlodipine",
    "sertraline",
    "fluoxetine",
    "escitalopram",
    "gabapentin",
];
const ONGOING: &[&str] = &[
    "on",
    "taking",
    "take",
    "taken",
    "continue",
    "continuing",
    "since",
    "longterm",
    "long",
    "chronic",
    "maintained",
    "remain",
];
const STARTING: &[&str] = &[
    "start",
    "starting",
    "started",
    "initiate",
    "initiated",
    "begin",
    "add",
    "prescribe",
    "prescribed",
    "given",
    "prn",
    "trial",
    "switch",
    "new",
];

/// Drugs with a Z79 code of their own only when they treat diabetes.
const DIABETES_ONLY: &[&str] = &[
    "empagliflozin",
    "dapagliflozin",
    "canagliflozin",
    "semaglutide",
    "liraglutide",
    "dulaglutide",
    "tirzepatide",
    "exenatide",
];

fn long_term_drugs(table: &CodeTable, analysis: &Analysis, found: &mut Vec<Found>, skipped: &mut Vec<Skipped>) {
    let diabetic = found.iter().any(|f| {
        f.proposal.assertion == Assertion::Present
            && ["E08", "E09", "E10", "E11", "E13", "O24"].iter().any(|d| f.proposal.code.starts_with(d))
    });
    // Insulin is how type 1 diabetes is treated: E10 has no "use additional code … insulin (Z79.4)" note, unlike
    // E08, E09, E11 and E13, so Z79.4 is not reported beside it.
    let type_1 = found.iter().any(|f| f.proposal.assertion == Assertion::Present && f.proposal.code.starts_with("E10"));
    // Buprenorphine or methadone for an opioid use disorder is its treatment, not long-term opiate analgesia.
    let opioid_disorder =
        found.iter().any(|f| f.proposal.assertion == Assertion::Present && f.proposal.code.starts_with("F11"));
    for clause in &analysis.clauses {
        let words: Vec<&str> = clause.words.iter().filter(|w| !w.expanded).map(|w| w.token.word.as_str()).collect();
        for (i, word) in words.iter().enumerate() {
            let code = DRUGS.iter().find(|(d, _)| word == d).map(|(_, c)| *c);
            let unspecific = NO_SPECIFIC_CODE.contains(word);
            if code.is_none() && !unspecific {
                continue;
            }
            let w = &clause.words[i];
            // "without complications, on insulin": only a trigger about the drug itself stops it.
            let stopped = w.negated_by.is_some_and(|t| clause.words.get(t).is_none_or(|t| t.token.word != "without"));
            if stopped || w.uncertain || clause.family {
                continue;
            }
            let before = &words[..i];
            let ongoing = before.iter().any(|b| ONGOING.contains(b))
                || words.iter().any(|b| matches!(*b, "longterm" | "since"))
                || words.windows(2).any(|p| p[0] == "long" && p[1] == "term")
                || duration_of_months(&words)
                || words.windows(2).any(|p| p == ["past", "year"] || p == ["every", "day"]);
            // "fluticasone daily plus albuterol PRN": PRN belongs to the drug it follows closely.
            let starting =
                before.iter().any(|b| STARTING.contains(b)) || words.iter().skip(i).take(5).any(|w| *w == "prn");
            let listed = clause.section == Section::Medications;
            if !(ongoing || listed) || starting {
                continue;
            }
            // Incretins and SGLT2 inhibitors are hypoglycemics only for a diabetic (they also treat heart
            // failure, kidney disease and obesity).
            if DIABETES_ONLY.contains(word) && !diabetic {
                continue;
            }
            if opioid_disorder && code == Some("Z79.891") || type_1 && code == Some("Z79.4") {
                continue;
            }
            match code.and_then(|c| table.billable(c)) {
                Some(entry) => found.push(Found {
                    proposal: Proposal {
                        code: entry.code,
                        description: entry.description,
                        evidence: vec![w.token.span],
                        assertion: Assertion::Present,
                        basis: Basis::LongTermDrugTherapy,
                        match_strength: 1.0,
                    },
                    item: clause.item,
                    score: 1.0,
                }),
                None => {
                    skipped.push(Skipped { code: None, span: w.token.span, reason: SkipReason::NoSpecificDrugCode })
                }
            }
        }
    }
}

/// "for 18 months", "for 2 years": use long enough to be long-term.
fn duration_of_months(words: &[&str]) -> bool {
    words.windows(3).any(|w| w[0] == "for" && w[1].parse::<u32>().is_ok() && matches!(w[2], "month" | "year"))
}

/// BMI is reported only with a documented weight diagnosis (I.C.21.c.3, BMI); adults only.
fn body_mass_index(table: &CodeTable, note: &str, found: &mut Vec<Found>) {
    let Some(weight_dx) =
        found.iter().position(|f| f.proposal.assertion == Assertion::Present && f.proposal.code.starts_with("E66"))
    else {
        return;
    };
    if find_ascii_word(note, "percentile").is_some() {
        return;
    }
    // "BMI 37.2", "BMI: 37", "BMI today 41.6": the first mention with a number close behind it.
    let mut from = 0;
    let found_number = loop {
        let Some(at) = note.get(from..).and_then(|t| find_ascii_word(t, "bmi")).map(|a| a + from) else { return };
        let rest = note.get(at + 3..).unwrap_or_default();
        let digits_at = rest
            .find(|c: char| c.is_ascii_digit())
            .filter(|&i| i <= 10 && rest.get(..i).is_some_and(|gap| gap.split_whitespace().count() <= 2));
        if let Some(start) = digits_at {
            break (at, rest, start);
        }
        from = at + 3;
    };
    let (at, rest, start) = found_number;
    let number: String = rest[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let number = number.trim_end_matches('.');
    let Ok(bmi) = number.parse::<f32>() else { return };
    let code = match bmi {
        b if b < 20.0 => "Z68.1".to_owned(),
        b if b < 40.0 => format!("Z68.{}", b.floor() as u32),
        b if b < 45.0 => "Z68.41".to_owned(),
        b if b < 50.0 => "Z68.42".to_owned(),
        b if b < 60.0 => "Z68.43".to_owned(),
        b if b < 70.0 => "Z68.44".to_owned(),
        _ => "Z68.45".to_owned(),
    };
    let Some(entry) = table.billable(&code) else { return };
    let span = Span { start: at, end: at + 3 + start + number.len() };
    let item = found[weight_dx].item;
    found.push(Found {
        proposal: Proposal {
            code: entry.code,
            description: entry.description,
            evidence: vec![span],
            assertion: Assertion::Present,
            basis: Basis::DiagnosisMatch,
            match_strength: 1.0,
        },
        item,
        score: 1.0,
    });
}

/// Where an ASCII word first occurs in `text`, in any ASCII case. The offset is into `text` itself (never
/// into a lowercased copy, whose byte lengths can differ), and an ASCII byte is always a char boundary.
fn find_ascii_word(text: &str, word: &str) -> Option<usize> {
    let needle = word.as_bytes();
    text.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}

/// The encounter layer decides the exam, immunization, screening, gestation and tobacco codes; the lexical
/// matcher's guesses in those categories give way to it.
fn encounter_reasons(table: &CodeTable, note: &str, analysis: &Analysis, found: &mut Vec<Found>) {
    let present = |f: &&Found| f.proposal.assertion == Assertion::Present;
    let facts_of = |found: &[Found]| encounter::Facts {
        pregnancy_code: found.iter().filter(present).any(|f| f.proposal.code.starts_with('O')),
        supervision: found.iter().filter(present).any(|f| f.proposal.code.starts_with("Z34")),
        current_condition: found
            .iter()
            .filter(present)
            .any(|f| !f.proposal.code.starts_with('Z') && !encounter::owns(f.proposal.code)),
        obesity: found.iter().filter(present).any(|f| f.proposal.code.starts_with("E66")),
        tobacco_noted: found.iter().filter(present).any(|f| asks_for_tobacco(table, f.proposal.code)),
    };
    // An examination or screening written as a narrative without an assessment: the history's passing complaints are not
    // findings the provider concluded (I.C.21.c.13: abnormal findings are coded as the provider documents them),
    // so the signs and symptoms read from it give way to the exam's code.
    if !analysis.has_assessment {
        let without_symptoms: Vec<Found> =
            found.iter().filter(|f| !f.proposal.code.starts_with('R')).cloned().collect();
        let exam = encounter::reasons(note, analysis, &facts_of(&without_symptoms))
            .iter()
            .any(|r| ["Z00.0", "Z00.1", "Z01.41", "Z02.5", "Z11", "Z12", "Z13"].iter().any(|e| r.code.starts_with(e)));
        if exam {
            found.retain(|f| !f.proposal.code.starts_with('R'));
        }
    }
    let facts = facts_of(found);
    let item = found.first().map_or(0, |f| f.item);
    found.retain(|f| !encounter::owns(f.proposal.code));
    let reasons = encounter::reasons(note, analysis, &facts);
    // "Pregnant state, incidental" never stands beside the codes of a pregnancy that is the visit's concern.
    if facts.pregnancy_code
        || reasons.iter().any(|r| r.code.starts_with('O') || r.code.starts_with("Z3A") || r.code.starts_with("Z34"))
    {
        found.retain(|f| f.proposal.code != "Z33.1");
    }
    // No BMI code in pregnancy (I.C.21.c.3).
    if reasons.iter().any(|r| r.code.starts_with("Z3A")) || facts.supervision {
        found.retain(|f| !f.proposal.code.starts_with("Z68"));
    }
    // The layer's specific code replaces the matcher's unspecified one of its category (Z71.3 over Z71.9).
    found.retain(|f| {
        !(f.proposal.description.contains("unspecified")
            && reasons.iter().any(|r| r.code != f.proposal.code && same_category(&r.code, f.proposal.code)))
    });
    for reason in reasons {
        let Some(entry) = table.billable(&reason.code) else { continue };
        let (assertion, basis) = if reason.history {
            (Assertion::PersonalHistory, Basis::History)
        } else if entry.code.starts_with('Z') {
            (Assertion::Present, Basis::EncounterReason)
        } else {
            (Assertion::Present, Basis::DiagnosisMatch)
        };
        found.push(Found {
            proposal: Proposal {
                code: entry.code,
                description: entry.description,
                evidence: vec![reason.span],
                assertion,
                basis,
                match_strength: 1.0,
            },
            item,
            score: 1.0,
        });
    }
}

/// Whether the code's "use additional code" note (on it or an ancestor) names tobacco use or exposure.
fn asks_for_tobacco(table: &CodeTable, code: &str) -> bool {
    // Chapters 9 and 10 ask for it at the chapter's head: "use additional code to identify exposure to
    // environmental tobacco smoke, history of tobacco dependence, tobacco dependence, tobacco use".
    if code.starts_with('I') || code.starts_with('J') {
        return true;
    }
    let mut entry = table.get(code);
    while let Some(e) = entry {
        if e.use_additional()
            .any(|r| ["F17.210", "Z87.891", "Z72.0", "Z77.22"].iter().any(|c| CodeTable::reference_covers(r, c)))
        {
            return true;
        }
        entry = table.parent(e.code);
    }
    false
}

/// Two codes in an Excludes1 relation are never reported together: the better-documented one stays.
fn resolve_excludes1(table: &CodeTable, found: &mut Vec<Found>, skipped: &mut Vec<Skipped>) {
    let excludes = |a: &str, b: &str| {
        let mut entry = table.get(a);
        while let Some(e) = entry {
            if e.excludes1().any(|r| CodeTable::reference_covers(r, b)) {
                return true;
            }
            entry = table.parent(e.code);
        }
        false
    };
    let mut drop = HashSet::new();
    for i in 0..found.len() {
        for j in 0..found.len() {
            let (a, b) = (&found[i], &found[j]);
            if i == j || a.proposal.code == b.proposal.code || drop.contains(&i) || drop.contains(&j) {
                continue;
            }
            if excludes(a.proposal.code, b.proposal.code) || excludes(b.proposal.code, a.proposal.code) {
                drop.insert(if a.score >= b.score { j } else { i });
            }
        }
    }
    let mut k = 0;
    found.retain(|f| {
        let keep = !drop.contains(&k);
        if !keep {
            skipped.push(Skipped {
                code: Some(f.proposal.code),
                span: f.proposal.evidence[0],
                reason: SkipReason::Excludes1,
            });
        }
        k += 1;
        keep
    });
}

pub fn assess_span(note: &str, span: Span) -> Option<SkipReason> {
    let analysis = analyse(note);
    if analysis.not_documentation.iter().any(|s| s.start <= span.start && span.end <= s.end) {
        return Some(SkipReason::NotDocumentation);
    }
    let words: Vec<_> = analysis
        .clauses
        .iter()
        .flat_map(|c| c.words.iter().map(move |w| (c, w)))
        .filter(|(_, w)| !w.expanded && w.token.span.start >= span.start && w.token.span.end <= span.end)
        .collect();
    if words.is_empty() {
        return None;
    }
    let n = words.len() as f32;
    let inside = |t: usize, c: &Clause| {
        c.words.get(t).is_some_and(|w| w.token.span.start >= span.start && w.token.span.end <= span.end)
    };
    if words.iter().filter(|(c, w)| w.negated_by.is_some_and(|t| !inside(t, c))).count() as f32 / n > 0.5 {
        return Some(SkipReason::Negated);
    }
    if words.iter().filter(|(_, w)| w.uncertain).count() as f32 / n > 0.5 {
        return Some(SkipReason::Uncertain);
    }
    if words.iter().filter(|(_, w)| w.hypothetical).count() as f32 / n > 0.5 {
        return Some(SkipReason::Hypothetical);
    }
    None
}
