//! Pseudonymisation of free text (clinical notes) before it reaches a model or a log line, and redaction of
//! free text bound for an audit record.
//!
//! Identifiers of the 18 Safe Harbor kinds are found (`detect`: names by their label, title, relative or
//! given name and then wherever their words recur; dates in every common format except a bare year; ages
//! over 89; record, plan, account, licence, device and vehicle numbers; phones; addresses and places; SSNs;
//! emails, URLs and IPs) and replaced by stable tokens (`[NAME-1]`, `[MRN-1]`): the same value gives the same
//! token within one text, so a model can still tell that two mentions are the same person. The replacement
//! keeps an offset map, so a span found in the pseudonymised text (a model's evidence quote) maps back to the
//! original text for the authorised caller. Detection is deliberately greedy: a false positive costs a token
//! in a prompt, a miss leaks PHI.
//!
//! Pattern-based detection is a safety layer, not a de-identification guarantee; the model call is still
//! covered by the Guardrail and the BAA. Coverage figures are in the README ("Pseudonymisation").

use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

mod detect;
mod lexicon;

/// What kind of identifier a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhiKind {
    Name,
    Mrn,
    Dob,
    Date,
    Phone,
    Email,
    Address,
    Ssn,
    /// Health plan, member, account, licence, certificate and other record numbers.
    Id,
    /// Device identifiers and serial numbers.
    Device,
    /// Vehicle identification numbers and licence plates.
    Vehicle,
    Url,
    Ip,
    /// An age over 89 (Safe Harbor aggregates those into "90 or older").
    Age,
}

impl PhiKind {
    fn label(self) -> &'static str {
        match self {
            Self::Name => "NAME",
            Self::Mrn => "MRN",
            Self::Dob => "DOB",
            Self::Date => "DATE",
            Self::Phone => "PHONE",
            Self::Email => "EMAIL",
            Self::Address => "ADDRESS",
            Self::Ssn => "SSN",
            Self::Id => "ID",
            Self::Device => "DEVICE",
            Self::Vehicle => "VEHICLE",
            Self::Url => "URL",
            Self::Ip => "IP",
            Self::Age => "AGE",
        }
    }
}

/// One identifier replaced by a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub kind: PhiKind,
    /// Byte range of the identifier in the original text.
    pub original: Range<usize>,
    /// Byte range of the token in the pseudonymised text.
    pub pseudo: Range<usize>,
    pub token: String,
}

/// A pseudonymised text and the map back to the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonymised {
    pub text: String,
    /// In text order, non-overlapping.
    pub replacements: Vec<Replacement>,
}

impl Pseudonymised {
    /// Maps a byte range of the pseudonymised text to the original text. A boundary that falls inside a
    /// token widens to the whole identifier it stands for, so a mapped span never cuts an identifier in two.
    pub fn to_original(&self, range: Range<usize>) -> Range<usize> {
        let start = self.map_back(range.start, false);
        let end = self.map_back(range.end, true).max(start);
        start..end
    }

    fn map_back(&self, position: usize, is_end: bool) -> usize {
        // Original minus pseudonymised offset after the replacements passed so far.
        let mut shift: isize = 0;
        for r in &self.replacements {
            if position <= r.pseudo.start {
                break;
            }
            if position >= r.pseudo.end {
                shift = signed(r.original.end) - signed(r.pseudo.end);
                continue;
            }
            return if is_end { r.original.end } else { r.original.start };
        }
        usize::try_from(signed(position) + shift).unwrap_or(0)
    }

