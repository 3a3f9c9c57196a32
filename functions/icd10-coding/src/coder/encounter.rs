//! The reason for the encounter (Official Guidelines Section IV.A, I.C.21.c): general, child and gynecological
//! exams with or without abnormal findings, immunization given, screening (not diagnostic) encounters, drug
//! level monitoring, weeks of gestation, and tobacco status with its counselling.
//!
//! These codes come from what the visit is, written in the title line and the assessment, or from a few
//! documented facts (a vaccine given, tobacco use), rather than from one diagnosis's wording, so they are read
//! here with phrase rules instead of the lexical matcher. Every phrase is searched in the note itself with
//! ASCII case folding, so offsets index the note (lowercasing can change byte lengths).

use super::Span;
use super::context::{Analysis, Section};

/// A code the encounter layer proposes, with the words that support it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub code: String,
    pub span: Span,
    /// A personal history code rather than a current condition or encounter.
    pub history: bool,
}

/// Categories (or codes) this layer decides: the lexical matcher's guesses there are replaced.
pub const OWNED: &[&str] = &[
    "Z00", "Z01.4", "Z23", "Z11", "Z12", "Z13", "Z3A", "F17", "Z72.0", "Z87.891", "Z71.6", "Z77.22", "O99.21",
    "O99.33", "Z51.81", "Z09", "Z02.5", "Z01.81", "Z71.3",
];

pub fn owns(code: &str) -> bool {
    OWNED.iter().any(|o| code.starts_with(o))
}

/// A line of the note with its byte offset.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    start: usize,
    text: &'a str,
}

/// What the layer knows of the note besides its lines.
pub struct Facts {
    /// Pregnancy documented by a chapter 15 proposal (O00–O9A).
    pub pregnancy_code: bool,
    /// Supervision of a normal pregnancy (Z34): weeks of gestation are not added to it.
    pub supervision: bool,
    /// A current condition (not a Z code, not history) was proposed.
    pub current_condition: bool,
    pub obesity: bool,
    /// A proposal's "use additional code" note asks for tobacco exposure or use (J44, I25, C34…).
    pub tobacco_noted: bool,
}

/// Words that say the patient is pregnant.
const PREGNANCY: &[&str] = &[
    "pregnan*",
    "iup",
    "prenatal",
    "antenatal",
    "gestation*",
    "ob visit",
    "ob return",
    "new ob",
    "ob intake",
    "ob urgent",
];

/// Identifying lines (name, MRN, address) are never the title of the visit.
const IDENTIFYING: &[&str] = &["dob", "mrn", "name:", "patient:", "address", "phone", "ssn", "tel", "acct", "account"];

pub fn reasons(note: &str, analysis: &Analysis, facts: &Facts) -> Vec<Reason> {
    let lines = lines(note, analysis);
    let assessment: Vec<Line> = lines
        .iter()
        .filter(|l| {
            analysis.clauses.iter().any(|c| {
                c.section == Section::Assessment && c.span.start >= l.start && c.span.start < l.start + l.text.len()
            })
        })
        .copied()
        .collect();
    let title = title_of(&lines, &assessment);
    // The reason for the visit is stated in its title or its assessment.
    let stated: Vec<Line> = title.into_iter().chain(assessment.iter().copied()).collect();
    let mut out = Vec::new();
    let exam = examination(note, &stated, &lines, facts, &mut out);
    immunization(&lines, title, &mut out);
    screening(title, &assessment, &lines, exam, &mut out);
    drug_monitoring(&stated, &lines, &mut out);
    follow_up_after_treatment(&stated, facts, &mut out);
    special_examinations(&stated, &mut out);
    let weeks = gestation(note, &assessment, &lines);
    let pregnant = weeks.is_some()
        && (facts.pregnancy_code || PREGNANCY.iter().any(|p| find(note, p).is_some()))
        && !facts.supervision;
    let by_weeks = weeks.map(|(w, _)| trimester(w));
    normal_pregnancy(note, &stated, by_weeks, facts, &mut out);
    let trimester = by_weeks.filter(|_| pregnant);
    // Obesity in pregnancy is coded from chapter 15 first, with the obesity code beside it (I.C.15.b).
    if let (Some(t), Some((_, span)), true) = (trimester, weeks, facts.obesity) {
        out.push(Reason { code: format!("O99.21{t}"), span, history: false });
    }
    // Tobacco status is reported where it bears on the visit (IV.J: coexisting conditions that affect care):
    // stated in the title or assessment, asked for by a proposal's "use additional code" note (J44, I25…),
    // the reason for a lung or aortic screening, or with cessation counselling given.
    let mut habits = Vec::new();
    let stated_first: Vec<Line> = stated.iter().copied().chain(lines.iter().copied()).collect();
    tobacco(&stated_first, trimester, &mut habits);
    let in_stated = |span: Span| stated.iter().any(|l| l.start <= span.start && span.end <= l.start + l.text.len());
    let screening_for_it = out.iter().any(|r| r.code == "Z12.2" || r.code == "Z13.6");
    let counselled = habits.iter().any(|r| r.code == "Z71.6");
    let relevant = facts.tobacco_noted || screening_for_it || counselled || trimester.is_some();
    out.extend(
        habits.into_iter().filter(|r| {
            r.code == "Z77.22" && in_stated(r.span) || r.code != "Z77.22" && (relevant || in_stated(r.span))
        }),
    );
    // Weeks of gestation go with a chapter 15 code, as its "use additional code" note says.
    let chapter15 = facts.pregnancy_code || out.iter().any(|r| r.code.starts_with('O'));
    if let (Some((weeks, span)), true, true) = (weeks, pregnant, chapter15) {
        let code = match weeks {
            0..8 => "Z3A.01".to_owned(),
            8..=42 => format!("Z3A.{weeks:02}"),
            _ => "Z3A.49".to_owned(),
        };
        out.push(Reason { code, span, history: false });
    }
    out
}

