//! Words of a note with their byte spans, normalised the same way as the code table's wording, and the
//! clinical abbreviations and synonyms that bridge the two.

use super::Span;

/// A normalised word and where it came from in the note.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub word: String,
    pub span: Span,
    /// Inside parentheses in the note: an aside that may support, but not carry, a match.
    pub aside: bool,
}

/// Lowercase, hyphens and apostrophes joined (`light-headedness` = `lightheadedness`, `swimmer's` =
/// `swimmer`), plurals folded, so the note and the tabular meet on the same forms.
pub fn normalize_word(raw: &str) -> String {
    let mut word: String = raw.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    if let Some(stripped) = raw.to_lowercase().strip_suffix("'s") {
        word = stripped.chars().filter(|c| c.is_alphanumeric()).collect();
    }
    fold_plural(&word)
}

fn fold_plural(word: &str) -> String {
    let n = word.len();
    if n > 4 && word.ends_with("ies") {
        return format!("{}y", &word[..n - 3]);
    }
    let keep = ["ss", "us", "is", "ous", "sis", "xis", "tes", "ies"];
    if n > 3 && word.ends_with('s') && !keep.iter().any(|k| word.ends_with(k)) && word.is_ascii() {
        return word[..n - 1].to_owned();
    }
    word.to_owned()
}

/// Splits text into word tokens. Hyphenated and slashed words stay one token (`light-headed`, `h/o`), except
/// that `R>L` style notation and numbers keep their parts.
pub fn tokenize(text: &str, offset: usize) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    let bytes = text.as_bytes();
    let is_word = |c: char| c.is_alphanumeric();
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let joins = (c == '-' || c == '\'' || c == '’' || c == '/')
            && start.is_some()
            && iter.peek().is_some_and(|&(_, n)| is_word(n));
        if is_word(c) || joins {
            if start.is_none() {
                start = Some(i);
            }
            continue;
        }
        if let Some(s) = start.take() {
            push(&mut tokens, text, s, i, offset, depth > 0);
        }
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if let Some(s) = start {
        push(&mut tokens, text, s, bytes.len(), offset, depth > 0);
    }
    tokens
}

fn push(tokens: &mut Vec<Token>, text: &str, start: usize, end: usize, offset: usize, aside: bool) {
    let raw = &text[start..end];
    let span = Span { start: start + offset, end: end + offset };
    // `h/o`, `w/o`, `s/p` are abbreviations; other slashes separate words (`and/or`, `BID/TID`).
    let lower = raw.to_lowercase();
    if raw.contains('/') && !matches!(lower.as_str(), "h/o" | "w/o" | "s/p" | "r/o" | "w/" | "n/v" | "b/l" | "f/u") {
        let mut at = 0;
        for part in raw.split('/') {
            if !part.is_empty() {
                let s = start + at;
                tokens.push(Token {
                    word: normalize_word(part),
                    span: Span { start: s + offset, end: s + part.len() + offset },
                    aside,
                });
            }
            at += part.len() + 1;
        }
        return;
    }
    let word = match lower.as_str() {
        "h/o" | "w/o" | "s/p" | "r/o" | "n/v" | "b/l" => lower.replace('/', ""),
        "f/u" => "followup".to_owned(),
        _ => normalize_word(raw),
    };
    if !word.is_empty() {
        tokens.push(Token { word, span, aside });
    }
}