    /// How many identifiers of each kind were replaced (for the reply and logs: counts only).
    pub fn counts(&self) -> HashMap<PhiKind, usize> {
        let mut counts = HashMap::new();
        for r in &self.replacements {
            *counts.entry(r.kind).or_insert(0) += 1;
        }
        counts
    }
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// Replaces the identifiers in `text` by tokens.
pub fn pseudonymise(text: &str) -> Pseudonymised {
    let chosen = identifiers(text);
    let mut numbering: HashMap<(PhiKind, String), usize> = HashMap::new();
    let mut per_kind: HashMap<PhiKind, usize> = HashMap::new();
    let mut out = String::with_capacity(text.len());
    let mut replacements = Vec::with_capacity(chosen.len());
    let mut cursor = 0;
    for (range, kind, alias) in chosen {
        out.push_str(text.get(cursor..range.start).unwrap_or_default());
        let value = alias.unwrap_or_else(|| normalise_value(text.get(range.clone()).unwrap_or_default()));
        let n = *numbering.entry((kind, value)).or_insert_with(|| {
            let next = per_kind.entry(kind).or_insert(0);
            *next += 1;
            *next
        });
        let token = format!("[{}-{n}]", kind.label());
        let start = out.len();
        out.push_str(&token);
        replacements.push(Replacement { kind, original: range.clone(), pseudo: start..out.len(), token });
        cursor = range.end;
    }
    out.push_str(text.get(cursor..).unwrap_or_default());
    Pseudonymised { text: out, replacements }
}

/// Free text bound for an audit record (a break-glass or override reason): every identifier becomes the
/// placeholder of its kind (`[NAME]`, `[DATE]`), with no number, so two records cannot be linked through a
/// token and nothing maps back. Runs of five or more digits the patterns did not place are hidden too (`[ID]`):
/// an audit reason has no business carrying a number that long, and a missed identifier there is kept for
/// years.
pub fn redact_free_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for (range, kind, _) in identifiers(text) {
        push_hiding_long_numbers(&mut out, text.get(cursor..range.start).unwrap_or_default());
        let placeholder = match kind {
            PhiKind::Dob => PhiKind::Date.label(),
            other => other.label(),
        };
        out.push('[');
        out.push_str(placeholder);
        out.push(']');
        cursor = range.end;
    }
    push_hiding_long_numbers(&mut out, text.get(cursor..).unwrap_or_default());
    out
}

fn push_hiding_long_numbers(out: &mut String, text: &str) {
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush_digits(out, &mut digits);
        out.push(c);
    }
    flush_digits(out, &mut digits);
}

fn flush_digits(out: &mut String, digits: &mut String) {
    if digits.len() >= 5 {
        out.push_str("[ID]");
    } else {
        out.push_str(digits);
    }
    digits.clear();
}

/// The identifiers of `text`, in text order, non-overlapping, each on char boundaries of `text`.
fn identifiers(text: &str) -> Vec<(Range<usize>, PhiKind, Option<String>)> {
    let mut found: Vec<(Range<usize>, PhiKind, Option<String>)> = detect::find_all(text)
        .into_iter()
        .filter(|f| f.range.start < f.range.end && text.get(f.range.clone()).is_some())
        .map(|f| (f.range, f.kind, f.alias))
        .collect();
    // Earlier rules are the more specific ones: on overlap, the earlier start wins, then the longer match,
    // then the earlier rule (the sort is stable).
    // A later mention of a name found elsewhere keeps that name's token, whatever else found the same words.
    found.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)).then(b.2.is_some().cmp(&a.2.is_some())));
    let mut chosen: Vec<(Range<usize>, PhiKind, Option<String>)> = Vec::new();
    for (range, kind, alias) in found {
        match chosen.last_mut() {
            Some((last, _, _)) if range.start < last.end => last.end = last.end.max(range.end),
            _ => chosen.push((range, kind, alias)),
        }
    }
    chosen
}