/// The title names a visit after active treatment ("Orthopedics follow-up", "fracture recheck").
pub fn follow_up_visit(note: &str, analysis: &Analysis) -> bool {
    let lines = lines(note, analysis);
    title_of(&lines, &[]).is_some_and(|t| {
        first_of(t.text, &["follow-up", "follow up", "followup", "f/u", "recheck", "post-op", "postop"]).is_some()
    })
}

/// The visit's title: the first of the opening lines that neither identifies the patient nor is a section
/// header with its text ("Assessment: …").
fn title_of<'a>(lines: &[Line<'a>], assessment: &[Line<'a>]) -> Option<Line<'a>> {
    let header = |l: &Line| {
        l.text.split_once(':').is_some_and(|(head, _)| head.split_whitespace().count() <= 3)
            || assessment.iter().any(|a| a.start == l.start)
    };
    lines.iter().take(4).find(|l| !IDENTIFYING.iter().any(|w| find(l.text, w).is_some()) && !header(l)).copied()
}

/// The visit is prenatal care of a pregnancy without complication.
const NORMAL_PREGNANCY: &[&str] = &[
    "normal pregnancy",
    "normal first pregnancy",
    "normal intrauterine pregnancy",
    "normal iup",
    "uncomplicated pregnancy",
    "low risk pregnancy",
    "low-risk pregnancy",
    "routine prenatal",
    "routine ob visit",
    "supervision of normal",
];

/// Supervision of a normal pregnancy (I.C.15.b.1, I.C.21.c.11): Z34 by whether it is the first pregnancy (G1,
/// primigravida) or another (G2 and more), and by trimester; never beside a chapter 15 code.
fn normal_pregnancy(note: &str, stated: &[Line], trimester: Option<u32>, facts: &Facts, out: &mut Vec<Reason>) {
    if facts.pregnancy_code || out.iter().any(|r| r.code.starts_with('O')) {
        return;
    }
    let Some(span) = stated_phrase(stated, NORMAL_PREGNANCY, DENIALS) else { return };
    let first = ["g1*", "primigravida", "first pregnancy"].iter().any(|p| find(note, p).is_some());
    let other = (2..10).any(|g| find(note, &format!("g{g}*")).is_some()) || find(note, "multigravida").is_some();
    let kind = match (first, other) {
        (true, false) => "0",
        (false, true) => "8",
        _ => "9",
    };
    let trimester = trimester.or_else(|| {
        ["first trimester", "second trimester", "third trimester"]
            .iter()
            .position(|t| stated.iter().any(|l| find(l.text, t).is_some()))
            .map(|i| i as u32 + 1)
    });
    out.push(Reason { code: format!("Z34.{kind}{}", trimester.unwrap_or(0)), span, history: false });
}

fn trimester(weeks: u32) -> u32 {
    match weeks {
        0..14 => 1,
        14..28 => 2,
        _ => 3,
    }
}

/// Non-empty lines, less those addressed to a coding assistant.
fn lines<'a>(note: &'a str, analysis: &Analysis) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    for raw in note.split_inclusive('\n') {
        let text = raw.trim_end_matches(['\n', '\r']);
        let injected = analysis.not_documentation.iter().any(|s| s.start <= start && start < s.end);
        if !text.trim().is_empty() && !injected {
            out.push(Line { start, text });
        }
        start += raw.len();
    }
    out
}

/// Where `phrase` (lowercase ASCII) occurs in `text` as whole words, in any ASCII case. A phrase ending in
/// `*` matches a word prefix. The offset indexes `text`: ASCII bytes are always char boundaries.
pub fn find(text: &str, phrase: &str) -> Option<usize> {
    find_all(text, phrase).next()
}

fn find_all<'a>(text: &'a str, phrase: &'a str) -> impl Iterator<Item = usize> + 'a {
    let (needle, prefix) = match phrase.strip_suffix('*') {
        Some(p) => (p.as_bytes(), true),
        None => (phrase.as_bytes(), false),
    };
    let hay = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric();
    (0..hay.len().saturating_sub(needle.len().saturating_sub(1))).filter(move |&at| {
        let Some(window) = hay.get(at..at + needle.len()) else { return false };
        !needle.is_empty()
            && window.eq_ignore_ascii_case(needle)
            && (at == 0 || !hay.get(at - 1).copied().is_some_and(word) || !needle.first().copied().is_some_and(word))
            && (prefix
                || !hay.get(at + needle.len()).copied().is_some_and(word)
                || !needle.last().copied().is_some_and(word))
    })
}

