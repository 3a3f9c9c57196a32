//! Checks each criterion of a coverage policy against the chart as of a date, then the policy's logic.
//!
//! The rules follow the payer-policies README: only resources dated on or before the as-of date count; a
//! Condition counts unless it was abated before the window opened; value comparisons use the most recent
//! result in the window; a medication's duration runs from the earliest active request's `authoredOn`.
//! Where the chart cannot answer (no result in the window to compare, only undated matches) the criterion
//! is `insufficient_evidence`, never `met`: the request is pended for the missing document, not padded.

use std::collections::BTreeMap;

use serde::Serialize;
use time::Duration;

use super::chart::{Chart, Fact};
use super::logic::Status;
use super::policy::{Comparator, CoveragePolicy, Criterion, EvidenceResource};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionResult {
    pub id: String,
    pub text: String,
    pub status: Status,
    /// Why, in words a reviewer reads; names codes, dates and values, never the patient.
    pub reason: String,
    /// The resources and values the result rests on (the latest non-qualifying one for a miss, if any).
    pub evidence: Vec<Fact>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub policy_id: String,
    pub logic: String,
    #[serde(serialize_with = "shared::dates::iso")]
    pub as_of: time::Date,
    pub overall: Status,
    pub criteria: Vec<CriterionResult>,
}

impl Evaluation {
    pub fn status_of(&self, id: &str) -> Option<Status> {
        self.criteria.iter().find(|c| c.id == id).map(|c| c.status)
    }

    /// Criteria that are not met or cannot be shown: what a finalising clinician must override.
    pub fn unmet(&self) -> Vec<&CriterionResult> {
        self.criteria.iter().filter(|c| c.status != Status::Met).collect()
    }

    /// Every resource cited by any criterion, once, in order.
    pub fn references(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for fact in self.criteria.iter().flat_map(|c| &c.evidence) {
            if !out.contains(&fact.reference) {
                out.push(fact.reference.clone());
            }
        }
        out
    }
}

pub fn evaluate(policy: &CoveragePolicy, chart: &Chart, as_of: time::Date) -> Evaluation {
    let criteria: Vec<CriterionResult> = policy.criteria.iter().map(|c| criterion(c, chart, as_of)).collect();
    let statuses: BTreeMap<String, Status> = criteria.iter().map(|c| (c.id.clone(), c.status)).collect();
    Evaluation {
        policy_id: policy.policy_id.clone(),
        logic: policy.logic.clone(),
        as_of,
        overall: policy.expression.evaluate(&statuses),
        criteria,
    }
}

fn result(criterion: &Criterion, status: Status, reason: String, evidence: Vec<Fact>) -> CriterionResult {
    CriterionResult { id: criterion.id.clone(), text: criterion.text.clone(), status, reason, evidence }
}

fn window_text(within_days: Option<u32>) -> String {
    within_days.map_or_else(|| "on record".to_owned(), |d| format!("in the last {d} days"))
}

fn describe(fact: &Fact) -> String {
    let date = fact.date.map_or_else(|| "undated".to_owned(), |d| d.to_string());
    match fact.value {
        Some(v) => format!("{} {} {} on {date}", fact.code, v, fact.unit.as_deref().unwrap_or("")),
        None => format!("{} on {date}", fact.code),
    }
}

