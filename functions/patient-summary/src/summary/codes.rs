//! The code lists the summary reads, and the ones the caller needs to build its FHIR searches.

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const ICD10_CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
/// Some servers label ICD-10-CM codes with the WHO ICD-10 system; E10/E11 mean the same in both.
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";

pub const HBA1C: &str = "4548-4";

/// One analyte of a lab panel: the clinic's name for it and every LOINC code that reports it.
#[derive(Debug, Clone, Copy)]
pub struct Analyte {
    pub name: &'static str,
    pub loinc: &'static [&'static str],
}

/// Analytes in the order a clinician scans them: diabetes control, lipids, kidney function, glucose.
pub const ANALYTES: &[Analyte] = &[
    Analyte { name: "HbA1c", loinc: &[HBA1C] },
    Analyte { name: "Total cholesterol", loinc: &["2093-3"] },
    Analyte { name: "LDL cholesterol", loinc: &["18262-6"] },
    Analyte { name: "HDL cholesterol", loinc: &["2085-9"] },
    Analyte { name: "Triglycerides", loinc: &["2571-8"] },
    Analyte { name: "eGFR", loinc: &["33914-3", "48643-1", "48642-3", "62238-1"] },
    Analyte { name: "Creatinine", loinc: &["2160-0", "38483-4"] },
    Analyte { name: "Glucose", loinc: &["2339-0", "2345-7"] },
];

/// LOINC codes (system `http://loinc.org`) of the lab panels: the caller's `Observation?code=` search.
pub const LAB_CODES: &[&str] = &[
    HBA1C, "2093-3", "18262-6", "2085-9", "2571-8", "33914-3", "48643-1", "48642-3", "62238-1", "2160-0", "38483-4",
    "2339-0", "2345-7",
];

pub const BP_PANELS: &[&str] = &["55284-4", "85354-9"];
pub const SYSTOLIC: &str = "8480-6";
pub const DIASTOLIC: &str = "8462-4";
pub const BMI: &str = "39156-5";
pub const BODY_WEIGHT: &str = "29463-7";

/// LOINC codes (system `http://loinc.org`) of the vital signs read: both BP panels, BMI, body weight.
pub const VITAL_CODES: &[&str] = &["55284-4", "85354-9", BMI, BODY_WEIGHT];

/// Procedures that count as colorectal cancer screening, as `(system, code)`.
///
/// Kept to procedures a `Procedure?code=` search can find: colonoscopy (73761001, and 310634005 check
/// colonoscopy), sigmoidoscopy (24420007, flexible 44441009, flexible fiberoptic 396226005) and CT
/// colonography (418714002). Stool tests (FIT, FOBT, FIT-DNA) are lab Observations, not Procedures, so
/// they are not in this list. 310861008 is deliberately absent: in SNOMED (and in the Synthea data) it
/// is a chlamydia antigen test.
pub const COLORECTAL_SCREENING_CODES: &[(&str, &str)] = &[
    (SNOMED, "73761001"),
    (SNOMED, "310634005"),
    (SNOMED, "24420007"),
    (SNOMED, "44441009"),
    (SNOMED, "396226005"),
    (SNOMED, "418714002"),
];

/// SNOMED diabetes codes that trigger the HbA1c rule: type 2 and type 1 diabetes mellitus.
pub const DIABETES_SNOMED: &[&str] = &["44054006", "46635009"];
/// ICD-10-CM prefixes for type 1 and type 2 diabetes.
pub const DIABETES_ICD10_PREFIXES: &[&str] = &["E10", "E11"];

/// CVX codes of influenza vaccines.
pub const INFLUENZA_CVX: &[&str] = &[
    "140", "141", "150", "155", "158", "161", "166", "168", "171", "185", "186", "197", "205", "88", "111", "135",
    "144", "149", "151", "153",
];