fn span_of(line: Line, at: usize, len: usize) -> Span {
    let end = (at + len).min(line.text.len());
    Span { start: line.start + at, end: line.start + end }
}

/// The first phrase of `phrases` found in the line, with its offset in the line and its length.
fn first_of(text: &str, phrases: &[&str]) -> Option<(usize, usize)> {
    phrases.iter().filter_map(|p| find(text, p).map(|at| (at, matched_len(text, at, p)))).min_by_key(|&(at, _)| at)
}

/// The length of the match at `at`: the phrase, or for a prefix the whole word.
fn matched_len(text: &str, at: usize, phrase: &str) -> usize {
    match phrase.strip_suffix('*') {
        Some(p) => {
            let rest = text.as_bytes().get(at + p.len()..).unwrap_or_default();
            p.len() + rest.iter().take_while(|b| b.is_ascii_alphanumeric()).count()
        }
        None => phrase.len(),
    }
}

/// Sentences of a line with their offsets in it: split at `.` before a space, `;`, `?`, `!`.
fn sentences(text: &str) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let ends = matches!(b, b';' | b'?' | b'!')
            || b == b'.'
                && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace())
                && !(i > 0 && bytes[i - 1].is_ascii_digit() && i - start <= 3);
        if ends {
            if let Some(s) = text.get(start..i) {
                out.push((start, s));
            }
            start = i + 1;
        }
    }
    if let Some(s) = text.get(start..).filter(|s| !s.trim().is_empty()) {
        out.push((start, s));
    }
    out
}

/// Words that, shortly before a phrase in the same sentence, deny it.
const DENIALS: &[&str] =
    &["no", "not", "denies", "denied", "without", "never", "non", "declined", "refused", "negative"];

/// Whether one of `denials` is among the three words before `at` in its sentence.
fn denied_before(sentence: &str, at: usize, denials: &[&str]) -> bool {
    let before = sentence.get(..at).unwrap_or_default();
    before
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .rev()
        .take(3)
        .any(|w| denials.iter().any(|d| w.eq_ignore_ascii_case(d)))
}

/// The phrase in one of the lines, not denied, as a span.
fn stated_phrase(lines: &[Line], phrases: &[&str], denials: &[&str]) -> Option<Span> {
    for line in lines {
        for (s_at, sentence) in sentences(line.text) {
            if let Some((at, len)) = first_of(sentence, phrases)
                && !denied_before(sentence, at, denials)
            {
                return Some(span_of(*line, s_at + at, len));
            }
        }
    }
    None
}

/// An `exam*` phrase also meets "examination".
const GENERAL_EXAM: &[&str] = &[
    "annual physical",
    "annual exam*",
    "annual wellness",
    "wellness visit",
    "wellness exam*",
    "routine exam*",
    "routine physical",
    "routine adult exam*",
    "routine health exam*",
    "routine medical exam*",
    "routine general medical exam*",
    "yearly exam*",
    "yearly physical",
    "preventive visit",
    "preventive exam*",
    "preventive care visit",
    "preventive health visit",
    "preventative visit",
    "complete physical",
    "general medical exam*",
    "general adult exam*",
    "general health exam*",
    "adult health exam*",
    "health maintenance exam*",
    "health maintenance visit",
    "periodic health exam*",
    "adult physical",
    "well adult",
    "well check",
    "awv",
    "medicare wellness",
    "well-adult",
    "check-up",
    "checkup",
];
const CHILD_EXAM: &[&str] = &[
    "well child",
    "well-child",
    "wcc",
    "well baby",
    "well-baby",
    "well visit",
    "newborn check",
    "newborn visit",
    "newborn exam*",
    "newborn health",
    "health supervision visit",
];
const GYN_EXAM: &[&str] = &[
    "gyn annual",
    "gyn exam",
    "gynecologic exam",
    "gynecological exam",
    "gynecologic examination",
    "gynecological examination",
    "gyn examination",
    "annual gynecologic",
    "well woman",
    "well-woman",
];
const ABNORMAL: &[&str] = &["abnormal finding*", "abnormal result*"];

/// Which examination the visit is, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exam {
    Adult,
    Child,
    Gynecological,
}

