//! Word lists the name detector consults. All lowercase; callers compare a lowercased copy of a word and
//! never take offsets from that copy.
//!
//! Hand-written for this project: no maintained list of "words that follow a clinical label but are not a
//! name" exists as a crate, and the lists are small enough to review.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Words that are never part of a name: English function words, verbs and nouns that follow a label or a
/// relative in notes ("Patient: presents", "Mother: Alive and well"), section headers, sexes and ages, and
/// the clinical vocabulary that is written capitalised at a line start.
const NOT_A_NAME: &str = "
a about above after again against ago all alone also am an and any are as at away back be because been before
being below between both but by can cannot could did do does doing done down during each either else ever every
few for from further had has have having he her here hers herself him himself his how i if in into is it its
itself just least less let like made make many may me might mine more most much must my myself neither never
next no nor not now of off on once only or other ought our ours out over own per same shall she should since so
some such than that the their theirs them then there these they this those though through thus to too under
until up upon us very via was we were what when where whether which while who whom whose why will with within
without would yet you your yours
yes none unknown unk n/a na nil nka nkda nkfa other others self same
today tonight yesterday tomorrow now later daily weekly monthly nightly morning evening afternoon night noon
monday tuesday wednesday thursday friday saturday sunday
am pm est edt pst utc
patient patients pt pts client resident member subscriber insured guarantor person individual
male female man woman men women boy girl baby infant newborn neonate child children toddler teen teenager
adolescent adult elderly gentleman lady transgender nonbinary
mr mrs ms miss mx dr drs prof sir madam
age aged ages year years yr yrs yo old month months week weeks day days hour hours hr hrs minute minutes min
married single divorced widowed separated lives living live lived alive deceased dead died passed healthy
well unwell fine good poor fair stable unstable critical
alert awake asleep oriented confused calm anxious pleasant cooperative comfortable ambulatory
reports reported report reporting states stated says said notes noted denies denied endorses endorsed complains
presents presented presenting seen seeing evaluated examined admitted discharged transferred referred returns
returned returning arrives arrived comes came brought called taking takes took tolerated tolerating feels felt
has had have was is are were here there present absent
history hx h/o hpi pmh psh fh fhx shx sh ros pe cc chief complaint subjective objective assessment plan
impression diagnosis diagnoses dx ddx problem problems list active inactive resolved chronic acute
exam examination physical review systems vitals vital signs medications medication meds allergies allergy
labs lab laboratory results result imaging radiology pathology procedure procedures surgery surgical operative
note notes visit encounter follow followup f/u instructions education information info summary discharge
admission progress consult consultation referral order orders disposition course hospital clinic center
department unit ward room bed floor emergency urgent care primary family social medical surgical past current
new old prior previous recent initial interim final addendum signed electronically dictated transcribed
reviewed attending resident fellow intern nurse rn np pa md do provider physician doctor surgeon staff team
service services
insurance plan coverage payer policy medicare medicaid commercial self-pay uninsured
name first last middle full legal preferred given family maiden
contact contacts emergency kin nok relationship relation phone cell home work mobile address email fax
mother father mom dad mum parent parents husband wife spouse partner son daughter brother sister sibling
siblings grandmother grandfather grandparent grandparents grandson granddaughter aunt uncle niece nephew
cousin friend neighbor neighbour roommate caregiver guardian boyfriend girlfriend fiance fiancee stepson
stepdaughter stepmother stepfather twin
negative positive normal abnormal unremarkable remarkable significant noncontributory contributory
mild moderate severe worse worsening better improved improving unchanged same stable
left right bilateral both upper lower anterior posterior
pain fever cough headache nausea vomiting diarrhea fatigue weakness dizziness
cancer carcinoma tumor tumour malignancy lymphoma leukemia melanoma breast lung colon colorectal prostate
ovarian cervical pancreatic skin bladder kidney renal liver hepatic thyroid brain bone blood heart cardiac
diabetes diabetic hypertension hypertensive hyperlipidemia cholesterol stroke cva mi cad chf copd asthma
dementia depression anxiety obesity arthritis osteoarthritis osteoporosis glaucoma cataracts migraine
migraines seizure seizures epilepsy alcoholism alcohol tobacco smoking smoker nonsmoker drug drugs
disease diseases disorder disorders syndrome syndromes infection infections failure attack
type insulin metformin lisinopril aspirin
parkinson parkinson's parkinsons hodgkin hodgkin's crohn crohn's alzheimer alzheimer's alzheimers cushing
cushing's addison addison's huntington huntington's hashimoto hashimoto's raynaud raynaud's sjogren sjögren
sjogren's sjögren's kawasaki tourette tourette's asperger asperger's guillain barre barré marfan lyme bell's
down's graves graves' meniere ménière meniere's bright's
";

