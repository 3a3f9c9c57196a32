//! Finding identifiers: pattern rules for the ones with a shape (dates, numbers, addresses, emails) and a
//! word scanner for names, which have none and are found by what stands before them (a label, a title, a
//! relative) or by a given name, then hidden wherever their words recur.
//!
//! Every offset here comes from a match on the text being searched, or from walking that same text char by
//! char; nothing is computed on a lowercased or trimmed copy (lowercasing can change byte lengths: `İ` is two
//! bytes, its lowercase three). Slicing with a computed offset goes through `get`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::PhiKind;
use super::lexicon;

/// One identifier found: where, what, and the value whose token it takes when it is a later mention of a
/// name found elsewhere.
pub(super) struct Found {
    pub range: Range<usize>,
    pub kind: PhiKind,
    pub alias: Option<String>,
}

/// What a match must also satisfy beyond its pattern.
#[derive(Clone, Copy)]
enum Check {
    None,
    /// At least this many ASCII alphanumerics in the identifier (a label followed by `#1` is a list item).
    MinAlnum(usize),
    /// Total digits of a phone number (ITU E.164 allows at most 15).
    PhoneDigits,
    /// Every dotted part at most 255.
    Ipv4,
    /// Not preceded by `.`, `,` or a digit (`pH 7.35-7.45` is a range, not a date).
    DateStart,
    /// The words between the house number and the street type are not common words (`2 blocks down the road`).
    Street,
    /// The place name is not a common or clinical word (`Platelets 15000`).
    Place,
    /// Mixed letters and digits (a VIN, not a 17-letter word).
    Mixed,
    /// Letters glued to a number are not a label (`MRN-38815207`: the label stays, its value is found by the
    /// labelled rule).
    NotLabel,
    /// `93F` is an age unless a temperature word stands before it (`fever to 102 F`).
    NotTemperature,
    /// `3/14` after `on`/`since`: not followed by a dose unit (`on 1/2 tab`).
    NotDose,
}

struct Rule {
    kind: PhiKind,
    regex: Regex,
    /// Capture group holding the identifier (0: the whole match).
    group: usize,
    check: Check,
}

fn rule(kind: PhiKind, pattern: &str, group: usize, check: Check) -> Option<Rule> {
    match compile(pattern) {
        Ok(regex) => Some(Rule { kind, regex, group, check }),
        Err(error) => {
            // A pattern that does not compile is a bug caught by the tests (every rule is exercised by the
            // corpus); at run time the other rules still apply.
            tracing::error!(%error, "a pseudonymisation pattern does not compile");
            None
        }
    }
}

/// A Unicode word boundary makes the regex engine leave its fast DFA on any non-ASCII text; patterns about
/// digits and ASCII labels lose nothing with an ASCII boundary. Patterns with Unicode letters keep theirs
/// (`Óscar` starts a word).
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    if pattern.contains(r"\p{") { Regex::new(pattern) } else { Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")) }
}

/// Month names: the first letter capitalised so that `may` and `dec` (decrease) stay words; the rest in any
/// case (`FEB`, `February`).
const MON: &str = r"(?:J(?i:an(?:uary)?|une?|uly?)|F(?i:eb(?:ruary)?)|M(?i:ar(?:ch)?|ay)|A(?i:pr(?:il)?|ug(?:ust)?)|S(?i:ep(?:t(?:ember)?)?)|O(?i:ct(?:ober)?)|N(?i:ov(?:ember)?)|D(?i:ec(?:ember)?))";
/// Month abbreviations in any case, only where a year follows with `-` or `/` (`11-feb-1985`).
const MON_ANY: &str = r"(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)";
const ORD: &str = r"(?:st|nd|rd|th)?";

/// The value after an identifier label: optional letters, then digits and letters, groups joined by a space
/// or a dash (`ABCD12345`, `001 234 567`, `W-1234-55`).
const ID_VALUE: &str =
    r"((?:[A-Za-z]{1,6}[ -]?)?\d[0-9A-Za-z]*(?:[ -]\d[0-9A-Za-z]*)*|[A-Za-z]{1,6}[-]?\d[0-9A-Za-z-]*)";