/// General adult, child (by age band) and gynecological exams (I.C.21.c.13): with abnormal findings when the
/// provider says so or a current condition is coded beside the exam.
fn examination(note: &str, stated: &[Line], all: &[Line], facts: &Facts, out: &mut Vec<Reason>) -> Option<Exam> {
    let gyn = stated_phrase(stated, GYN_EXAM, DENIALS);
    let child = stated_phrase(stated, CHILD_EXAM, DENIALS);
    let general = stated_phrase(stated, GENERAL_EXAM, DENIALS);
    let age = age_in_days(note);
    let (exam, span) = match (gyn, child, general) {
        (Some(span), _, _) => (Exam::Gynecological, span),
        (None, Some(span), _) => (Exam::Child, span),
        (None, None, Some(span)) if age.is_some_and(|d| d < 18 * 365) => (Exam::Child, span),
        (None, None, Some(span)) => (Exam::Adult, span),
        _ => return None,
    };
    let said_abnormal = stated_phrase(stated, ABNORMAL, DENIALS);
    // "Routine exam without abnormal findings" is the provider's conclusion wherever the note writes it.
    let said_normal = all.iter().any(|l| {
        sentences(l.text).iter().any(|(_, s)| find_all(s, "abnormal finding*").any(|at| denied_before(s, at, DENIALS)))
    });
    let abnormal = said_abnormal.is_some() || !said_normal && facts.current_condition;
    let code = match exam {
        Exam::Adult if abnormal => "Z00.01",
        Exam::Adult => "Z00.00",
        Exam::Gynecological if abnormal => "Z01.411",
        Exam::Gynecological => "Z01.419",
        Exam::Child => match age {
            Some(days) if days < 8 => "Z00.110",
            Some(days) if days <= 28 => "Z00.111",
            _ if abnormal => "Z00.121",
            _ => "Z00.129",
        },
    };
    out.push(Reason { code: code.to_owned(), span, history: false });
    Some(exam)
}

const VACCINES: &[&str] = &[
    "vaccine*",
    "vaccination*",
    "immunization*",
    "immunized",
    "flu shot",
    "tetanus shot",
    "tetanus booster",
    "tdap",
    "dtap",
    "mmr",
    "ipv",
    "pcv*",
    "prevnar",
    "shingrix",
    "fluzone",
    "gardasil",
    "booster",
    "hpv #",
    "hep a #",
    "hep b #",
    "varicella #",
    "rotavirus",
    "hib",
];
const GIVEN: &[&str] =
    &["given", "administered", "im", "deltoid", "vastus", "today", "received", "presents for", "here for"];
/// A vaccine spoken of but not given at this visit.
const NOT_GIVEN: &[&str] = &[
    "next",
    "due",
    "declined",
    "refused",
    "deferred",
    "will",
    "plan",
    "recommend*",
    "discussed",
    "up to date",
    "utd",
    "later",
    "ago",
    "last",
    "prior",
    "previous",
    "history",
    "reaction",
    "consider",
    "offered",
];

/// Immunization given at the visit (I.C.21.c.2): Z23, whatever else the visit was for.
fn immunization(lines: &[Line], title: Option<Line>, out: &mut Vec<Reason>) {
    let in_title = title.and_then(|t| {
        first_of(t.text, VACCINES)
            .filter(|&(at, _)| !denied_before(t.text, at, DENIALS) && first_of(t.text, NOT_GIVEN).is_none())
            .map(|(at, len)| span_of(t, at, len))
    });
    let given = lines.iter().find_map(|line| {
        sentences(line.text).into_iter().find_map(|(s_at, sentence)| {
            let (at, len) = first_of(sentence, VACCINES)?;
            let given = first_of(sentence, GIVEN).is_some();
            let deferred = first_of(sentence, NOT_GIVEN).is_some() || denied_before(sentence, at, DENIALS);
            (given && !deferred).then(|| span_of(*line, s_at + at, len))
        })
    });
    if let Some(span) = given.or(in_title) {
        out.push(Reason { code: "Z23".to_owned(), span, history: false });
    }
}

/// What a screening encounter looks for, and its code.
const SCREENED: &[(&[&str], &str)] = &[
    (&["mammogra*", "breast cancer"], "Z12.31"),
    (&["lung cancer", "ldct", "low-dose ct", "low dose ct"], "Z12.2"),
    (&["colon*", "colorectal", "cologuard", "fit test", "fobt", "fecal occult", "fecal immunochemical"], "Z12.11"),
    (&["skin cancer", "melanoma"], "Z12.83"),
    (&["anemia"], "Z13.0"),
    (&["thyroid"], "Z13.29"),
    (&["cervical cancer", "pap"], "Z12.4"),
    (&["prostate", "psa"], "Z12.5"),
    (&["aaa", "aortic aneurysm"], "Z13.6"),
    (&["hiv"], "Z11.4"),
    (&["hepatitis c", "hep c", "hcv", "hepatitis b", "hep b"], "Z11.59"),
    (&["hpv", "human papillomavirus"], "Z11.51"),
    (&["chlamydia", "gonorrhea", "sti", "std", "syphilis"], "Z11.3"),
    (&["tuberculosis", "tb"], "Z11.1"),
    (&["diabetes"], "Z13.1"),
    (&["lipid*", "cholesterol"], "Z13.220"),
    (&["osteoporosis", "dexa", "bone density"], "Z13.820"),
    (&["depression"], "Z13.31"),
];
/// Screening spoken of for another time.
const NOT_NOW: &[&str] = &[
    "discussed",
    "starting",
    "start",
    "will",
    "due",
    "recommend*",
    "next",
    "consider",
    "defer*",
    "declined",
    "schedule*",
    "to be",
    "order*",
    "refer*",
    "plan*",
];

