//! The part of a patient's record a coverage policy is checked against, in `shared::fhir::model` types, with
//! small readers for the dates and codes the criteria compare.

use serde::Serialize;
use shared::fhir::model::{
    CodeableConcept, Condition, Date, DateTime, Encounter, EventStatus, Instant, MedicationRequest,
    MedicationRequestMedication, Observation, ObservationEffective, ObservationStatus, Procedure, Timed,
};

/// Resources read for the evaluation, one list per type a criterion can name.
#[derive(Debug, Default, Clone)]
pub struct Chart {
    pub conditions: Vec<Condition>,
    pub observations: Vec<Observation>,
    pub medication_requests: Vec<MedicationRequest>,
    pub procedures: Vec<Procedure>,
    pub encounters: Vec<Encounter>,
}

/// One resource that matched a criterion's codes, reduced to what the evaluation compares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact {
    /// `Type/id`, the citation.
    pub reference: String,
    pub code: String,
    pub display: Option<String>,
    /// The clinical date the README's rules use (onset, effective, performed, authoredOn, period start).
    #[serde(serialize_with = "shared::dates::iso_opt")]
    pub date: Option<time::Date>,
    /// Condition abatement, for "not abated before the window".
    #[serde(skip)]
    pub abated: Option<time::Date>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// MedicationRequest status (`active`, `stopped`, ...); `None` for other types.
    pub status: Option<String>,
}

fn matching_code(concept: &CodeableConcept, system: &str, codes: &[String]) -> Option<(String, Option<String>)> {
    concept.coding.iter().find_map(|c| {
        let code = c.code.as_deref()?;
        (c.system.as_deref() == Some(system) && codes.iter().any(|w| w == code))
            .then(|| (code.to_owned(), c.display.clone().or_else(|| concept.text.clone())))
    })
}

fn cite(resource_type: &str, id: Option<&String>) -> Option<String> {
    id.filter(|id| !id.is_empty()).map(|id| format!("{resource_type}/{id}"))
}

/// The calendar date as written; partial dates fall on the first day of their period.
pub fn day_of_date(date: &Date) -> Option<time::Date> {
    match date {
        Date::Year(year) => time::Date::from_calendar_date(*year, time::Month::January, 1).ok(),
        Date::YearMonth(year, month) => time::Date::from_calendar_date(*year, *month, 1).ok(),
        Date::Date(day) => Some(*day),
    }
}

pub fn day_of(value: &DateTime) -> Option<time::Date> {
    match value {
        DateTime::Date(date) => day_of_date(date),
        DateTime::DateTime(Instant(at)) => Some(at.date()),
    }
}

fn concept_is_any(concept: Option<&CodeableConcept>, codes: &[&str]) -> bool {
    concept.is_some_and(|c| c.coding.iter().any(|c| c.code.as_deref().is_some_and(|v| codes.contains(&v))))
}

