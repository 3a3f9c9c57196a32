//! Property tests for the pseudonymiser over arbitrary Unicode and over clinical fragments mixed with the
//! characters that broke text handling before (no-break and ideographic spaces, `İ` whose lowercase is longer,
//! combining marks, emoji, bidi controls). A fixed number of cases keeps `cargo test` to a few seconds; a
//! failing case is shrunk and printed by proptest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use proptest::prelude::*;
use proptest::test_runner::Config;

use shared::phi::{self, Pseudonymised};

/// Cases per property. With 3 properties this is the bounded, nightly-free stand-in for `cargo fuzz`.
const CASES: u32 = 1024;

const FRAGMENTS: &[&str] = &[
    "Patient: ",
    "Patient:\n",
    "pt: john smith ",
    "Smith, John ",
    "Óscar Núñez ",
    "Dr.Okafor ",
    "husband Robert ",
    "DOB ",
    "11-FEB-1985 ",
    "19850211 ",
    "Jan 2024 ",
    "MRN: 001 234 567 ",
    "Member ID: XYZ123456789 ",
    "+44 20 7946 0958 ",
    "6175550101 ",
    "12A Elm Street ",
    "PO Box 1234 ",
    "Boston 02115 ",
    "SSN 123 45 6789 ",
    "94 year old ",
    "rosa@example.org ",
    "https://example.net/a ",
    "10.0.0.1 ",
    "Plan",
    ": follow up ",
    "Assessment: ",
    "Parkinson disease ",
    "BP 128/82 ",
    "1 tab BID ",
    "pH 7.35-7.45 ",
    "\n",
    "\t",
    ", ",
    ". ",
    "-",
    "'s ",
];

const ODD: &[&str] = &[
    "\u{00a0}",
    "\u{2003}",
    "\u{3000}",
    "\u{200b}",
    "\u{202e}",
    "\u{feff}",
    "İ",
    "ẞ",
    "ﬃ",
    "Σ",
    "ǅ",
    "e\u{301}",
    "\u{301}",
    "\u{20dd}",
    "🩺",
    "👩‍⚕️",
    "🇺🇸",
    "\r\n",
    "\r",
    "\u{2028}",
    "０１２",
    "٣",
    "𝟗",
];

fn clinical_with_odd_unicode() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        2 => proptest::sample::select(ODD).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), clinical_with_odd_unicode()]
}

/// Every replacement sits on char boundaries of both texts, in order and apart, and putting the original
/// slices back into the pseudonymised text gives the input back exactly.
fn check_offsets(input: &str, p: &Pseudonymised) -> Result<(), TestCaseError> {
    let mut rebuilt = String::new();
    let mut pseudo_cursor = 0;
    let mut original_end = 0;
    for r in &p.replacements {
        prop_assert!(r.original.start >= original_end && r.original.start < r.original.end);
        prop_assert!(input.is_char_boundary(r.original.start) && input.is_char_boundary(r.original.end));
        prop_assert!(r.original.end <= input.len());
        prop_assert!(p.text.is_char_boundary(r.pseudo.start) && p.text.is_char_boundary(r.pseudo.end));
        prop_assert_eq!(&p.text[r.pseudo.clone()], r.token.as_str());
        rebuilt.push_str(&p.text[pseudo_cursor..r.pseudo.start]);
        rebuilt.push_str(&input[r.original.clone()]);
        pseudo_cursor = r.pseudo.end;
        original_end = r.original.end;
    }
    rebuilt.push_str(&p.text[pseudo_cursor..]);
    prop_assert_eq!(rebuilt.as_str(), input);
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: CASES, failure_persistence: None, ..Config::default() })]

    #[test]
    fn pseudonymise_never_panics_and_keeps_its_offset_map(input in any_text()) {
        let p = phi::pseudonymise(&input);
        check_offsets(&input, &p)?;
    }

    #[test]
    fn to_original_maps_any_span_back_on_char_boundaries(input in any_text(), a in any::<usize>(), b in any::<usize>()) {
        let p = phi::pseudonymise(&input);
        let boundaries: Vec<usize> = (0..=p.text.len()).filter(|&i| p.text.is_char_boundary(i)).collect();
        let x = boundaries[a % boundaries.len()];
        let y = boundaries[b % boundaries.len()];
        let span = x.min(y)..x.max(y);
        let back = p.to_original(span.clone());
        prop_assert!(back.start <= back.end && back.end <= input.len());
        prop_assert!(input.is_char_boundary(back.start) && input.is_char_boundary(back.end));
        let touches = p.replacements.iter().any(|r| span.start < r.pseudo.end && r.pseudo.start < span.end);
        if !touches {
            prop_assert_eq!(&input[back.clone()], &p.text[span.clone()]);
        }
        for r in &p.replacements {
            let inside = back.start <= r.original.start && r.original.end <= back.end;
            let outside = r.original.end <= back.start || back.end <= r.original.start;
            prop_assert!(inside || outside, "identifier {:?} cut by {:?}", r.original, back);
        }
    }

    #[test]
    fn redact_free_text_never_panics_and_leaves_no_long_number(input in any_text()) {
        let redacted = phi::redact_free_text(&input);
        let mut run = 0;
        for c in redacted.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            prop_assert!(run < 5, "a run of 5 digits survived in {:?}", redacted);
        }
        prop_assert!(!redacted.contains("[NAME-"), "a numbered token in {:?}", redacted);
    }
}