/// Screening encounters (I.C.21.c.12), stated in the title or the assessment; a negative result is still a
/// screening. Inside a general or child exam the routine screening labs have no code of their own.
fn screening(title: Option<Line>, assessment: &[Line], all: &[Line], exam: Option<Exam>, out: &mut Vec<Reason>) {
    let denials = &["no", "not", "declined", "refused", "without"];
    let title_screens = title.is_some_and(|t| find(t.text, "screen*").is_some());
    for (line, in_title) in title.map(|t| (t, true)).into_iter().chain(assessment.iter().map(|l| (*l, false))) {
        for (s_at, sentence) in sentences(line.text) {
            // A surveillance colonoscopy after completed polyp removal is coded as screening (Coding Clinic 2Q
            // 2017), with the history of polyps beside it.
            let surveillance = find(sentence, "surveillance colonoscop*");
            let Some(at) = find(sentence, "screen*").or(surveillance) else { continue };
            if denied_before(sentence, at, denials) || first_of(sentence, NOT_NOW).is_some() {
                continue;
            }
            // In the assessment of another visit, "depression screen negative" reports an instrument's result;
            // the encounter is a screening when its title says so or the assessment names the screening.
            let reported = first_of(sentence, &["negative", "positive", "normal", "passed", "failed"]).is_some();
            if !in_title
                && !title_screens
                && surveillance.is_none()
                && (reported || find(sentence, "screening").is_none())
            {
                continue;
            }
            for (targets, code) in SCREENED {
                if exam.is_some() && code.starts_with("Z13") {
                    continue;
                }
                if exam == Some(Exam::Gynecological) && *code == "Z12.4" {
                    continue;
                }
                if let Some((t_at, len)) = first_of(sentence, targets)
                    && !out.iter().any(|r| r.code == *code)
                {
                    out.push(Reason {
                        code: (*code).to_owned(),
                        span: span_of(line, s_at + t_at, len),
                        history: false,
                    });
                }
            }
        }
    }
    // An HPV test taken with cervical cytology is a screening of its own (Z11.51).
    if !out.iter().any(|r| r.code == "Z11.51") {
        for line in all {
            for (s_at, sentence) in sentences(line.text) {
                if let Some((at, len)) = first_of(sentence, &["hpv"])
                    && first_of(sentence, &["co-test*", "cotest*", "test*", "collected"]).is_some()
                    && !denied_before(sentence, at, DENIALS)
                    && first_of(sentence, NOT_NOW).is_none()
                {
                    out.push(Reason {
                        code: "Z11.51".to_owned(),
                        span: span_of(*line, s_at + at, len),
                        history: false,
                    });
                    return;
                }
            }
        }
    }
}

/// A follow-up visit after treatment is completed and the condition no longer exists (I.C.21.c.8): Z09, as
/// stated ("follow-up after completed treatment"); not beside a current condition, which the visit then treats.
fn follow_up_after_treatment(stated: &[Line], facts: &Facts, out: &mut Vec<Reason>) {
    if facts.current_condition {
        return;
    }
    for line in stated {
        for (s_at, sentence) in sentences(line.text) {
            let follow_up = first_of(sentence, &["follow-up", "follow up", "followup", "f/u"]);
            let completed = first_of(
                sentence,
                &[
                    "completed treatment",
                    "completed course",
                    "completed a course",
                    "completed a full course",
                    "completed therapy",
                    "treatment completed",
                    "after completion of",
                ],
            );
            if let (Some((at, len)), Some(_)) = (follow_up, completed)
                && !denied_before(sentence, at, DENIALS)
            {
                out.push(Reason { code: "Z09".to_owned(), span: span_of(*line, s_at + at, len), history: false });
                return;
            }
        }
    }
}

/// Examinations for an administrative or procedural purpose (I.C.21.c.13, IV.M), as stated in the title or the
/// assessment: participation in sport (Z02.5), before a procedure (Z01.818, the reason for the procedure coded
/// beside it), and dietary counselling (Z71.3).
const SPECIAL_EXAMS: &[(&[&str], &str)] = &[
    (&["sports physical", "sport physical", "sports clearance", "sports participation", "preparticipation"], "Z02.5"),
    (
        &[
            "preoperative exam*",
            "pre-operative exam*",
            "pre-op exam*",
            "preop exam*",
            "preoperative evaluation",
            "pre-operative evaluation",
            "preoperative clearance",
            "pre-op clearance",
            "surgical clearance",
        ],
        "Z01.818",
    ),
    (&["dietary counsel*", "diet counsel*", "nutrition counsel*", "nutritional counsel*"], "Z71.3"),
];

/// Counselling given on a topic with its own Z71 code (I.C.21.c.10): "counseling on diet", "counselled about
/// nutrition", as stated in the title or the assessment.
const COUNSELLED_ON: &[(&[&str], &str)] = &[(&["diet", "dietary", "nutrition*"], "Z71.3"), (&["travel*"], "Z71.84")];