fn criterion(criterion: &Criterion, chart: &Chart, as_of: time::Date) -> CriterionResult {
    let evidence = &criterion.evidence;
    let start = evidence.within_days.map(|d| as_of - Duration::days(i64::from(d)));
    let in_window = |d: time::Date| d <= as_of && start.is_none_or(|s| d >= s);
    let facts = match evidence.resource {
        EvidenceResource::Condition => chart.condition_facts(&evidence.code_system, &evidence.codes),
        EvidenceResource::Observation => chart.observation_facts(&evidence.code_system, &evidence.codes),
        EvidenceResource::MedicationRequest => chart.medication_facts(&evidence.code_system, &evidence.codes),
        EvidenceResource::Procedure => chart.procedure_facts(&evidence.code_system, &evidence.codes),
        EvidenceResource::Encounter => chart.encounter_facts(&evidence.code_system, &evidence.codes),
    };
    let kind = evidence.resource.as_str();
    let undated = facts.iter().any(|f| f.date.is_none());
    let window = window_text(evidence.within_days);

    match evidence.comparator {
        Comparator::Exists if evidence.resource == EvidenceResource::Condition => {
            let matched: Vec<Fact> = facts
                .into_iter()
                .filter(|f| f.date.is_some_and(|d| d <= as_of))
                .filter(|f| !f.abated.is_some_and(|a| a <= as_of && start.is_some_and(|s| a < s)))
                .collect();
            if !matched.is_empty() {
                let list = matched.iter().map(describe).collect::<Vec<_>>().join(", ");
                result(criterion, Status::Met, format!("matching Condition {window}: {list}"), matched)
            } else if undated {
                result(criterion, Status::InsufficientEvidence, "matching Condition has no onset date".into(), vec![])
            } else {
                result(criterion, Status::NotMet, format!("no matching Condition {window} as of {as_of}"), vec![])
            }
        }
        Comparator::Exists => {
            let latest = facts.into_iter().filter(|f| f.date.is_some_and(in_window)).max_by_key(|f| f.date);
            match latest {
                Some(fact) => {
                    let reason = format!("matching {kind} {window}: {}", describe(&fact));
                    result(criterion, Status::Met, reason, vec![fact])
                }
                None if undated => {
                    result(criterion, Status::InsufficientEvidence, format!("matching {kind} is undated"), vec![])
                }
                None => result(criterion, Status::NotMet, format!("no matching {kind} {window} as of {as_of}"), vec![]),
            }
        }
        Comparator::AtLeast | Comparator::Below => {
            let threshold = evidence.value.unwrap_or(f64::NAN);
            let latest =
                facts.into_iter().filter(|f| f.value.is_some() && f.date.is_some_and(in_window)).max_by_key(|f| f.date);
            let Some(fact) = latest else {
                let reason = format!("no {kind} result with a value {window} as of {as_of} to compare");
                return result(criterion, Status::InsufficientEvidence, reason, vec![]);
            };
            let value = fact.value.unwrap_or(f64::NAN);
            let passes =
                if evidence.comparator == Comparator::AtLeast { value >= threshold } else { value < threshold };
            let op = evidence.comparator.as_str();
            let (status, verb) = if passes { (Status::Met, "meets") } else { (Status::NotMet, "does not meet") };
            let reason = format!("most recent result {window}: {}, {verb} {op} {threshold}", describe(&fact));
            result(criterion, status, reason, vec![fact])
        }
        Comparator::DurationDaysAtLeast => {
            let required = evidence.value.unwrap_or(f64::INFINITY);
            let dated: Vec<Fact> = facts.into_iter().filter(|f| f.date.is_some_and(|d| d <= as_of)).collect();
            let earliest_active =
                dated.iter().filter(|f| f.status.as_deref() == Some("active")).min_by_key(|f| f.date).cloned();
            match earliest_active {
                Some(fact) => {
                    let days = fact.date.map_or(0, |d| (as_of - d).whole_days());
                    let passes = days as f64 >= required;
                    let status = if passes { Status::Met } else { Status::NotMet };
                    let reason = format!(
                        "active since {} ({days} days as of {as_of}); {} {required} days",
                        fact.date.map(|d| d.to_string()).unwrap_or_default(),
                        if passes { "at least" } else { "fewer than" }
                    );
                    result(criterion, status, reason, vec![fact])
                }
                None if !dated.is_empty() => {
                    // Stopped requests in these records carry no end date, so their duration is unknowable
                    // from the chart and counts as none; the latest one is cited so the reviewer can look.
                    let latest = dated.into_iter().max_by_key(|f| f.date).into_iter().collect::<Vec<_>>();
                    let reason = format!("no active matching {kind}; inactive requests count as 0 days");
                    result(criterion, Status::NotMet, reason, latest)
                }
                None => result(criterion, Status::NotMet, format!("no matching {kind} as of {as_of}"), vec![]),
            }
        }
    }
}