/// Words that are also common English or clinical words but are names often enough ("Patient: Will Turner",
/// "Grace"): accepted after a label or title, but a later mention is hidden only when written the same way
/// (capitalised), so "will" and "grace period" stay.
const COMMON_WORD_NAMES: &str = "
will bill mark rose grace hope faith joy dawn penny pat sue art frank rich june april august summer autumn
amber ruby ivy lily daisy holly iris jade pearl dean drew grant chase hunter wade major king brown black white
green gray grey young long short hall wood woods stone rock bell cook baker miller smith page price hart
";

/// Words after which a capitalised word is a disease eponym, not a person: "Graves disease", "Bell's palsy".
const EPONYM_FOLLOWERS: &str = "
disease disease's syndrome palsy sign signs lymphoma ulcer ulcers esophagus oesophagus thyroiditis phenomenon
chorea sarcoma tumor tumour fracture fractures test procedure node nodes score scale criteria law maneuver
manoeuvre classification reflex triad disorder
";

/// Given names common in the US population of many origins; a capitalised word from this list starts a
/// name even without a label ("John Smith is 54", "Li Wu reports"). Kept short on purpose: only names that
/// are not also clinical or common English words.
const GIVEN_NAMES: &str = "
aaron abdul abigail adam adrian ahmed aisha alan albert alejandro alex alexander alexandra alice alicia amanda
amy ana andrea andrew angela anita ann anna anne anthony antonio arjun ashley barbara benjamin betty beverly
brandon brenda brian carlos carmen carol caroline catherine charles cheryl chloe christina christine
christopher cynthia daniel david deborah debra denise dennis diana diane donald donna dorothy douglas eduardo
elena elizabeth emily emma eric esther ethan evelyn fatima fernando francisco gabriel gary george gloria
gregory hannah harold heather helen henry hiroshi hugo ibrahim isabella jack jacob james jane janet jason
javier jean jennifer jeremy jessica joan joe john jonathan jorge jose joseph joshua joyce juan judith julia
julie justin karen katherine kathleen kathryn keith kelly kenneth kevin kimberly kyle larry laura lauren
li linda lisa lucia luis madison manuel margaret maria marie marilyn martha mary matthew megan melissa
michael michelle miguel mohammed muhammad nancy natalie nathan nicholas nicole noah olivia omar oscar óscar
pablo pamela patricia patrick paul peter pedro priya rachel rahul raj ramon raymond rebecca richard robert
roberto ronald ruth ryan samantha samuel sandra sara sarah scott sean sharon shirley sofia sophia stephanie
stephen steven susan teresa thomas timothy tyler victoria vincent virginia walter wei wendy william xin
yuki zachary zhang
";

fn set(words: &'static str) -> HashSet<&'static str> {
    words.split_whitespace().collect()
}

static NOT_A_NAME_SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| set(NOT_A_NAME));
static COMMON_WORD_NAMES_SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| set(COMMON_WORD_NAMES));
static EPONYM_FOLLOWERS_SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| set(EPONYM_FOLLOWERS));
static GIVEN_NAMES_SET: LazyLock<HashSet<&'static str>> = LazyLock::new(|| set(GIVEN_NAMES));

pub fn is_not_a_name(lowercase: &str) -> bool {
    NOT_A_NAME_SET.contains(lowercase)
}

pub fn is_common_word_name(lowercase: &str) -> bool {
    COMMON_WORD_NAMES_SET.contains(lowercase)
}

pub fn is_eponym_follower(lowercase: &str) -> bool {
    EPONYM_FOLLOWERS_SET.contains(lowercase)
}

pub fn is_given_name(lowercase: &str) -> bool {
    GIVEN_NAMES_SET.contains(lowercase)
}