/// Between a label and its value: `:`, `#`, `No.`, `=`, spaces.
const ID_SEP: &str = r"\s*(?:[:#=.\-]\s*)*(?:(?i:no|num|number|nbr)\.?\s*)?(?:[:#]\s*)?";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let mrn_label = r"(?i:\bMRN\b|\bMR\s?#|\bMR\s?(?:No|Num|Number)\b\.?|\bmed(?:ical)?\.?\s?rec(?:ord)?s?\b\.?(?:\s?(?:no\b\.?|num(?:ber)?\b|#|id\b))?|\bchart\s?(?:no\b\.?|num(?:ber)?\b|#|id\b)|\bhosp(?:ital)?\.?\s?(?:no\b\.?|num(?:ber)?\b|#|id\b)|\bunit\s?(?:no\b\.?|number\b)|\bpatient\s?(?:id\b|identifier\b|#|no\b\.?|number\b)|\bpt\.?\s?(?:id\b|#|no\b\.?)|\bPID\b|\bEMPI\b|\bEHR\s?(?:id\b|#)|\bcase\s?(?:no\b\.?|#|number\b))";
    let id_label = r"(?i:\bmember\s?(?:id\b|#|no\b\.?|number\b)|\bsubscriber\s?(?:id\b|#|no\b\.?|number\b)|\bpolicy\s?(?:id\b|#|no\b\.?|number\b)|\b(?:health\s)?plan\s?(?:id\b|#|no\b\.?|number\b)|\bgroup\s?(?:id\b|#|no\b\.?|number\b)|\binsurance\s?(?:id\b|#|no\b\.?|number\b)|\bbeneficiary\s?(?:id\b|#|no\b\.?|number\b)|\bmedicaid\b(?:\s?(?:id\b|#|no\b\.?|number\b))?|\bmedicare\b(?:\s?(?:id\b|#|no\b\.?|number\b))?|\bMBI\b|\bHICN\b|\bacc(?:oun)?t\b\.?(?:\s?(?:id\b|#|no\b\.?|number\b))?|\bFIN\b|\bCSN\b|\bencounter\s?(?:id\b|#|no\b\.?|number\b)|\bvisit\s?(?:id\b|#|no\b\.?|number\b)|\bclaim\s?(?:id\b|#|no\b\.?|number\b)|\bbilling\s?(?:id\b|#|no\b\.?|number\b)|\bdriver'?s\s?licen[cs]e\b(?:\s?(?:#|no\b\.?|number\b))?|\blicen[cs]e\s?(?:id\b|#|no\b\.?|number\b)|\blic\.?\s?(?:#|no\b\.?)|\bDL\s?#|\bDEA\b(?:\s?(?:#|no\b\.?))?|\bNPI\b|\bcertificate\s?(?:id\b|#|no\b\.?|number\b)|\bpassport\b(?:\s?(?:#|no\b\.?|number\b))?|\bemployee\s?(?:id\b|#|no\b\.?))";
    let device_label = r"(?i:\bserial\b(?:\s?(?:#|no\b\.?|number\b))?|\bS/N\b|\bdevice\s?(?:id\b|#|serial\b|identifier\b)|\bUDI\b|\bIMEI\b|\bimplant\s?(?:id\b|#|serial\b))|\bSN\b";
    let date_any = format!(
        r"\d{{1,2}}/\d{{1,2}}/(?:\d{{4}}|\d{{2}})|\d{{1,2}}-\d{{1,2}}-(?:\d{{4}}|\d{{2}})|\d{{1,2}}\.\d{{1,2}}\.(?:\d{{4}}|\d{{2}})|(?:19|20)\d{{2}}[/.-]\d{{1,2}}[/.-]\d{{1,2}}|\d{{1,2}}{ORD}[ /.-]+(?:of )?{MON}\.?,?[ /.-]*(?:\d{{4}}|'?\d{{2}})|{MON}\.?\s+\d{{1,2}}{ORD},?\s+\d{{4}}"
    );
    let strong_street = r"(?i:street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|terrace|ter|trail|trl|parkway|pkwy|highway|hwy|circle|cir|place|pl|square|sq|crescent|cres|alley|plaza|turnpike|tpke|expressway|expy)";
    let weak_street = r"(?:Way|WAY|Path|Row|Run|Loop|Pike|Close|Point|Hill|Heights|Commons|Green|Walk|Crossing|Bend|Cove|Ridge|Landing|Glen)";
    let street_tail = r"\b\.?(?:,?[ \t]+(?i:apt|apartment|unit|suite|ste|fl|floor|rm|room)\b\.?[ \t]*#?[0-9A-Za-z-]+|,?[ \t]*#[ \t]?[0-9A-Za-z-]+)?(?:,[ \t]*\p{Lu}[\p{L}\p{M}]+(?:[ \t]\p{Lu}[\p{L}\p{M}]+){0,2})?(?:,?[ \t]+[A-Z]{2}\b)?(?:,?[ \t]+\d{5}(?:-\d{4})?\b)?";
    let street_head = r"\b\d{1,6}[A-Za-z]?(?:-\d{1,4})?(?:[ \t]+[\p{L}\p{M}'’.-]+){1,4}?[ \t]+";
    [
        rule(PhiKind::Email, r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", 0, Check::None),
        rule(PhiKind::Url, r#"(?i)\b(?:https?://|ftp://|www\.)[^\s<>"'()\[\]{}]+[^\s<>"'()\[\]{}.,;:!?]"#, 0, Check::None),
        rule(PhiKind::Ip, r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", 0, Check::Ipv4),
        rule(
            PhiKind::Ip,
            r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?\b",
            0,
            Check::None,
        ),
        rule(
            PhiKind::Ssn,
            r"(?i:\bSSN\b|\bSS#|\bsoc(?:ial)?\.?\s?sec(?:urity)?\.?(?:\s?(?:number|no\.?|#))?)\s*[:#]?\s*(\d{3}[ -]?\d{2}[ -]?\d{4})\b",
            1,
            Check::None,
        ),
        rule(PhiKind::Ssn, r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b", 0, Check::None),
        rule(PhiKind::Mrn, &format!(r"{mrn_label}{ID_SEP}{ID_VALUE}"), 1, Check::MinAlnum(4)),
        rule(PhiKind::Id, &format!(r"{id_label}{ID_SEP}{ID_VALUE}"), 1, Check::MinAlnum(4)),
        rule(
            PhiKind::Device,
            &format!(r"(?:{device_label}){ID_SEP}([A-Za-z0-9(][A-Za-z0-9()/-]*\d[A-Za-z0-9()/-]*)"),
            1,
            Check::MinAlnum(4),
        ),
        rule(PhiKind::Vehicle, r"(?i:\bVIN\b)\s*[:#]?\s*([A-HJ-NPR-Z0-9]{11,17})\b", 1, Check::None),
        rule(PhiKind::Vehicle, r"\b[A-HJ-NPR-Z0-9]{17}\b", 0, Check::Mixed),
        rule(
            PhiKind::Vehicle,
            r"(?i:\blicen[cs]e\s?plate\b|\bplate\b)(?:\s?(?:#|no\b\.?|number\b))?\s*[:#]?\s*([A-Za-z0-9]{2,8}(?:[ -][A-Za-z0-9]{2,5})?)\b",
            1,
            Check::MinAlnum(4),
        ),
        rule(PhiKind::Date, &format!(r"\b(?:{date_any})\b"), 0, Check::DateStart),
        rule(PhiKind::Date, &format!(r"\b\d{{1,2}}[-/]{MON_ANY}[-/](?:\d{{4}}|\d{{2}})\b"), 0, Check::None),
        rule(PhiKind::Date, &format!(r"\b{MON}\.?\s+\d{{1,2}}{ORD}\b"), 0, Check::None),
        rule(PhiKind::Date, &format!(r"\b\d{{1,2}}{ORD}\s+(?:of\s+)?{MON}\b\.?"), 0, Check::None),
        rule(PhiKind::Date, &format!(r"\b{MON}\.?,?\s*(?:of\s+)?(?:(?:19|20)\d{{2}}|'\d{{2}})\b"), 0, Check::None),
        rule(PhiKind::Date, &format!(r"\b{MON}[-/]\d{{2,4}}\b"), 0, Check::None),
        rule(PhiKind::Date, &format!(r"\b(?i:{MON_ANY})[a-z]*\.?\s+(?:19|20)\d{{2}}\b"), 0, Check::None),
        rule(PhiKind::Date, r"\b(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}\b", 0, Check::DateStart),
        rule(
            PhiKind::Date,
            r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b|\b(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:19|20)\d{2}\b",
            0,
            Check::None,
        ),
        rule(
            PhiKind::Date,
            r"(?i:\b(?:on|since|from|until|till|thru|through|dated?|seen|admitted|discharged|DOS|returned?|last|next|visit|surgery|onset)\b)[ \t]*:?[ \t]*((?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))\b",
            1,
            Check::NotDose,
        ),
        rule(
            PhiKind::Date,
            &format!(r"(?i:\b(?:in|on|since|until|till|by|from|during|early|late|mid|last|next|this|before|after)\b)[ \t-]+({MON}\b\.?)"),
            1,
            Check::None,
        ),
        rule(
            PhiKind::Age,
            r"(?i)\b(9\d|1[0-2]\d)(?:[ \t]*|-)(?:y/o[mf]?|y\.o\.|yo[mf]?\b|years?\b|yrs?\b|y\b)",
            1,
            Check::None,
        ),
        rule(PhiKind::Age, r"(?i:\bage[ds]?\b|\bage:)[ \t]*:?[ \t]*(9\d|1[0-2]\d)\b", 1, Check::None),
        rule(PhiKind::Age, r"\b(9\d|1[0-2]\d)[ \t]?(?:M|F)\b", 1, Check::NotTemperature),
        rule(
            PhiKind::Phone,
            r"(?i:\b(?:phone|ph|tel|telephone|cell|mobile|mob|home|work|fax|pager|beeper|contact(?: number| no\.?)?|call|callback|cb|whatsapp))\b\.?[ \t]*(?:#|no\.?)?[ \t]*:?[ \t]*(\+?[\d(][\d() .-]{5,}\d)",
            1,
            Check::PhoneDigits,
        ),
        rule(
            PhiKind::Phone,
            r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b(?:[ \t]*(?i:x|ext\.?)[ \t]*\d{1,5}\b)?|\b\d{3}-\d{4}\b",
            0,
            Check::None,
        ),
        rule(PhiKind::Phone, r"\b1?[2-9]\d{2}[2-9]\d{6}\b", 0, Check::None),
        rule(PhiKind::Phone, r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}\b", 0, Check::PhoneDigits),
        rule(PhiKind::Address, &format!(r"{street_head}{strong_street}{street_tail}"), 0, Check::Street),
        rule(PhiKind::Address, &format!(r"{street_head}{weak_street}{street_tail}"), 0, Check::Street),
        rule(
            PhiKind::Address,
            r"(?i:\bP\.?[ \t]?O\.?[ \t]?Box|\bPost[ \t]+Office[ \t]+Box|\bPMB)\b[ \t]*#?[ \t]*\d+\b(?:,[ \t]*\p{Lu}[\p{L}\p{M}]+(?:[ \t]\p{Lu}[\p{L}\p{M}]+){0,2})?(?:,?[ \t]+[A-Z]{2}\b)?(?:,?[ \t]+\d{5}(?:-\d{4})?\b)?",
            0,
            Check::None,
        ),
        rule(
            PhiKind::Address,
            r"\b(\p{Lu}[\p{Ll}\p{M}]+(?:[ \t-]\p{Lu}[\p{Ll}\p{M}]+){0,2}),?[ \t]+(?:[A-Z]{2}[ \t]+)?\d{5}(?:-\d{4})?\b",
            0,
            Check::Place,
        ),
        rule(PhiKind::Address, r"(?i:\bzip(?:[ \t]?code)?|\bpostal[ \t]code)\b[ \t]*[:#]?[ \t]*(\d{5}(?:-\d{4})?)\b", 1, Check::None),
        rule(
            PhiKind::Address,
            r"(?i:\blives[ \t]+in|\bliving[ \t]+in|\bresides[ \t]+in|\bresident[ \t]+of|\bmoved[ \t]+(?:here[ \t]+)?(?:from|to)|\brelocated[ \t]+(?:from|to)|\bborn[ \t]+in|\bgrew[ \t]+up[ \t]+in|\bhometown(?:[ \t]+(?:of|is))?|\bvisiting[ \t]+from|\bcity:|\btown:)[ \t]+(\p{Lu}[\p{L}\p{M}'’.-]*(?:[ \t]\p{Lu}[\p{L}\p{M}'’.-]*){0,2})",
            1,
            Check::Place,
        ),
        rule(PhiKind::Id, r"\b\d{8,}\b", 0, Check::None),
        rule(PhiKind::Id, r"\b[A-Z]{1,4}-?\d{6,}\b|\b\d{6,}[A-Z]{1,3}\b", 0, Check::NotLabel),
    ]
    .into_iter()
    .flatten()
    .collect()
});

/// Words in the text: letters and marks, with inner apostrophes and hyphens (`O'Brien`, `Keever-Ibarra`).
static WORD: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"[\p{L}\p{M}][\p{L}\p{M}'’-]*").ok());
static WORD_AT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{M}][\p{L}\p{M}'’-]*\.?").ok());

/// A label after which a name follows (`Patient:`, `Patient Name -`, `Pt`), and whether it names a relative
/// (only capitalised words follow a relative: "mother: breast cancer" is family history).
static NAME_LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"(?i)\b(?:(patient(?:'s)?(?:[ \t]+(?:full[ \t]+|legal[ \t]+)?name)?|pt\.?(?:[ \t]+name)?|(?:full|legal|preferred|first|last|given|family|maiden|member|subscriber|insured|guarantor)[ \t]+name|name|client|resident|subscriber|insured|guarantor|emergency[ \t]+contact|contact(?:[ \t]+person)?|nok|next[ \t]+of[ \t]+kin|referred[ \t]+by|referring(?:[ \t]+(?:physician|provider|md|doctor))?|pcp|attending(?:[ \t]+(?:physician|md))?|provider|physician|surgeon|(?:electronically[ \t]+)?signed[ \t]+by|dictated[ \t]+by|transcribed[ \t]+by|author|cc|re|attn|named|called|known[ \t]+as|goes[ \t]+by|works[ \t]+(?:at|for)|employed[ \t]+(?:at|by)|employer)|((?:step|grand|great-?grand)?(?:husband|wife|spouse|partner|boyfriend|girlfriend|fianc[eé]e?|son|daughter|mother|father|mom|dad|mum|brother|sister|grandson|granddaughter|grandmother|grandfather|grandma|grandpa|aunt|uncle|niece|nephew|cousin|friend|neighbou?r|roommate|caregiver|guardian|parent)(?:-in-law)?))\b",
    )
    .ok()
});

