//! Care-gap rules. Each reads only facts the summary already cites, so every gap can name its evidence.

use super::chart::Screening;
use super::codes::{self, DIABETES_ICD10_PREFIXES, DIABETES_SNOMED, HBA1C, INFLUENZA_CVX};
use super::read::{influenza_season_start, iso, months_before};
use super::{CareGap, EvidenceWindow, ImmunizationFact, LabTrend, PatientFacts, Problem, Vitals};

pub(crate) const DIABETES_HBA1C: &str = "diabetes-hba1c-6m";
pub(crate) const COLORECTAL_SCREENING: &str = "colorectal-screening-45-75";
pub(crate) const BP_ABOVE_140_90: &str = "bp-above-140-90";
pub(crate) const INFLUENZA_THIS_SEASON: &str = "influenza-this-season";

/// The already-summarised facts the rules look at.
pub(crate) struct Evidence<'a> {
    pub as_of: time::Date,
    pub patient: &'a PatientFacts,
    pub problems: &'a [Problem],
    pub labs: &'a [LabTrend],
    pub vitals: &'a Vitals,
    pub immunizations: &'a [ImmunizationFact],
    pub screenings: &'a [Screening],
}

/// Gaps in a fixed rule order, so the output is stable.
pub(crate) fn evaluate(evidence: &Evidence<'_>) -> Vec<CareGap> {
    [
        diabetes_hba1c(evidence),
        colorectal_screening(evidence),
        bp_above_140_90(evidence),
        influenza_this_season(evidence),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn patient_source(evidence: &Evidence<'_>) -> Vec<String> {
    let reference = &evidence.patient.reference;
    if reference.is_empty() { Vec::new() } else { vec![reference.clone()] }
}

pub(crate) fn is_diabetes(problem: &Problem) -> bool {
    let code = &problem.code;
    (code.system == codes::SNOMED && DIABETES_SNOMED.contains(&code.code.as_str()))
        || ((code.system == codes::ICD10_CM || code.system == codes::ICD10)
            && DIABETES_ICD10_PREFIXES.iter().any(|prefix| code.code.starts_with(prefix)))
}

/// Active diabetes and no HbA1c dated in the 6 calendar months up to and including `as_of`.
fn diabetes_hba1c(evidence: &Evidence<'_>) -> Option<CareGap> {
    let diabetes: Vec<&Problem> = evidence.problems.iter().filter(|p| is_diabetes(p)).collect();
    if diabetes.is_empty() {
        return None;
    }
    let window_start = months_before(evidence.as_of, 6);
    let last = evidence.labs.iter().find(|lab| lab.loinc == HBA1C).map(|lab| &lab.latest);
    if let Some(last) = last {
        // Dates are ISO, partial dates sort before the full dates of their period: string order is date order.
        if last.date.as_str() >= iso(window_start).as_str() {
            return None;
        }
    }
    let mut sources: Vec<String> = diabetes.iter().flat_map(|p| p.sources.iter().cloned()).collect();
    let detail = match last {
        Some(last) => {
            sources.push(last.source.clone());
            format!("Diabetes is on the problem list and the last HbA1c was on {}, more than 6 months ago.", last.date)
        }
        None => "Diabetes is on the problem list and there is no HbA1c on record.".to_owned(),
    };
    Some(CareGap {
        rule_id: DIABETES_HBA1C.to_owned(),
        title: "HbA1c due".to_owned(),
        detail,
        sources,
        evidence_window: EvidenceWindow { start: Some(iso(window_start)), end: iso(evidence.as_of) },
    })
}

/// Age 45 to 75 inclusive at `as_of` and no completed colorectal screening procedure on record at all
/// (no look-back limit: the rule asks whether the record shows any screening).
fn colorectal_screening(evidence: &Evidence<'_>) -> Option<CareGap> {
    let age = evidence.patient.age_years?;
    if !(45..=75).contains(&age) || !evidence.screenings.is_empty() {
        return None;
    }
    Some(CareGap {
        rule_id: COLORECTAL_SCREENING.to_owned(),
        title: "Colorectal cancer screening not on record".to_owned(),
        detail: format!(
            "Age {age} is in the 45 to 75 screening range and no colonoscopy, sigmoidoscopy or CT colonography is on record."
        ),
        sources: patient_source(evidence),
        evidence_window: EvidenceWindow { start: None, end: iso(evidence.as_of) },
    })
}

/// The latest blood pressure is above 140/90: systolic strictly greater than 140 or diastolic strictly
/// greater than 90 mmHg. A reading of exactly 140/90 does not open the gap.
fn bp_above_140_90(evidence: &Evidence<'_>) -> Option<CareGap> {
    let bp = evidence.vitals.blood_pressure.as_ref()?;
    let systolic_high = bp.systolic > 140.0;
    let diastolic_high = bp.diastolic > 90.0;
    if !systolic_high && !diastolic_high {
        return None;
    }
    let which = match (systolic_high, diastolic_high) {
        (true, true) => "systolic and diastolic are",
        (true, false) => "systolic is",
        _ => "diastolic is",
    };
    Some(CareGap {
        rule_id: BP_ABOVE_140_90.to_owned(),
        title: "Blood pressure above 140/90".to_owned(),
        detail: format!(
            "The latest blood pressure, {:.0}/{:.0} on {}, is above 140/90 ({which} high).",
            bp.systolic, bp.diastolic, bp.date
        ),
        sources: vec![bp.source.clone()],
        evidence_window: EvidenceWindow { start: Some(bp.date.clone()), end: bp.date.clone() },
    })
}

pub(crate) fn is_influenza(immunization: &ImmunizationFact) -> bool {
    immunization.cvx.as_deref().is_some_and(|cvx| INFLUENZA_CVX.contains(&cvx))
}

/// No influenza vaccine on or after Aug 1 opening the current season (Aug 1 of `as_of`'s year from
/// Aug 1 on, else of the year before). Applies at every age: the summary does not know the patient's
/// age in months, so infants under 6 months are not told apart.
fn influenza_this_season(evidence: &Evidence<'_>) -> Option<CareGap> {
    let season_start = influenza_season_start(evidence.as_of);
    let season = iso(season_start);
    let last = evidence.immunizations.iter().filter(|i| is_influenza(i)).max_by(|a, b| a.date.cmp(&b.date));
    if last.is_some_and(|last| last.date >= season) {
        return None;
    }
    let mut sources = patient_source(evidence);
    let detail = match last {
        Some(last) => {
            sources.push(last.source.clone());
            format!("No influenza vaccine since {season}; the last one on record was on {}.", last.date)
        }
        None => format!("No influenza vaccine since {season} and none on record."),
    };
    Some(CareGap {
        rule_id: INFLUENZA_THIS_SEASON.to_owned(),
        title: "Influenza vaccine due this season".to_owned(),
        detail,
        sources,
        evidence_window: EvidenceWindow { start: Some(season), end: iso(evidence.as_of) },
    })
}
