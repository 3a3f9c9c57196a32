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

/// Abbreviations and lay terms, one `words in the note<TAB>words of the classification` a line. Matching adds the
/// classification's words beside the note's, so a term can be met either way. One string, not a table of pairs:
/// each pair's two pointers (and their relocations) cost the binary more than its words.
pub const EXPANSIONS: &str = concat!(
    "t2dm\ttype 2 diabetes mellitus\n",
    "dm2\ttype 2 diabetes mellitus\n",
    "t2d\ttype 2 diabetes mellitus\n",
    "niddm\ttype 2 diabetes mellitus\n",
    "t1dm\ttype 1 diabetes mellitus\n",
    "dm1\ttype 1 diabetes mellitus\n",
    "iddm\ttype 1 diabetes mellitus\n",
    "type 2 diabetes\tdiabetes mellitus\n",
    "type 1 diabetes\tdiabetes mellitus\n",
    "type ii diabetes\ttype 2 diabetes mellitus\n",
    "dm\tdiabetes mellitus\n",
    "htn\thypertension\n",
    "urinary frequency\tfrequency micturition\n",
    "frequent urination\tfrequency micturition\n",
    "high blood pressure\thypertension\n",
    "hld\thyperlipidemia\n",
    "high cholesterol\thypercholesterolemia\n",
    "hefh\theterozygous familial hypercholesterolemia\n",
    "hofh\thomozygous familial hypercholesterolemia\n",
    "ckd\tchronic kidney disease\n",
    "esrd\tend stage renal disease\n",
    "copd\tchronic obstructive pulmonary disease\n",
    "cad\tcoronary artery atherosclerotic heart disease native\n",
    "coronary artery disease\tatherosclerotic heart disease native coronary artery\n",
    "coronary disease\tischemic heart disease\n",
    "chf\tcongestive heart failure\n",
    "hfref\theart failure systolic\n",
    "hfpef\theart failure diastolic\n",
    "afib\tatrial fibrillation\n",
    "af\tatrial fibrillation\n",
    "talofibular\tankle\n",
    "atfl\tanterior talofibular ligament ankle\n",
    "luts\tlower urinary tract symptoms\n",
    "lateral malleolus\tfibula\n",
    // The tabular names the ends of long bones "lower end" and "upper end" (Index: Fracture, radius, distal end).
    "distal radius\tlower end radius\n",
    "distal ulna\tlower end ulna\n",
    "distal femur\tlower end femur\n",
    "distal tibia\tlower end tibia\n",
    "distal fibula\tlower end fibula\n",
    "distal humerus\tlower end humerus\n",
    "proximal radius\tupper end radius\n",
    "proximal ulna\tupper end ulna\n",
    "proximal femur\tupper end femur\n",
    "proximal tibia\tupper end tibia\n",
    "proximal fibula\tupper end fibula\n",
    "proximal humerus\tupper end humerus\n",
    "medial malleolus\ttibia\n",
    // The tabular's diverticula are of the "large intestine".
    "sigmoid colon\tlarge intestine\n",
    "sigmoid diverticulitis\tdiverticulitis large intestine\n",
    // The tabular names the metatarsals' and metacarpals' limb ("fifth metatarsal bone, right foot").
    "metatarsal\tfoot\n",
    "metacarpal\thand\n",
    // Index: Hyperemesis, gravidarum (mild) O21.0.
    "hyperemesis gravidarum\tmild\n",
    "gdm\tgestational diabetes mellitus in pregnancy\n",
    "gestational diabetes\tmellitus in pregnancy\n",
    "a1gdm\tgestational diabetes mellitus in pregnancy diet controlled\n",
    "a2gdm\tgestational diabetes mellitus in pregnancy insulin controlled\n",
    "a-fib\tatrial fibrillation\n",
    "mi\tmyocardial infarction ischemic heart disease\n",
    "heart attack\tmyocardial infarction\n",
    "oa\tosteoarthritis\n",
    // Index: Disease, joint, degenerative — see Osteoarthritis.
    "djd\tosteoarthritis\n",
    "degenerative joint disease\tosteoarthritis\n",
    "gerd\tgastro-esophageal reflux disease\n",
    "acid reflux\tgastro-esophageal reflux disease\n",
    "uti\turinary tract infection\n",
    "aom\tacute otitis media\n",
    // "CA" alone is also calcium: only with its organ is it a cancer.
    "breast ca\tbreast malignant neoplasm\n",
    "prostate ca\tprostate malignant neoplasm\n",
    "colon ca\tcolon malignant neoplasm\n",
    "lung ca\tlung malignant neoplasm\n",
    "uri\tacute upper respiratory infection\n",
    "adhd\tattention-deficit hyperactivity disorder\n",
    "add\tattention-deficit disorder\n",
    "mdd\tmajor depressive disorder\n",
    "gad\tgeneralized anxiety disorder\n",
    "ptsd\tpost-traumatic stress disorder\n",
    "osa\tobstructive sleep apnea\n",
    "bph\tbenign prostatic hyperplasia\n",
    "npdr\tnonproliferative diabetic retinopathy\n",
    "pdr\tproliferative diabetic retinopathy\n",
    "dme\tdiabetic macular edema\n",
    "cts\tcarpal tunnel syndrome\n",
    "ida\tiron deficiency anemia\n",
    "dvt\tdeep vein thrombosis\n",
    "pe\tpulmonary embolism\n",
    "tia\ttransient ischemic attack\n",
    "cva\tcerebral infarction\n",
    "svt\tsupraventricular tachycardia\n",
    "sob\tshortness of breath\n",
    "doe\tdyspnea\n",
    "ha\theadache\n",
    "n/v\tnausea vomiting\n",
    "nv\tnausea vomiting\n",
    "abd\tabdominal\n",
    "rlq\tright lower quadrant\n",
    "llq\tleft lower quadrant\n",
    "ruq\tright upper quadrant\n",
    "luq\tleft upper quadrant\n",
    "lbp\tlow back pain lumbago\n",
    // Index: Lumbago, lumbalgia M54.50; with sciatica M54.4-.
    "low back pain\tlumbago\n",
    "uncomplicated\twithout complications\n",
    "tm intact\twithout rupture ear drum\n",
    "rupture of tm\trupture ear drum\n",
    "ruptured tm\tspontaneous rupture ear drum\n",
    "tm rupture\tspontaneous rupture ear drum\n",
    "tm perforation\tspontaneous rupture ear drum\n",
    "perforated tm\tspontaneous rupture ear drum\n",
    // Stages and classes in Roman numerals, as the tabular writes them in Arabic.
    "stage iiia\tstage 3a\n",
    "stage iiib\tstage 3b\n",
    "stage iii\tstage 3\n",
    "stage ii\tstage 2\n",
    "stage iv\tstage 4\n",
    "stage v\tstage 5\n",
    "class iii\tclass 3\n",
    "class ii\tclass 2\n",
    "class i\tclass 1\n",
    "no perforation\twithout rupture ear drum\n",
    "cancer\tmalignant neoplasm\n",
    "carcinoma\tmalignant neoplasm\n",
    "malignancy\tmalignant neoplasm\n",
    "kidney stone\tcalculus of kidney\n",
    "renal stone\tcalculus of kidney\n",
    "ureteral stone\tcalculus of ureter\n",
    "fragility fracture\tosteoporosis fracture\n",
    "heavy menstrual bleeding\tmenorrhagia\n",
    "initial visit\tinitial encounter\n",
    "pink eye\tconjunctivitis\n",
    "cerumen impaction\timpacted cerumen\n",
    // The tabular's "hemorrhage" (Index: Bleeding — see also Hemorrhage; rectum K62.5; gastrointestinal K92.2).
    "rectal bleeding\themorrhage anus rectum\n",
    "bleeding per rectum\themorrhage anus rectum\n",
    "brbpr\themorrhage anus rectum\n",
    "gi bleed\tgastrointestinal hemorrhage\n",
    "gi bleeding\tgastrointestinal hemorrhage\n",
    "burning urination\tdysuria\n",
    "exanthem\texanthema\n",
    "chest wall pain\tanterior chestwall pain\n",
    // Index: Strain, low back S39.012; neck S16.1.
    "lumbar strain\tstrain muscle fascia tendon lower back\n",
    "low back strain\tstrain muscle fascia tendon lower back\n",
    "lumbosacral strain\tstrain muscle fascia tendon lower back\n",
    "neck strain\tstrain muscle fascia tendon neck\n",
    "cervical strain\tstrain muscle fascia tendon neck\n",
    "bppv\tbenign paroxysmal positional vertigo ear\n",
    "vaginal yeast infection\tacute candidiasis vulva vagina\n",
    "yeast infection\tcandidiasis\n",
    "ringworm\ttinea corporis\n",
    "athlete's foot\ttinea pedis\n",
    "jock itch\ttinea cruris\n",
    "canker sore\trecurrent oral aphthae\n",
    "elevated blood pressure\televated bloodpressure reading\n",
    "teething\tteething syndrome\n",
    "jaundice of newborn\tneonatal jaundice\n",
    "newborn jaundice\tneonatal jaundice\n",
    "pinworm\tenterobiasis\n",
    "burning with urination\tdysuria\n",
    "painful urination\tdysuria\n",
    // Index: Lice (infestation) B85.2, head B85.0.
    "lice\tpediculosis\n",
    "head lice\thead-louse infestation\n",
    "body lice\tbody-louse infestation\n",
    "pubic lice\tcrab-louse infestation\n",
    // Lay names of the classification's conditions (the Index's own entries: Stye, Hives, Croup…).
    "poison ivy\tplants\n",
    "poison oak\tplants\n",
    "poison sumac\tplants\n",
    "weak stream\turinary\n",
    "strep pharyngitis\tstreptococcal pharyngitis\n",
    "strep tonsillitis\tstreptococcal tonsillitis\n",
    "sinus infection\tsinusitis\n",
    "ear infection\totitis media\n",
    "bladder infection\tcystitis\n",
    "kidney infection\tpyelonephritis\n",
    "chest cold\tacute bronchitis\n",
    // Index: Hordeolum (externum) H00.01-; Stye — see Hordeolum.
    "stye\thordeolum externum\n",
    "hordeolum\texternum\n",
    "cold sore\therpesviral vesicular dermatitis\n",
    "hives\turticaria\n",
    "frozen shoulder\tadhesive capsulitis shoulder\n",
    "tennis elbow\tlateral epicondylitis elbow\n",
    "golfer's elbow\tmedial epicondylitis elbow\n",
    "aki\tacute kidney injury\n",
    "pna\tpneumonia\n",
    "urti\tacute upper respiratory infection\n",
    "ibs\tirritable bowel syndrome\n",
    "pud\tpeptic ulcer\n",
    "pvd\tperipheral vascular disease\n",
    "sle\tsystemic lupus erythematosus\n",
    "ocd\tobsessive-compulsive disorder\n",
    "aflutter\tatrial flutter\n",
    "stroke\tcerebral infarction\n",
    "impacted earwax\timpacted cerumen\n",
    "ingrown toenail\tingrowing nail\n",
    "ingrown nail\tingrowing nail\n",
    "de quervain tenosynovitis\tradial styloid tenosynovitis\n",
    // Index: Neuroma, Morton's G57.6- (lesion of plantar nerve).
    "morton neuroma\tlesion plantar nerve\n",
    // The tabular names the fingers.
    "fifth finger\tlittle finger\n",
    "5th finger\tlittle finger\n",
    "pinky\tlittle finger\n",
    "fourth finger\tring finger\n",
    "4th finger\tring finger\n",
    "third finger\tmiddle finger\n",
    "3rd finger\tmiddle finger\n",
    "second finger\tindex finger\n",
    "2nd finger\tindex finger\n",
    // Index: Syndrome, viral B34.9 (Infection, viral).
    "viral syndrome\tviral infection\n",
    "strep throat\tstreptococcal pharyngitis\n",
    "sore throat\tpharyngitis\n",
    "shingles\tzoster\n",
    // A typed influenza is an identified virus (I.C.10.c: the provider's statement suffices), so J10, not J11.
    "influenza a\tidentified influenza virus\n",
    "influenza b\tidentified influenza virus\n",
    "flu a\tinfluenza identified influenza virus\n",
    "flu b\tinfluenza identified influenza virus\n",
    "flu\tinfluenza\n",
    // Status codes as the Index names them (Presence (of), coronary angioplasty implant Z95.5; heart valve,
    // prosthetic Z95.2): the device in place is the patient's status, not a history.
    "coronary stent\tpresence coronary angioplasty implant graft\n",
    "valve replacement\tpresence prosthetic heart valve\n",
    "cabg\tpresence aortocoronary bypass graft\n",
    "coronary artery bypass\tpresence aortocoronary bypass graft\n",
    "knee replacement\tpresence artificial knee joint\n",
    "hip replacement\tpresence artificial hip joint\n",
    "tka\tpresence artificial knee joint\n",
    "tha\tpresence artificial hip joint\n",
    "pacemaker\tpresence cardiac pacemaker\n",
    // "History of falls" is the classification's "History of falling"; "a fall" is an external cause.
    "history of falls\tfalling\n",
    "hypothyroid\thypothyroidism\n",
    "hyperthyroid\thyperthyroidism\n",
    "light-headed\tlight-headedness\n",
    "lightheaded\tlight-headedness\n",
    "dizzy\tdizziness\n",
    "wheeze\twheezing\n",
    "obese\tobesity\n",
    "overweight\toverweight\n",
    "w/\twith\n",
    "w/o\twithout\n",
    "wo\twithout\n",
    "both eyes\tbilateral\n",
    "both ears\tbilateral\n",
    "both hands\tbilateral\n",
    "both knees\tbilateral\n",
    "both hips\tbilateral\n",
    "both sides\tbilateral\n",
    "bilaterally\tbilateral\n",
    "bilat\tbilateral\n",
    "b/l\tbilateral\n",
    "bl\tbilateral\n",
    "ou\tbilateral eye\n",
    "od\tright eye\n",
    "os\tleft eye\n",
);

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