/// Titles before a name. Case-sensitive: `MS` and `ms` are multiple sclerosis.
static TITLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| compile(r"\b(?:Mr|MR|Mrs|MRS|Ms|Miss|Mx|Dr|DR|dr|Drs|Prof|Rev|Sr|Nurse)\b(\.?)").ok());

/// A name before a credential (`Jane Roe, MD`).
static CREDENTIAL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(\p{Lu}[\p{Ll}\p{M}'’-]+(?:[ \t]\p{Lu}\.)?(?:[ \t]\p{Lu}[\p{Ll}\p{M}'’-]+){1,2}),?[ \t]+(?:MD|M\.D\.|DO|RN|NP|PA-C|DDS|PhD|APRN|CNM|LPN|LCSW|MSW|FNP|DNP)\b").ok()
});

/// A name before an age (`John Smith is 54`, `Wu, 67 yo`).
static NAME_THEN_AGE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(\p{Lu}[\p{Ll}\p{M}'’-]+(?:[ \t]\p{Lu}[\p{Ll}\p{M}'’-]+){0,2})(?:,?[ \t]+(?:is|was)[ \t]+(?:an?[ \t]+)?|,[ \t]+(?:an?[ \t]+)?)\d{1,3}\b").ok()
});

/// Labels whose date is a date of birth.
static DOB_LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(r"(?i:\bDOB\b|\bD\.O\.B\b\.?|\bdate[ \t]+of[ \t]+birth\b|\bborn(?:[ \t]+on)?\b|\bbirth[ \t]?date\b|\bb-?day\b|\bbirthday\b)[ \t]*[:#-]?[ \t]*").ok()
});