fn special_examinations(stated: &[Line], out: &mut Vec<Reason>) {
    for line in stated {
        for (s_at, sentence) in sentences(line.text) {
            let Some((at, len)) = first_of(sentence, &["counsel*"]) else { continue };
            if denied_before(sentence, at, DENIALS) || first_of(sentence, &["declined", "refused"]).is_some() {
                continue;
            }
            for (topics, code) in COUNSELLED_ON {
                if first_of(sentence, topics).is_some() && !out.iter().any(|r| r.code == *code) {
                    out.push(Reason { code: (*code).to_owned(), span: span_of(*line, s_at + at, len), history: false });
                }
            }
        }
    }
    for (phrases, code) in SPECIAL_EXAMS {
        if let Some(span) = stated_phrase(stated, phrases, DENIALS)
            && !out.iter().any(|r| r.code == *code)
        {
            out.push(Reason { code: (*code).to_owned(), span, history: false });
        }
    }
}

/// A visit to check a drug level (an INR clinic): Z51.81, with the anticoagulant's Z79.01.
fn drug_monitoring(stated: &[Line], all: &[Line], out: &mut Vec<Reason>) {
    let phrases = &["anticoagulation clinic", "inr clinic", "inr check", "coumadin clinic", "drug level monitoring"];
    if let Some(span) = stated_phrase(stated, phrases, DENIALS) {
        out.push(Reason { code: "Z51.81".to_owned(), span, history: false });
        // The anticoagulant whose level is checked is long-term therapy (Z79.01).
        let anticoagulants = &["warfarin", "coumadin", "jantoven", "apixaban", "rivaroxaban", "dabigatran", "edoxaban"];
        if let Some(span) = stated_phrase(all, anticoagulants, DENIALS) {
            out.push(Reason { code: "Z79.01".to_owned(), span, history: false });
        }
    }
}

/// Weeks of gestation: the first `28w1d`, or `32 weeks` in the assessment.
fn gestation(note: &str, assessment: &[Line], all: &[Line]) -> Option<(u32, Span)> {
    let bytes = note.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            let after = i + digits;
            if matches!(bytes.get(after), Some(b'w' | b'W'))
                && bytes.get(after + 1).is_some_and(u8::is_ascii_digit)
                && let Some(weeks) = note.get(i..after).and_then(|d| d.parse::<u32>().ok())
            {
                let end = after + 1 + bytes[after + 1..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
                return Some((weeks, Span { start: i, end }));
            }
            i = after;
        } else {
            i += 1;
        }
    }
    for line in assessment {
        for at in find_all(line.text, "weeks").chain(find_all(line.text, "wk")) {
            let before = line.text.get(..at).unwrap_or_default().trim_end();
            let digits: String = before.chars().rev().take_while(char::is_ascii_digit).collect();
            if let Ok(weeks) = digits.chars().rev().collect::<String>().parse::<u32>()
                && (4..=45).contains(&weeks)
            {
                let start = before.len() - digits.len();
                return Some((weeks, span_of(*line, start, at + 5 - start)));
            }
        }
    }
    // Elsewhere only a gestational age written as one: "at 9 weeks", "20 weeks pregnant", "30 weeks gestation"
    // ("cough for 2 weeks" is a duration).
    for line in all {
        for at in find_all(line.text, "weeks") {
            let before = line.text.get(..at).unwrap_or_default().trim_end();
            let digits: String = before.chars().rev().take_while(char::is_ascii_digit).collect();
            let start = before.len() - digits.len();
            let lead = before.get(..start).unwrap_or_default().trim_end();
            let after = line.text.get(at + 5..).unwrap_or_default().trim_start().to_ascii_lowercase();
            let gestational = lead.to_ascii_lowercase().ends_with(" at")
                || ["pregnant", "gestation", "ga", "of gestation", "'"].iter().any(|w| after.starts_with(w));
            if let Ok(weeks) = digits.chars().rev().collect::<String>().parse::<u32>()
                && (4..=45).contains(&weeks)
                && gestational
            {
                return Some((weeks, span_of(*line, start, at + 5 - start)));
            }
        }
    }
    None
}