impl Chart {
    /// Sorts resources into the chart by `resourceType`; each is parsed into its one concrete type, and
    /// those that do not parse (or are of other types) are counted, not guessed at.
    pub fn from_json<'a>(resources: impl IntoIterator<Item = &'a serde_json::Value>) -> (Self, usize) {
        fn push<T: serde::de::DeserializeOwned>(into: &mut Vec<T>, value: &serde_json::Value, unparsed: &mut usize) {
            match T::deserialize(value) {
                Ok(item) => into.push(item),
                Err(_) => *unparsed += 1,
            }
        }
        let mut chart = Self::default();
        let mut unparsed = 0;
        for resource in resources {
            match resource.get("resourceType").and_then(serde_json::Value::as_str) {
                Some("Condition") => push(&mut chart.conditions, resource, &mut unparsed),
                Some("Observation") => push(&mut chart.observations, resource, &mut unparsed),
                Some("MedicationRequest") => push(&mut chart.medication_requests, resource, &mut unparsed),
                Some("Procedure") => push(&mut chart.procedures, resource, &mut unparsed),
                Some("Encounter") => push(&mut chart.encounters, resource, &mut unparsed),
                _ => {}
            }
        }
        (chart, unparsed)
    }

    pub fn condition_facts(&self, system: &str, codes: &[String]) -> Vec<Fact> {
        self.conditions
            .iter()
            .filter(|c| !concept_is_any(c.verification_status.as_ref(), &["entered-in-error", "refuted"]))
            .filter_map(|c| {
                let (code, display) = matching_code(c.code.as_ref()?, system, codes)?;
                let onset = match c.onset() {
                    Some(Timed::DateTime(d)) => day_of(d),
                    Some(Timed::Period(p)) => p.start.as_ref().and_then(day_of),
                    None => None,
                };
                let abated = match c.abatement() {
                    Some(Timed::DateTime(d)) => day_of(d),
                    Some(Timed::Period(p)) => p.end.as_ref().and_then(day_of),
                    None => None,
                };
                Some(Fact {
                    reference: cite("Condition", c.id.as_ref())?,
                    code,
                    display,
                    date: onset.or_else(|| c.recorded_date.as_ref().and_then(day_of)),
                    abated,
                    value: None,
                    unit: None,
                    status: None,
                })
            })
            .collect()
    }

    pub fn observation_facts(&self, system: &str, codes: &[String]) -> Vec<Fact> {
        self.observations
            .iter()
            .filter(|o| !matches!(o.status, ObservationStatus::EnteredInError | ObservationStatus::Cancelled))
            .filter_map(|o| {
                let (code, display) = matching_code(&o.code, system, codes)?;
                let date = match o.effective() {
                    Some(ObservationEffective::DateTime(d)) => day_of(d),
                    Some(ObservationEffective::Instant(Instant(at))) => Some(at.date()),
                    Some(ObservationEffective::Period(p)) => p.start.as_ref().and_then(day_of),
                    None => None,
                };
                let (value, unit) = o.value_quantity.as_ref().map_or((None, None), |q| (q.value, q.unit.clone()));
                Some(Fact {
                    reference: cite("Observation", o.id.as_ref())?,
                    code,
                    display,
                    date,
                    abated: None,
                    value,
                    unit,
                    status: None,
                })
            })
            .collect()
    }

    pub fn medication_facts(&self, system: &str, codes: &[String]) -> Vec<Fact> {
        self.medication_requests
            .iter()
            .filter_map(|m| {
                let MedicationRequestMedication::CodeableConcept(concept) = &m.medication else { return None };
                let (code, display) = matching_code(concept, system, codes)?;
                Some(Fact {
                    reference: cite("MedicationRequest", m.id.as_ref())?,
                    code,
                    display,
                    date: m.authored_on.as_ref().and_then(day_of),
                    abated: None,
                    value: None,
                    unit: None,
                    status: Some(m.status.as_str().to_owned()),
                })
            })
            .collect()
    }

    pub fn procedure_facts(&self, system: &str, codes: &[String]) -> Vec<Fact> {
        self.procedures
            .iter()
            .filter(|p| !matches!(p.status, EventStatus::EnteredInError | EventStatus::NotDone))
            .filter_map(|p| {
                let (code, display) = matching_code(p.code.as_ref()?, system, codes)?;
                let date = match p.performed() {
                    Some(Timed::DateTime(d)) => day_of(d),
                    Some(Timed::Period(period)) => period.start.as_ref().and_then(day_of),
                    None => None,
                };
                Some(Fact {
                    reference: cite("Procedure", p.id.as_ref())?,
                    code,
                    display,
                    date,
                    abated: None,
                    value: None,
                    unit: None,
                    status: None,
                })
            })
            .collect()
    }

    pub fn encounter_facts(&self, system: &str, codes: &[String]) -> Vec<Fact> {
        self.encounters
            .iter()
            .filter_map(|e| {
                let (code, display) = e.r#type.iter().find_map(|t| matching_code(t, system, codes))?;
                Some(Fact {
                    reference: cite("Encounter", e.id.as_ref())?,
                    code,
                    display,
                    date: e.period.as_ref().and_then(|p| p.start.as_ref()).and_then(day_of),
                    abated: None,
                    value: None,
                    unit: None,
                    status: None,
                })
            })
            .collect()
    }

    /// The start of the latest encounter on or before `limit` (any date when `None`).
    pub fn latest_encounter_start(&self, limit: Option<time::Date>) -> Option<time::Date> {
        self.encounters
            .iter()
            .filter_map(|e| e.period.as_ref().and_then(|p| p.start.as_ref()).and_then(day_of))
            .filter(|d| limit.is_none_or(|l| *d <= l))
            .max()
    }
}