/// Words that end a name in a header line (`Patient: Ann Lee DOB …`).
const NAME_STOP: &[&str] = &[
    "dob",
    "d.o.b",
    "mrn",
    "age",
    "sex",
    "gender",
    "date",
    "born",
    "phone",
    "cell",
    "tel",
    "ssn",
    "id",
    "acct",
    "account",
    "visit",
    "encounter",
    "room",
    "rm",
    "bed",
    "f",
    "m",
    "y",
    "yo",
    "dos",
    "fin",
    "csn",
    "npi",
    "member",
];

pub(super) fn find_all(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for rule in RULES.iter() {
        for captures in rule.regex.captures_iter(text) {
            let Some(m) = captures.get(rule.group).or_else(|| captures.iter().skip(1).flatten().next()) else {
                continue;
            };
            let range = m.range();
            if !range.is_empty() && passes(text, &range, rule.check) {
                found.push(Found { range, kind: rule.kind, alias: None });
            }
        }
    }
    mark_dates_of_birth(text, &mut found);
    find_names(text, &mut found);
    found
}

fn passes(text: &str, range: &Range<usize>, check: Check) -> bool {
    let Some(value) = text.get(range.clone()) else { return false };
    match check {
        Check::None => true,
        Check::MinAlnum(n) => value.chars().filter(char::is_ascii_alphanumeric).count() >= n,
        Check::PhoneDigits => (7..=15).contains(&value.chars().filter(char::is_ascii_digit).count()),
        Check::Ipv4 => value.split('.').all(|part| part.parse::<u16>().is_ok_and(|n| n <= 255)),
        Check::DateStart => {
            let before = text.get(..range.start).and_then(|s| s.chars().next_back());
            !before.is_some_and(|c| c == '.' || c == ',' || c.is_ascii_digit())
        }
        Check::Mixed => {
            value.chars().filter(char::is_ascii_digit).count() >= 2
                && value.chars().filter(char::is_ascii_alphabetic).count() >= 2
        }
        Check::Street => street_words_are_names(value),
        Check::Place => place_is_a_name(value),
        Check::NotLabel => {
            let letters: String = value.chars().take_while(char::is_ascii_alphabetic).collect();
            !matches!(
                letters.as_str(),
                "MRN"
                    | "MR"
                    | "ID"
                    | "PID"
                    | "ACCT"
                    | "FIN"
                    | "CSN"
                    | "NPI"
                    | "DEA"
                    | "MBI"
                    | "SSN"
                    | "DL"
                    | "SN"
                    | "VIN"
            )
        }
        Check::NotTemperature => {
            let before = text.get(..range.start).unwrap_or("");
            let last = before.split(|c: char| !c.is_alphabetic()).rev().find(|w| !w.is_empty()).unwrap_or("");
            let close = before.len() - before.trim_end_matches(|c: char| !c.is_alphabetic()).len() < 4;
            !(close
                && matches!(
                    last.to_lowercase().as_str(),
                    "to" | "of" | "t" | "temp" | "temperature" | "fever" | "fevers" | "tmax" | "max" | "febrile" | "up"
                ))
        }
        Check::NotDose => {
            let after = text.get(range.end..).unwrap_or("");
            let next = after.trim_start().split(|c: char| !c.is_alphabetic()).next().unwrap_or("");
            !matches!(
                next.to_lowercase().as_str(),
                "tab" | "tabs" | "tablet" | "tablets" | "mg" | "cap" | "caps" | "dose" | "doses" | "pill" | "strength"
            )
        }
    }
}