/// The patient's age in days, from the first `42 y/o`, `49F`, `12-month`, `4 years`, `3-day-old`.
pub fn age_in_days(note: &str) -> Option<u32> {
    let bytes = note.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !(bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'.')) {
            i += 1;
            continue;
        }
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let after = i + digits;
        i = after;
        let Some(n) = note.get(after - digits..after).and_then(|d| d.parse::<u32>().ok()) else { continue };
        let rest: String =
            note.get(after..).unwrap_or_default().chars().take(14).map(|c| c.to_ascii_lowercase()).collect();
        let before: String = note
            .get(..after - digits)
            .unwrap_or_default()
            .chars()
            .rev()
            .take(6)
            .collect::<String>()
            .chars()
            .rev()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let bare = rest.trim_start_matches([' ', '-']);
        let ends_word = |s: &str, w: &str| {
            s.strip_prefix(w).is_some_and(|r| r.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric()))
        };
        // `49F`, `61M`: age and sex run together.
        if (ends_word(&rest, "m") || ends_word(&rest, "f")) && n < 120 {
            return Some(n * 365);
        }
        let duration = before.ends_with("x ") || before.ends_with("for ") || before.ends_with("past ");
        if ends_word(bare, "y/o")
            || ends_word(bare, "yo")
            || bare.starts_with("y.o")
            || bare.starts_with("year-old")
            || bare.starts_with("year old")
            || bare.starts_with("years old")
        {
            return Some(n * 365);
        }
        if !duration
            && (ends_word(bare, "years") || ends_word(bare, "year") || ends_word(bare, "yr") || ends_word(bare, "yrs"))
            && !bare.contains("ago")
            && n < 120
        {
            return Some(n * 365);
        }
        if !duration && (bare.starts_with("month") || ends_word(bare, "mo") || ends_word(bare, "mos")) && n < 48 {
            return Some(n * 30);
        }
        if bare.starts_with("week-old") || bare.starts_with("weeks old") || bare.starts_with("wk-old") {
            return Some(n * 7);
        }
        if bare.starts_with("week old") {
            return Some(n * 7);
        }
        if bare.starts_with("day-old")
            || bare.starts_with("days old")
            || bare.starts_with("day old")
            || bare.starts_with("d/o")
        {
            return Some(n);
        }
    }
    None
}

/// Relatives and others whose habits are not the patient's.
const OTHERS: &[&str] = &[
    "mother",
    "father",
    "mom",
    "dad",
    "parent*",
    "husband",
    "wife",
    "partner",
    "spouse",
    "sister",
    "brother",
    "roommate",
    "grandmother",
    "grandfather",
    "household",
    "caregiver",
];
const NEVER: &[&str] = &[
    "never smoker",
    "never smoked",
    "nonsmoker",
    "non-smoker",
    "never used tobacco",
    "no tobacco",
    "denies tobacco",
    "denies smoking",
    "never a smoker",
];
const FORMER: &[&str] = &[
    "former smoker",
    "ex-smoker",
    "former tobacco",
    "quit smoking",
    "stopped smoking",
    "history of tobacco",
    "history of smoking",
    "history of nicotine",
    "past smoker",
    "remote smoker",
    "former cigarette",
];
const CURRENT: &[&str] = &[
    "current smoker",
    "currently smokes",
    "current every day smoker",
    "every day smoker",
    "smokes",
    "smoking",
    "ppd",
    "packs per day",
    "pack per day",
    "pack a day",
    "cigarettes a day",
    "cigarettes per day",
    "nicotine dependence",
    "tobacco dependence",
    "tobacco use disorder",
    "chews tobacco",
    "chewing tobacco",
    "smokeless tobacco",
    "dips",
    "snuff",
    "vapes",
    "vaping",
    "e-cigarette*",
    "smoker",
    "daily smoker",
    "current tobacco",
    "tobacco: yes",
    "tobacco use: yes",
    "cigarettes daily",
    "cigarettes/day",
];
/// Words that say a habit has ended, and words that say it is only meant to.
const ENDED: &[&str] = &["quit", "stopped", "no longer", "former", "formerly"];
const INTENT: &[&str] =
    &["to quit", "about quitting", "in quitting", "considering quitting", "to stop smoking", "quit date", "quit line"];
const TOBACCO_WORDS: &[&str] = &["smok*", "tobacco", "cigar*", "nicotine", "ppd", "pack*", "chew*", "snuff", "vap*"];

/// "Smoker: no", "Tobacco - none": the answer after the item denies it.
fn denied_after(sentence: &str, end: usize) -> bool {
    let rest = sentence.get(end..).unwrap_or_default().trim_start_matches([':', '-', ' ', '\t']);
    let next: String = rest.chars().take_while(char::is_ascii_alphabetic).collect::<String>().to_ascii_lowercase();
    matches!(next.as_str(), "no" | "none" | "never" | "denies" | "negative" | "former" | "quit")
}

const CHEWING: &[&str] = &["chew*", "smokeless", "dip", "dips", "snuff"];
const OTHER_PRODUCT: &[&str] = &["vape*", "vaping", "e-cig*", "cigar", "cigars", "pipe"];
const CIGARETTES: &[&str] = &["cigarette", "cigarettes", "ppd", "pack*"];
const SECONDHAND: &[&str] = &["secondhand", "second-hand", "environmental tobacco", "passive smok*"];

#[derive(Debug, Default)]
struct Product {
    chewing: bool,
    cigarettes: bool,
    other: bool,
    remission: bool,
}

impl Product {
    /// The Index: Dependence, drug, nicotine F17.200, with subterms by product; a product not documented is
    /// not assumed to be cigarettes. Remission is coded only as the provider writes it (I.C.5.b.1).
    fn code(&self) -> &'static str {
        match (self.chewing, self.cigarettes, self.other, self.remission) {
            (true, _, _, false) => "F17.220",
            (true, _, _, true) => "F17.221",
            (false, true, _, false) => "F17.210",
            (false, true, _, true) => "F17.211",
            (false, false, true, false) => "F17.290",
            (false, false, true, true) => "F17.291",
            (false, false, false, false) => "F17.200",
            (false, false, false, true) => "F17.201",
        }
    }
}