/// The same identifier written twice (`(720) 555-0148`, `720-555-0148`) gets the same token.
fn normalise_value(value: &str) -> String {
    value.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "OFFICE VISIT\nPatient: Rosamund T. Keever-Ibarra   DOB 02/11/1985   MRN-38815207   Cell (720) 555-0148\n40 y/o with fatigue. Email rosa.k@example.org, lives at 12 Elm Street, Springfield, MA 01101. SSN 123-45-6789.\nSeen with Mrs. Keever-Ibarra (mother). Hgb 9.1, BP 134/84, x 7 days.";

    #[test]
    fn every_kind_in_a_header_is_replaced() {
        let p = pseudonymise(HEADER);
        for leaked in
            ["Rosamund", "Keever", "02/11/1985", "38815207", "555-0148", "rosa.k@", "Elm Street", "123-45-6789"]
        {
            assert!(!p.text.contains(leaked), "`{leaked}` survived: {}", p.text);
        }
        for token in ["[NAME-1]", "[DOB-1]", "[MRN-1]", "[PHONE-1]", "[EMAIL-1]", "[ADDRESS-1]", "[SSN-1]"] {
            assert!(p.text.contains(token), "{token} missing: {}", p.text);
        }
        // Clinical numbers are not identifiers.
        for kept in ["Hgb 9.1", "BP 134/84", "x 7 days", "40 y/o", "DOB [DOB-1]"] {
            assert!(p.text.contains(kept), "`{kept}` lost: {}", p.text);
        }
    }

    #[test]
    fn the_same_value_gets_the_same_token() {
        let p = pseudonymise("Call 617-555-0101 or (617) 555-0101; fax 617-555-0199.");
        assert_eq!(p.text, "Call [PHONE-1] or [PHONE-1]; fax [PHONE-2].");
        let p = pseudonymise("Patient: Ann Marie Lee\nAnn reports pain. Mr. Bo Stone drove her.");
        assert_eq!(p.text, "Patient: [NAME-1]\n[NAME-1] reports pain. Mr. [NAME-2] drove her.");
    }

    #[test]
    fn text_without_identifiers_is_unchanged() {
        let note = "Assessment: Herpes zoster, right T6 dermatome. BP 118/72. Return in 2-3 days.";
        let p = pseudonymise(note);
        assert_eq!(p.text, note);
        assert!(p.replacements.is_empty());
        assert_eq!(p.to_original(5..20), 5..20);
    }

    #[test]
    fn spans_outside_tokens_map_back_to_the_same_text() {
        let p = pseudonymise(HEADER);
        let quote = "40 y/o with fatigue";
        let at = p.text.find(quote).unwrap();
        let back = p.to_original(at..at + quote.len());
        assert_eq!(&HEADER[back], quote);
    }

    #[test]
    fn a_span_over_a_token_covers_the_whole_identifier() {
        let p = pseudonymise(HEADER);
        let at = p.text.find("[MRN-1]").unwrap();
        // Starting and ending inside the token.
        let back = p.to_original(at + 2..at + 4);
        assert_eq!(&HEADER[back], "38815207");
        let back = p.to_original(at..at + "[MRN-1]".len());
        assert_eq!(&HEADER[back], "38815207");
        // The label stays readable for the model.
        assert!(p.text.contains("MRN-[MRN-1]"), "{}", p.text);
    }

    #[test]
    fn audit_free_text_keeps_only_kind_placeholders() {
        assert_eq!(redact_free_text("Pt Jane Doe DOB 03/04/1950 unresponsive"), "Pt [NAME] DOB [DATE] unresponsive");
        let reason = "Called by daughter Maria at 617-555-0101, MRN 00123456, ref 99812 — urgent";
        let redacted = redact_free_text(reason);
        assert_eq!(redacted, "Called by daughter [NAME] at [PHONE], MRN [MRN], ref [ID] — urgent");
        // The same person twice gives the same placeholder, never a numbered token that links records.
        let redacted = redact_free_text("Patient: Ann Lee. Ann refused.");
        assert_eq!(redacted, "Patient: [NAME]. [NAME] refused.");
        // Clinical words of a reason survive.
        let reason = "Unresponsive, suspected overdose, BP 80/40, needs records now";
        assert_eq!(redact_free_text(reason), reason);
    }

    /// The inputs of issue 12 item 9: each leaked through the earlier rules.
    #[test]
    fn the_identifiers_that_leaked_are_replaced() {
        let cases: &[(&str, &[&str])] = &[
            ("pt: john smith", &["john", "smith"]),
            ("Patient: Smith, John", &["Smith", "John"]),
            ("Patient:\nJohn Smith\nCC: cough", &["John", "Smith"]),
            ("Patient Name - John Smith", &["John", "Smith"]),
            ("John Smith is 54", &["John", "Smith"]),
            ("Patient: Óscar Núñez", &["Óscar", "Núñez"]),
            ("Seen by Dr.Okafor", &["Okafor"]),
            ("lives with husband Robert", &["Robert"]),
            ("Daughter Maria at bedside", &["Maria"]),
            ("Patient: Li Wu\nWu reports less pain", &["Li", "Wu"]),
            ("PATIENT: ANN LEE", &["ANN", "LEE"]),
            ("DOB 11-FEB-1985", &["11-FEB-1985"]),
            ("born 1985/02/11", &["1985/02/11"]),
            ("February 11th, 1985", &["February", "11th"]),
            ("11 February, 1985", &["11 February"]),
            ("DOB 19850211", &["19850211"]),
            ("colonoscopy Jan 2024", &["Jan 2024"]),
            ("Patient ID: 00123456", &["00123456"]),
            ("MR No. 1234567", &["1234567"]),
            ("MRN: ABCD12345", &["ABCD12345"]),
            ("mrn: abc12345", &["abc12345"]),
            ("MRN: 001 234 567", &["001", "234 567"]),
            ("Member ID: XYZ123456789", &["XYZ123456789"]),
            ("call 6175550101", &["6175550101"]),
            ("+44 20 7946 0958", &["7946", "0958"]),
            ("lives at 45 harbor view road", &["harbor view"]),
            ("45 Harbor View Trail", &["Harbor View"]),
            ("PO Box 1234", &["1234"]),
            ("12A Elm Street", &["12A", "Elm"]),
            ("moved from Boston 02115", &["Boston", "02115"]),
            ("SSN 123 45 6789", &["123 45 6789"]),
            ("a 94 year old woman", &["94"]),
        ];
        for (note, secrets) in cases {
            let p = pseudonymise(note);
            for secret in *secrets {
                assert!(!p.text.contains(secret), "`{secret}` survived in {:?}", p.text);
            }
        }
    }

    /// Issue 12 item 2 crashed on a no-break space before a header colon; no Unicode space may.
    #[test]
    fn unicode_spaces_and_case_changing_letters_do_not_break_offsets() {
        for space in ['\u{00a0}', '\u{2003}', '\u{3000}', '\u{202f}'] {
            let note = format!("Plan{space}: follow up. Patient{space}: İlker Şahin{space}DOB{space}03/04/1950");
            let p = pseudonymise(&note);
            assert!(!p.text.contains("03/04/1950") && !p.text.contains("Şahin"), "{:?}", p.text);
            for r in &p.replacements {
                assert!(note.is_char_boundary(r.original.start) && note.is_char_boundary(r.original.end));
            }
            let back = p.to_original(0..p.text.len());
            assert_eq!(back, 0..note.len());
        }
    }

    /// Property: for random notes assembled from clinical text and identifiers, every span of the
    /// pseudonymised text maps to a range of the original on char boundaries; spans that touch no token map to
    /// identical text; and no identifier survives.
    #[test]
    fn offset_map_properties_hold_for_random_notes() {
        let clinical = [
            "Assessment: type 2 diabetes. ",
            "BP 134/84, HR 96. ",
            "Pain 7/10 in the right knee — worse on stairs. ",
            "Plan: metformin 500 mg BID. ",
            "No fever. Naïve to insulin. ",
            "\n",
        ];
        let identifiers = [
            ("Patient: Ann Marie Lee\n", "Ann Marie Lee"),
            ("DOB: 03/04/1950 ", "03/04/1950"),
            ("MRN 00123456 ", "00123456"),
            ("call (617) 555-0123 ", "555-0123"),
            ("j.doe@example.com ", "j.doe@example.com"),
            ("at 77 Harbor View Road ", "Harbor View Road"),
            ("SSN: 078-05-1120 ", "078-05-1120"),
            ("Dr. Okafor ", "Okafor"),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let mut note = String::new();
            let mut secrets = Vec::new();
            for _ in 0..rng.usize(1..12) {
                if rng.bool() {
                    let (text, secret) = identifiers[rng.usize(..identifiers.len())];
                    note.push_str(text);
                    secrets.push(secret);
                } else {
                    note.push_str(clinical[rng.usize(..clinical.len())]);
                }
            }
            let p = pseudonymise(&note);
            for secret in &secrets {
                assert!(!p.text.contains(secret), "`{secret}` survived in {:?}", p.text);
            }
            let boundaries: Vec<usize> = (0..=p.text.len()).filter(|&i| p.text.is_char_boundary(i)).collect();
            for _ in 0..40 {
                let a = boundaries[rng.usize(..boundaries.len())];
                let b = boundaries[rng.usize(..boundaries.len())];
                let span = a.min(b)..a.max(b);
                let back = p.to_original(span.clone());
                assert!(back.start <= back.end && back.end <= note.len());
                assert!(note.is_char_boundary(back.start) && note.is_char_boundary(back.end));
                let touches = p.replacements.iter().any(|r| span.start < r.pseudo.end && r.pseudo.start < span.end);
                if !touches {
                    assert_eq!(&note[back.clone()], &p.text[span.clone()], "{note:?} {span:?}");
                }
                // A replaced identifier is either wholly inside the mapped range or wholly outside it.
                for r in &p.replacements {
                    let inside = back.start <= r.original.start && r.original.end <= back.end;
                    let outside = r.original.end <= back.start || back.end <= r.original.start;
                    assert!(inside || outside, "identifier cut by {back:?}: {:?}", r.original);
                }
            }
        }
    }
}