/// Abbreviations and lay terms, as (words in the note, words of the classification). Matching adds the
/// classification's words beside the note's, so a term can be met either way.
pub const EXPANSIONS: &[(&str, &str)] = &[
    ("t2dm", "type 2 diabetes mellitus"),
    ("dm2", "type 2 diabetes mellitus"),
    ("t2d", "type 2 diabetes mellitus"),
    ("niddm", "type 2 diabetes mellitus"),
    ("t1dm", "type 1 diabetes mellitus"),
    ("dm1", "type 1 diabetes mellitus"),
    ("iddm", "type 1 diabetes mellitus"),
    ("type 2 diabetes", "diabetes mellitus"),
    ("type 1 diabetes", "diabetes mellitus"),
    ("type ii diabetes", "type 2 diabetes mellitus"),
    ("dm", "diabetes mellitus"),
    ("htn", "hypertension"),
    ("high blood pressure", "hypertension"),
    ("hld", "hyperlipidemia"),
    ("high cholesterol", "hypercholesterolemia"),
    ("hefh", "heterozygous familial hypercholesterolemia"),
    ("hofh", "homozygous familial hypercholesterolemia"),
    ("ckd", "chronic kidney disease"),
    ("esrd", "end stage renal disease"),
    ("copd", "chronic obstructive pulmonary disease"),
    ("cad", "coronary artery atherosclerotic heart disease native"),
    ("coronary artery disease", "atherosclerotic heart disease native coronary artery"),
    ("coronary disease", "ischemic heart disease"),
    ("chf", "congestive heart failure"),
    ("hfref", "heart failure systolic"),
    ("hfpef", "heart failure diastolic"),
    ("afib", "atrial fibrillation"),
    ("af", "atrial fibrillation"),
    ("talofibular", "ankle"),
    ("atfl", "anterior talofibular ligament ankle"),
    ("luts", "lower urinary tract symptoms"),
    ("lateral malleolus", "fibula"),
    // The tabular names the ends of long bones "lower end" and "upper end" (Index: Fracture, radius, distal end).
    ("distal radius", "lower end radius"),
    ("distal ulna", "lower end ulna"),
    ("distal femur", "lower end femur"),
    ("distal tibia", "lower end tibia"),
    ("distal fibula", "lower end fibula"),
    ("distal humerus", "lower end humerus"),
    ("proximal radius", "upper end radius"),
    ("proximal ulna", "upper end ulna"),
    ("proximal femur", "upper end femur"),
    ("proximal tibia", "upper end tibia"),
    ("proximal fibula", "upper end fibula"),
    ("proximal humerus", "upper end humerus"),
    ("medial malleolus", "tibia"),
    // The tabular's diverticula are of the "large intestine".
    ("sigmoid colon", "large intestine"),
    ("sigmoid diverticulitis", "diverticulitis large intestine"),
    // The tabular names the metatarsals' and metacarpals' limb ("fifth metatarsal bone, right foot").
    ("metatarsal", "foot"),
    ("metacarpal", "hand"),
    // Index: Hyperemesis, gravidarum (mild) O21.0.
    ("hyperemesis gravidarum", "mild"),
    ("gdm", "gestational diabetes mellitus in pregnancy"),
    ("gestational diabetes", "mellitus in pregnancy"),
    ("a1gdm", "gestational diabetes mellitus in pregnancy diet controlled"),
    ("a2gdm", "gestational diabetes mellitus in pregnancy insulin controlled"),
    ("a-fib", "atrial fibrillation"),
    ("mi", "myocardial infarction ischemic heart disease"),
    ("heart attack", "myocardial infarction"),
    ("oa", "osteoarthritis"),
    // Index: Disease, joint, degenerative — see Osteoarthritis.
    ("djd", "osteoarthritis"),
    ("degenerative joint disease", "osteoarthritis"),
    ("gerd", "gastro-esophageal reflux disease"),
    ("acid reflux", "gastro-esophageal reflux disease"),
    ("uti", "urinary tract infection"),
    ("aom", "acute otitis media"),
    // "CA" alone is also calcium: only with its organ is it a cancer.
    ("breast ca", "breast malignant neoplasm"),
    ("prostate ca", "prostate malignant neoplasm"),
    ("colon ca", "colon malignant neoplasm"),
    ("lung ca", "lung malignant neoplasm"),
    ("uri", "acute upper respiratory infection"),
    ("adhd", "attention-deficit hyperactivity disorder"),
    ("add", "attention-deficit disorder"),
    ("mdd", "major depressive disorder"),
    ("gad", "generalized anxiety disorder"),
    ("ptsd", "post-traumatic stress disorder"),
    ("osa", "obstructive sleep apnea"),
    ("bph", "benign prostatic hyperplasia"),
    ("npdr", "nonproliferative diabetic retinopathy"),
    ("pdr", "proliferative diabetic retinopathy"),
    ("dme", "diabetic macular edema"),
    ("cts", "carpal tunnel syndrome"),
    ("ida", "iron deficiency anemia"),
    ("dvt", "deep vein thrombosis"),
    ("pe", "pulmonary embolism"),
    ("tia", "transient ischemic attack"),
    ("cva", "cerebral infarction"),
    ("svt", "supraventricular tachycardia"),
    ("sob", "shortness of breath"),
    ("doe", "dyspnea"),
    ("ha", "headache"),
    ("n/v", "nausea vomiting"),
    ("nv", "nausea vomiting"),
    ("abd", "abdominal"),
    ("rlq", "right lower quadrant"),
    ("llq", "left lower quadrant"),
    ("ruq", "right upper quadrant"),
    ("luq", "left upper quadrant"),
    ("lbp", "low back pain lumbago"),
    // Index: Lumbago, lumbalgia M54.50; with sciatica M54.4-.
    ("low back pain", "lumbago"),
    ("uncomplicated", "without complications"),
    ("tm intact", "without rupture ear drum"),
    // Stages and classes in Roman numerals, as the tabular writes them in Arabic.
    ("stage iiia", "stage 3a"),
    ("stage iiib", "stage 3b"),
    ("stage iii", "stage 3"),
    ("stage ii", "stage 2"),
    ("stage iv", "stage 4"),
    ("stage v", "stage 5"),
    ("class iii", "class 3"),
    ("class ii", "class 2"),
    ("class i", "class 1"),
    ("no perforation", "without rupture ear drum"),
    ("cancer", "malignant neoplasm"),
    ("carcinoma", "malignant neoplasm"),
    ("malignancy", "malignant neoplasm"),
    ("kidney stone", "calculus of kidney"),
    ("renal stone", "calculus of kidney"),
    ("ureteral stone", "calculus of ureter"),
    ("fragility fracture", "osteoporosis fracture"),
    ("heavy menstrual bleeding", "menorrhagia"),
    ("initial visit", "initial encounter"),
    ("pink eye", "conjunctivitis"),
    ("cerumen impaction", "impacted cerumen"),
    // The tabular's "hemorrhage" (Index: Bleeding — see also Hemorrhage; rectum K62.5; gastrointestinal K92.2).
    ("rectal bleeding", "hemorrhage anus rectum"),
    ("bleeding per rectum", "hemorrhage anus rectum"),
    ("brbpr", "hemorrhage anus rectum"),
    ("gi bleed", "gastrointestinal hemorrhage"),
    ("gi bleeding", "gastrointestinal hemorrhage"),
    ("burning urination", "dysuria"),
    ("exanthem", "exanthema"),
    ("teething", "teething syndrome"),
    ("jaundice of newborn", "neonatal jaundice"),
    ("newborn jaundice", "neonatal jaundice"),
    ("pinworm", "enterobiasis"),
    ("burning with urination", "dysuria"),
    ("painful urination", "dysuria"),
    // Index: Lice (infestation) B85.2, head B85.0.
    ("lice", "pediculosis"),
    // Lay names of the classification's conditions (the Index's own entries: Stye, Hives, Croup…).
    ("poison ivy", "plants"),
    ("poison oak", "plants"),
    ("poison sumac", "plants"),
    ("weak stream", "urinary"),
    ("strep pharyngitis", "streptococcal pharyngitis"),
    ("strep tonsillitis", "streptococcal tonsillitis"),
    ("sinus infection", "sinusitis"),
    ("ear infection", "otitis media"),
    ("bladder infection", "cystitis"),
    ("kidney infection", "pyelonephritis"),
    ("chest cold", "acute bronchitis"),
    // Index: Hordeolum (externum) H00.01-; Stye — see Hordeolum.
    ("stye", "hordeolum externum"),
    ("hordeolum", "externum"),
    ("cold sore", "herpesviral vesicular dermatitis"),
    ("hives", "urticaria"),
    ("frozen shoulder", "adhesive capsulitis shoulder"),
    ("tennis elbow", "lateral epicondylitis elbow"),
    ("golfer's elbow", "medial epicondylitis elbow"),
    ("aki", "acute kidney injury"),
    ("pna", "pneumonia"),
    ("urti", "acute upper respiratory infection"),
    ("ibs", "irritable bowel syndrome"),
    ("pud", "peptic ulcer"),
    ("pvd", "peripheral vascular disease"),
    ("sle", "systemic lupus erythematosus"),
    ("ocd", "obsessive-compulsive disorder"),
    ("aflutter", "atrial flutter"),
    ("stroke", "cerebral infarction"),
    ("impacted earwax", "impacted cerumen"),
    ("ingrown toenail", "ingrowing nail"),
    ("ingrown nail", "ingrowing nail"),
    ("de quervain tenosynovitis", "radial styloid tenosynovitis"),
    // Index: Neuroma, Morton's G57.6- (lesion of plantar nerve).
    ("morton neuroma", "lesion plantar nerve"),
    // The tabular names the fingers.
    ("fifth finger", "little finger"),
    ("5th finger", "little finger"),
    ("pinky", "little finger"),
    ("fourth finger", "ring finger"),
    ("4th finger", "ring finger"),
    ("third finger", "middle finger"),
    ("3rd finger", "middle finger"),
    ("second finger", "index finger"),
    ("2nd finger", "index finger"),
    // Index: Syndrome, viral B34.9 (Infection, viral).
    ("viral syndrome", "viral infection"),
    ("strep throat", "streptococcal pharyngitis"),
    ("sore throat", "pharyngitis"),
    ("shingles", "zoster"),
    // A typed influenza is an identified virus (I.C.10.c: the provider's statement suffices), so J10, not J11.
    ("influenza a", "identified influenza virus"),
    ("influenza b", "identified influenza virus"),
    ("flu a", "influenza identified influenza virus"),
    ("flu b", "influenza identified influenza virus"),
    ("flu", "influenza"),
    // Status codes as the Index names them (Presence (of), coronary angioplasty implant Z95.5; heart valve,
    // prosthetic Z95.2): the device in place is the patient's status, not a history.
    ("coronary stent", "presence coronary angioplasty implant graft"),
    ("valve replacement", "presence prosthetic heart valve"),
    ("cabg", "presence aortocoronary bypass graft"),
    ("coronary artery bypass", "presence aortocoronary bypass graft"),
    ("knee replacement", "presence artificial knee joint"),
    ("hip replacement", "presence artificial hip joint"),
    ("tka", "presence artificial knee joint"),
    ("tha", "presence artificial hip joint"),
    ("pacemaker", "presence cardiac pacemaker"),
    // "History of falls" is the classification's "History of falling"; "a fall" is an external cause.
    ("history of falls", "falling"),
    ("hypothyroid", "hypothyroidism"),
    ("hyperthyroid", "hyperthyroidism"),
    ("light-headed", "light-headedness"),
    ("lightheaded", "light-headedness"),
    ("dizzy", "dizziness"),
    ("wheeze", "wheezing"),
    ("obese", "obesity"),
    ("overweight", "overweight"),
    ("w/", "with"),
    ("w/o", "without"),
    ("wo", "without"),
    ("both eyes", "bilateral"),
    ("both ears", "bilateral"),
    ("both hands", "bilateral"),
    ("both knees", "bilateral"),
    ("both hips", "bilateral"),
    ("both sides", "bilateral"),
    ("bilaterally", "bilateral"),
    ("bilat", "bilateral"),
    ("b/l", "bilateral"),
    ("bl", "bilateral"),
    ("ou", "bilateral eye"),
    ("od", "right eye"),
    ("os", "left eye"),
];