fn words(text: &str) -> impl Iterator<Item = regex::Match<'_>> {
    WORD.as_ref().into_iter().flat_map(move |w| w.find_iter(text))
}

/// Street words are names, not prose: none is a common word, a unit or a number word.
fn street_words_are_names(value: &str) -> bool {
    let mut inner = words(value)
        .filter(|w| !value.get(..w.start()).and_then(|s| s.chars().next_back()).is_some_and(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>();
    // The last word is the street type; a trailing city or unit after it is checked by its own shape.
    inner.truncate(inner.len().saturating_sub(1));
    inner.iter().all(|w| {
        let lower = w.as_str().to_lowercase();
        !matches!(
            lower.as_str(),
            "tab"
                | "tabs"
                | "tablet"
                | "tablets"
                | "mg"
                | "mcg"
                | "ml"
                | "units"
                | "times"
                | "blocks"
                | "block"
                | "miles"
                | "mile"
                | "feet"
                | "ft"
                | "steps"
                | "yards"
                | "meters"
                | "km"
                | "minutes"
                | "hours"
                | "days"
                | "weeks"
                | "months"
                | "years"
                | "puffs"
                | "drops"
                | "sprays"
        ) && (!lexicon::is_not_a_name(&lower)
            || matches!(lower.as_str(), "north" | "south" | "east" | "west" | "n" | "s" | "e" | "w" | "old" | "new"))
    })
}

fn place_is_a_name(value: &str) -> bool {
    let mut place: Vec<String> = words(value)
        .take_while(|w| !w.as_str().chars().all(|c| c.is_ascii_uppercase()))
        .map(|w| w.as_str().to_lowercase())
        .collect();
    // `New Bedford`, `East Orange`, `Fort Worth`: a place prefix counts only with a name after it.
    let prefixed = place.len() > 1
        && matches!(
            place.first().map(String::as_str),
            Some(
                "new"
                    | "north"
                    | "south"
                    | "east"
                    | "west"
                    | "old"
                    | "fort"
                    | "port"
                    | "saint"
                    | "st"
                    | "mount"
                    | "lake"
            )
        );
    if prefixed {
        place.remove(0);
    }
    !place.is_empty() && place.iter().all(|lower| !lexicon::is_not_a_name(lower) && !is_lab_word(lower))
}

/// Lab and measurement names written before a number (`Platelets 15000`), never a town.
fn is_lab_word(lower: &str) -> bool {
    matches!(
        lower,
        "platelets"
            | "platelet"
            | "plt"
            | "wbc"
            | "rbc"
            | "hgb"
            | "hct"
            | "glucose"
            | "sodium"
            | "potassium"
            | "creatinine"
            | "ferritin"
            | "bnp"
            | "troponin"
            | "ldh"
            | "cpk"
            | "ck"
            | "amylase"
            | "lipase"
            | "count"
            | "level"
            | "total"
            | "titer"
            | "titre"
            | "dose"
            | "units"
            | "copies"
            | "load"
            | "viral"
            | "cells"
            | "cd"
            | "steps"
            | "weight"
            | "cost"
            | "charge"
            | "charges"
            | "code"
            | "cpt"
            | "icd"
            | "lot"
            | "batch"
    )
}

/// A date right after `DOB`, `born`, `date of birth` is a date of birth.
fn mark_dates_of_birth(text: &str, found: &mut [Found]) {
    let Some(label) = DOB_LABEL.as_ref() else { return };
    let mut date_at: HashMap<usize, usize> = HashMap::new();
    for (i, f) in found.iter().enumerate() {
        if f.kind == PhiKind::Date {
            date_at.entry(f.range.start).or_insert(i);
        }
    }
    for m in label.find_iter(text) {
        if let Some(&i) = date_at.get(&m.end())
            && let Some(f) = found.get_mut(i)
        {
            f.kind = PhiKind::Dob;
        }
    }
}

/// How the words after a trigger may look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// After a label with a separator (`pt: john smith`, `NAME: ANN LEE`): any case, and the name may be on
    /// the next line.
    Lenient,
    /// After a title (`Dr.Okafor`, `Mrs. smith`): the first word in any case, then capitalised words.
    Title,
    /// After a bare label or a relative (`husband Robert`, `Pt Jane Doe`): capitalised words only.
    Strict,
}

fn find_names(text: &str, found: &mut Vec<Found>) {
    let mut names: Vec<Range<usize>> = Vec::new();
    if let Some(label) = NAME_LABEL.as_ref() {
        for captures in label.captures_iter(text) {
            let Some(whole) = captures.get(0) else { continue };
            let relative = captures.get(2).is_some();
            if whole.as_str().eq_ignore_ascii_case("name") && preceded_by_word(text, whole.start()) {
                // `Drug name: metformin`, `Test name: CBC`.
                continue;
            }
            let (at, has_separator) = after_separator(text, whole.end(), relative);
            let mode = if has_separator && !relative { Mode::Lenient } else { Mode::Strict };
            names.extend(capture_name(text, at, mode, has_separator && !relative));
        }
    }
    if let Some(title) = TITLE.as_ref() {
        for captures in title.captures_iter(text) {
            let Some(whole) = captures.get(0) else { continue };
            let dotted = captures.get(1).is_some_and(|m| !m.is_empty());
            let at = whole.end();
            let next = text.get(at..).and_then(|s| s.chars().next());
            // `Dr.Okafor` has no space; `Drs` or `DR` glued to a word is something else.
            if next.is_some_and(char::is_alphabetic) && !dotted {
                continue;
            }
            names.extend(capture_name(text, at, Mode::Title, false));
        }
    }
    for regex in [CREDENTIAL.as_ref(), NAME_THEN_AGE.as_ref()].into_iter().flatten() {
        for captures in regex.captures_iter(text) {
            let Some(m) = captures.get(1) else { continue };
            names.extend(capture_name(text, m.start(), Mode::Strict, false).filter(|r| r.end == m.end()));
        }
    }
    // A given name starts a name anywhere (`Li Wu reports`, `ANN LEE`).
    for w in words(text) {
        let word = without_possessive(w.as_str());
        let lower = word.to_lowercase();
        if lexicon::is_given_name(&lower) && (is_titlecase(word) || is_all_caps(word)) {
            names.extend(capture_name(text, w.start(), Mode::Title, false));
        }
    }
    for range in &names {
        found.push(Found { range: range.clone(), kind: PhiKind::Name, alias: None });
    }
    propagate(text, &names, found);
}

/// `Patricia's` → `Patricia`; a trailing apostrophe or hyphen is not part of the word either.
fn without_possessive(raw: &str) -> &str {
    let word = raw.strip_suffix("'s").or_else(|| raw.strip_suffix("’s")).unwrap_or(raw);
    word.trim_end_matches(['\'', '’', '-'])
}

fn preceded_by_word(text: &str, at: usize) -> bool {
    let before = text.get(..at).unwrap_or("");
    let trimmed = before.trim_end_matches([' ', '\t']);
    trimmed.len() < before.len() && trimmed.chars().next_back().is_some_and(char::is_alphabetic)
}

/// Skips `[ \t]*[:#–—-]?[ \t]*` after a label (a comma only after a relative: `wife, Anna`, but `PT, NSAID`); with a separator and nothing else on the line, the name may
/// be on the next line.
fn after_separator(text: &str, at: usize, relative: bool) -> (usize, bool) {
    let rest = text.get(at..).unwrap_or("");
    let mut offset = 0;
    let mut separator = false;
    for c in rest.chars() {
        if is_horizontal_space(c) {
            offset += c.len_utf8();
        } else if !separator && (matches!(c, ':' | '#' | '-' | '–' | '—' | '=') || c == ',' && relative) {
            separator = true;
            offset += c.len_utf8();
        } else {
            break;
        }
    }
    (at + offset, separator)
}

fn is_horizontal_space(c: char) -> bool {
    c.is_whitespace() && c != '\n' && c != '\r'
}

fn is_titlecase(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(char::is_uppercase) && chars.any(char::is_lowercase)
}

fn is_all_caps(word: &str) -> bool {
    word.chars().filter(|c| c.is_alphabetic()).count() >= 2 && !word.chars().any(char::is_lowercase)
}

/// Reads name words from `at`: up to five words (initials included), one comma after the first word
/// (`Smith, John`), and in lenient mode a line break before the first word.
fn capture_name(text: &str, at: usize, mode: Mode, next_line: bool) -> Option<Range<usize>> {
    let word_at = WORD_AT.as_ref()?;
    let mut pos = at;
    let mut start = None;
    let mut end = at;
    let mut count = 0;
    let mut newline_allowed = next_line;
    let mut comma_used = false;
    while count < 5 {
        let rest = text.get(pos..)?;
        let mut chars = rest.char_indices();
        let Some((_, c)) = chars.next() else { break };
        if is_horizontal_space(c) {
            pos += c.len_utf8();
            continue;
        }
        if c == '\r' || c == '\n' {
            if newline_allowed && count == 0 {
                newline_allowed = false;
                pos += c.len_utf8();
                continue;
            }
            break;
        }
        if c == ',' && count == 1 && !comma_used && mode != Mode::Strict {
            comma_used = true;
            pos += 1;
            continue;
        }
        let Some(m) = word_at.find(rest) else { break };
        let raw = m.as_str();
        let dotted = raw.ends_with('.');
        let core = raw.trim_end_matches('.');
        let core = core.strip_suffix("'s").or_else(|| core.strip_suffix("’s")).unwrap_or(core);
        let core = core.trim_end_matches(['\'', '’', '-']);
        let after = pos + m.end();
        let followed_by_colon = text.get(after..).is_some_and(|s| s.starts_with(':'));
        let initial = dotted && core.chars().count() == 1;
        if core.is_empty() || followed_by_colon || !is_name_word(text, core, after, mode, count, initial) {
            break;
        }
        let single_letter = core.chars().count() == 1;
        start.get_or_insert(pos);
        // An initial keeps its period; a period after a full word ends the sentence.
        end = pos + if single_letter && dotted { raw.len() } else { core.len() };
        count += 1;
        pos = after;
        if dotted && !single_letter {
            break;
        }
    }
    let start = start?;
    // A lone initial (`J.`) is not a name; neither is a lone capitalised word after a relative that the
    // next word shows to be a heading.
    let value = text.get(start..end)?;
    (value.chars().filter(|c| c.is_alphabetic()).count() >= 2).then_some(start..end)
}

fn is_name_word(text: &str, core: &str, after: usize, mode: Mode, index: usize, initial: bool) -> bool {
    let lower = core.to_lowercase();
    // `F`/`M` after a name is the sex (`Ann Lee F 54`); `M.` is an initial.
    if !initial && NAME_STOP.contains(&lower.as_str()) {
        return false;
    }
    if next_word_is_eponym_follower(text, after) {
        return false;
    }
    let single = core.chars().count() == 1;
    if single {
        // An initial: capital letter, not the first word after a bare label.
        return core.chars().all(char::is_uppercase) && (index > 0 || mode != Mode::Strict);
    }
    let titled = is_titlecase(core);
    let caps = is_all_caps(core);
    if lexicon::is_common_word_name(&lower) && (titled || caps) {
        return true;
    }
    if lexicon::is_not_a_name(&lower) {
        return false;
    }
    match mode {
        Mode::Strict => titled,
        Mode::Title => titled || caps || (index == 0 && plausible_lowercase_name(&lower)),
        Mode::Lenient => titled || caps || plausible_lowercase_name(&lower),
    }
}

/// A lowercase word after a label is a name unless it reads as prose (`ambulating`, `noted`, `quickly`).
fn plausible_lowercase_name(lower: &str) -> bool {
    const PROSE_ENDINGS: &[&str] = &["ing", "ed", "ly", "tion", "sion", "ness", "ment", "ous", "ive", "ful", "less"];
    lower.chars().count() >= 2 && !PROSE_ENDINGS.iter().any(|e| lower.ends_with(e) && lower.len() > e.len() + 2)
}

fn next_word_is_eponym_follower(text: &str, after: usize) -> bool {
    let rest = text.get(after..).unwrap_or("");
    let rest = rest.strip_prefix("'s").or_else(|| rest.strip_prefix("’s")).unwrap_or(rest);
    let rest = rest.strip_prefix(['\'', '’']).unwrap_or(rest);
    let next: String =
        rest.trim_start_matches(is_horizontal_space).chars().take_while(|c| c.is_alphabetic() || *c == '\'').collect();
    lexicon::is_eponym_follower(&next.to_lowercase())
}

/// A name found once is hidden wherever its words recur; each mention takes the whole name's token, so
/// "Rosamund" later in the note is the same `[NAME-1]`.
fn propagate(text: &str, names: &[Range<usize>], found: &mut Vec<Found>) {
    // lowercase word → whole name (any case), exact word → whole name (common words, two-letter names).
    let mut any_case: HashMap<String, String> = HashMap::new();
    let mut exact: HashMap<String, String> = HashMap::new();
    for range in names {
        let Some(value) = text.get(range.clone()) else { continue };
        let whole = super::normalise_value(value);
        for w in words(value) {
            let word = w.as_str().trim_end_matches(['\'', '’', '-']);
            let parts = std::iter::once(word).chain(word.split('-').filter(|p| p.len() < word.len()));
            for part in parts {
                let lower = part.to_lowercase();
                if part.chars().count() < 2 || lexicon::is_not_a_name(&lower) && !lexicon::is_common_word_name(&lower) {
                    continue;
                }
                if part.chars().count() == 2 || lexicon::is_common_word_name(&lower) {
                    exact.entry(part.to_owned()).or_insert_with(|| whole.clone());
                } else {
                    any_case.entry(lower).or_insert_with(|| whole.clone());
                }
            }
        }
    }
    if any_case.is_empty() && exact.is_empty() {
        return;
    }
    for w in words(text) {
        let word = without_possessive(w.as_str());
        let mut push = |offset: usize, part: &str| {
            let alias = exact.get(part).or_else(|| any_case.get(&part.to_lowercase()));
            if let Some(alias) = alias {
                let start = w.start() + offset;
                found.push(Found { range: start..start + part.len(), kind: PhiKind::Name, alias: Some(alias.clone()) });
                true
            } else {
                false
            }
        };
        if !push(0, word) && word.contains('-') {
            let mut offset = 0;
            for part in word.split('-') {
                push(offset, part);
                offset += part.len() + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        // One `rule(..)` per line that starts a rule in `RULES`; a pattern that fails to compile is dropped at
        // run time, so a count below this means a lost rule.
        assert_eq!(RULES.len(), 38);
        for regex in [&WORD, &WORD_AT, &NAME_LABEL, &TITLE, &CREDENTIAL, &NAME_THEN_AGE, &DOB_LABEL] {
            assert!(regex.is_some());
        }
    }
}
