//! Issue 12, item 2: a no-break space before a header's colon panicked the coder, because byte offsets
//! computed on the trimmed, lowercased header were used on the original line. Any note must code without a
//! panic, and every span the coder returns must index the note on char boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use icd10_coding::coder::{Coding, Span, assess_span, code_note};
use icd10_coding::table::CodeTable;
use proptest::prelude::*;

fn code(note: &str) -> Coding {
    code_note(CodeTable::embedded().unwrap(), note)
}

/// Every span lies inside the note, on char boundaries, and is not empty.
fn spans_index_the_note(note: &str, coding: &Coding) -> Result<(), String> {
    let check = |what: &str, span: Span| {
        if span.start < span.end && note.get(span.start..span.end).is_some() {
            Ok(())
        } else {
            Err(format!("{what} span {}..{} does not index a note of {} bytes", span.start, span.end, note.len()))
        }
    };
    for p in &coding.proposals {
        if p.evidence.is_empty() {
            return Err(format!("{} has no evidence", p.code));
        }
        for &span in &p.evidence {
            check(p.code, span)?;
        }
    }
    for s in &coding.skipped {
        check("skipped", s.span)?;
    }
    Ok(())
}

#[test]
fn odd_spaces_before_a_header_colon_do_not_panic() {
    for note in [
        "Plan\u{a0}: follow up",
        "Plan\u{2003}: follow up",
        "Plan\u{3000}: follow up",
        "Assessment\u{a0}: Type 2 diabetes mellitus. BMI 31.",
        "\u{3000}Assessment\u{2003}:\u{a0}Obesity, class 1. BMI 31.2",
        "İİİ Assessment: Obesity. İ BMI 33.1",
        "Assessment: Obesity. İİİİ bmi 35",
        "ASSESSMENT İ: Hypertension",
    ] {
        let coding = code(note);
        spans_index_the_note(note, &coding).unwrap();
    }
}

#[test]
fn the_body_after_an_odd_space_is_still_coded() {
    // The header is recognised whatever space precedes its colon, and the diagnosis after it is coded with a
    // quote equal to the note at its span.
    for space in ['\u{a0}', '\u{2003}', '\u{3000}', ' '] {
        let note = format!("Assessment{space}: Essential hypertension.");
        let coding = code(&note);
        let codes: Vec<&str> = coding.proposals.iter().map(|p| p.code).collect();
        assert_eq!(codes, ["I10"], "space U+{:04X}", space as u32);
        let span = coding.proposals[0].evidence[0];
        assert_eq!(&note[span.start..span.end], "hypertension");
    }
}

#[test]
fn bmi_after_case_changing_letters_is_read_from_the_note() {
    // `İ` lowercases to three bytes: an offset found in a lowercased copy would point elsewhere.
    let note = "İİİİ Assessment: Obesity, class 1. BMI 31.2";
    let coding = code(note);
    let bmi = coding.proposals.iter().find(|p| p.code.starts_with("Z68")).expect("a BMI code");
    assert_eq!(bmi.code, "Z68.31");
    let span = bmi.evidence[0];
    assert_eq!(&note[span.start..span.end], "BMI 31.2");
}

#[test]
fn assessing_spans_never_panics() {
    let note = "Plan\u{a0}: follow up. No fever.";
    for start in 0..note.len() {
        for end in start..=note.len() {
            let _ = assess_span(note, Span { start, end });
        }
    }
}

/// Clinical fragments with odd spaces and case-changing letters between them: headers, triggers, numbers.
const FRAGMENTS: &[&str] = &[
    "Assessment",
    "Plan",
    "A/P",
    "Impression",
    "Dx",
    ":",
    " : ",
    "\u{a0}:",
    "\u{2003}:",
    "\u{3000}:",
    "\n",
    "\r\n",
    "1.",
    " - ",
    "; ",
    "(",
    ")",
    "[",
    "]",
    "/",
    "'s",
    "no ",
    "denies ",
    "possible ",
    "history of ",
    "return if ",
    "mother has ",
    "type 2 diabetes mellitus",
    "CKD stage 3b",
    "HTN",
    "obesity, class 2",
    "BMI 37.2",
    "bmi",
    "BMİ 41",
    "percentile",
    "right",
    "left",
    "R>L",
    "fracture of left distal radius, subsequent encounter",
    "on metformin for 2 years",
    "current smoker, 1 ppd",
    "well child",
    "routine exam",
    "influenza vaccine given",
    "26w3d",
    "İ",
    "ẞ",
    "ß",
    "Σ",
    "ﬁ",
    "\u{0130}stanbul",
    "\u{a0}",
    "\u{2003}",
    "\u{3000}",
    "\u{200b}",
    "é",
    "e\u{301}",
    "😀",
    ".",
    "?",
    " ",
];

fn assembled_note() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn arbitrary_unicode_notes_never_panic(note in any::<String>()) {
        let coding = code(&note);
        prop_assert!(spans_index_the_note(&note, &coding).is_ok(), "{:?}", spans_index_the_note(&note, &coding));
    }

    #[test]
    fn clinical_fragments_with_odd_unicode_never_panic(note in assembled_note()) {
        let coding = code(&note);
        prop_assert!(spans_index_the_note(&note, &coding).is_ok(), "{:?}", spans_index_the_note(&note, &coding));
    }
}