/// Tobacco (I.C.5.b): current use is dependence by product (the Index: Smoker — see Dependence, drug,
/// nicotine), former use Z87.891, exposure to others' smoke Z77.22, cessation counselling given Z71.6; in
/// pregnancy O99.33- by trimester first (I.C.15).
fn tobacco(lines: &[Line], pregnancy_trimester: Option<u32>, out: &mut Vec<Reason>) {
    let mut current: Option<Span> = None;
    // What any sentence of current use says of the product, so "smoking cessation visit" does not hide
    // "smokes 1 ppd" further down.
    let mut product = Product::default();
    let mut former: Option<Span> = None;
    let mut secondhand: Option<Span> = None;
    let mut counselled: Option<Span> = None;
    for line in lines {
        for (s_at, sentence) in sentences(line.text) {
            if let Some((at, len)) = first_of(sentence, SECONDHAND) {
                secondhand.get_or_insert(span_of(*line, s_at + at, len));
                continue;
            }
            let others = first_of(sentence, OTHERS).is_some();
            if others {
                continue;
            }
            if first_of(sentence, NEVER).is_some() {
                continue;
            }
            if let Some((at, len)) = first_of(sentence, FORMER)
                && !denied_before(sentence, at, DENIALS)
                && first_of(sentence, INTENT).is_none()
            {
                former.get_or_insert(span_of(*line, s_at + at, len));
                continue;
            }
            // "Smoked for 20 years, quit in 2015", "Tobacco: former", "no longer smokes": use that has ended,
            // unless the quitting is only an intention ("wants to quit").
            if let Some((at, len)) = first_of(sentence, ENDED)
                && first_of(sentence, TOBACCO_WORDS).is_some()
                && first_of(sentence, INTENT).is_none()
                && first_of(sentence, CURRENT).is_none_or(|(c, _)| c > at || denied_before(sentence, c, DENIALS))
            {
                former.get_or_insert(span_of(*line, s_at + at, len));
                continue;
            }
            if let Some((at, len)) = first_of(sentence, CURRENT)
                && !denied_before(sentence, at, DENIALS)
                && !denied_after(sentence, at + len)
                && find(sentence, "quit").is_none_or(|q| first_of(sentence, INTENT).is_some() || q > at)
            {
                // An e-cigarette is a vaping product, not a cigarette.
                let without_vapes = sentence.to_ascii_lowercase().replace("e-cig", "vape");
                product.chewing |= first_of(sentence, CHEWING).is_some();
                product.cigarettes |= first_of(&without_vapes, CIGARETTES).is_some();
                product.other |= first_of(sentence, OTHER_PRODUCT).is_some();
                product.remission |= find(sentence, "remission").is_some();
                current.get_or_insert(span_of(*line, s_at + at, len));
            }
            if let Some((at, len)) = first_of(sentence, &["counsel*"])
                && first_of(sentence, &["smok*", "tobacco", "cessation", "quit*", "nicotine", "nrt"]).is_some()
                && !denied_before(sentence, at, DENIALS)
            {
                counselled.get_or_insert(span_of(*line, s_at + at, len));
            }
        }
    }
    match (current, former) {
        (Some(span), _) => {
            let product = product.code();
            if let Some(t) = pregnancy_trimester {
                out.push(Reason { code: format!("O99.33{t}"), span, history: false });
            }
            out.push(Reason { code: product.to_owned(), span, history: false });
            if let Some(span) = counselled {
                out.push(Reason { code: "Z71.6".to_owned(), span, history: false });
            }
        }
        (None, Some(span)) => out.push(Reason { code: "Z87.891".to_owned(), span, history: true }),
        (None, None) => {}
    }
    if let Some(span) = secondhand {
        out.push(Reason { code: "Z77.22".to_owned(), span, history: false });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_found_in_the_note_itself() {
        assert_eq!(find("İİ Well Child visit", "well child"), Some(5));
        assert_eq!(find("wellness", "well"), None);
        assert_eq!(find("Vaccines today", "vaccine*"), Some(0));
        assert_eq!(matched_len("Vaccines today", 0, "vaccine*"), 8);
    }

    #[test]
    fn ages_in_the_clinic_s_shorthand() {
        assert_eq!(age_in_days("42 y/o M here for his yearly exam"), Some(42 * 365));
        assert_eq!(age_in_days("49F smokes 1 ppd cigarettes x 25 years"), Some(49 * 365));
        assert_eq!(age_in_days("12-month well child visit"), Some(360));
        assert_eq!(age_in_days("Well child check - 4 years"), Some(4 * 365));
        assert_eq!(age_in_days("Smokes x 25 years. Newborn, 5-day-old"), Some(5));
        assert_eq!(age_in_days("BP 10 mg"), None);
    }
}