/// Words that follow a procedure to say a condition is its consequence (`hypothyroidism after thyroidectomy`).
pub const POSTPROCEDURAL: &[&str] = &["after", "following", "post", "postoperative", "postsurgical"];

/// Words too common, or too structural, to carry a match.
pub fn is_stopword(word: &str) -> bool {
    matches!(
        word,
        "of" | "the"
            | "and"
            | "or"
            | "a"
            | "an"
            | "in"
            | "on"
            | "to"
            | "for"
            | "by"
            | "at"
            | "as"
            | "with"
            | "due"
            | "from"
            | "nos"
            | "is"
            | "are"
            | "be"
            | "not"
            | "elsewhere"
            | "classified"
            | "this"
            | "that"
            | "which"
            | "his"
            | "her"
            | "he"
            | "she"
            | "patient"
            | "pt"
            | "has"
            | "had"
            | "was"
            | "were"
            | "also"
            | "well"
    )
}

/// Words of the classification that qualify without being a finding: matched when present, never required.
pub fn is_filler(word: &str) -> bool {
    matches!(
        word,
        "unspecified"
            | "other"
            | "site"
            | "part"
            | "region"
            | "bone"
            | "limb"
            | "upper"
            | "lower"
            | "extremity"
            | "side"
            | "specified"
            | "type"
            | "acute"
            | "disease"
            | "disorder"
            | "condition"
            | "encounter"
            | "unilateral"
            | "organism"
            | "essential"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Laterality {
    Right,
    Left,
    Bilateral,
}

pub fn laterality_of(word: &str) -> Option<Laterality> {
    match word {
        "right" | "r" | "rt" | "rightsided" => Some(Laterality::Right),
        "left" | "l" | "lt" | "leftsided" => Some(Laterality::Left),
        "bilateral" | "both" => Some(Laterality::Bilateral),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_meet_the_tabular() {
        assert_eq!(normalize_word("Light-headedness"), "lightheadedness");
        assert_eq!(normalize_word("Swimmer's"), "swimmer");
        assert_eq!(normalize_word("limbs"), "limb");
        assert_eq!(normalize_word("diabetes"), "diabetes");
        assert_eq!(normalize_word("stenosis"), "stenosis");
        assert_eq!(normalize_word("inflammatories"), "inflammatory");
    }

    #[test]
    fn tokens_keep_spans_and_asides() {
        let text = "Swimmer's ear (infective otitis externa), h/o MI";
        let tokens = tokenize(text, 10);
        let words: Vec<&str> = tokens.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(words, ["swimmer", "ear", "infective", "otitis", "externa", "ho", "mi"]);
        assert!(tokens[2].aside && tokens[4].aside && !tokens[5].aside);
        assert_eq!(&text[tokens[3].span.start - 10..tokens[3].span.end - 10], "otitis");
    }
}
