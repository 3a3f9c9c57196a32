//! Lab trends and the latest vital signs.

use shared::fhir::model::{Observation, ObservationEffective, ObservationStatus, Quantity};

use super::codes::{ANALYTES, BMI, BODY_WEIGHT, BP_PANELS, DIASTOLIC, SYSTOLIC};
use super::read::{When, cite, loinc_in, when_datetime, when_instant};
use super::{BloodPressure, LabResult, LabTrend, Measurement, Trend, Vitals};

/// Results within this fraction of the previous value read as "stable". Lab-to-lab variation of the
/// panel analytes (HbA1c, lipids, creatinine, glucose) is a few percent; 5 % keeps noise out of "up"/"down".
const STABLE_BAND: f64 = 0.05;

/// A result that can be placed in time and cited; registered or withdrawn results are not.
fn usable(observation: &Observation) -> bool {
    !matches!(
        observation.status,
        ObservationStatus::Registered | ObservationStatus::Cancelled | ObservationStatus::EnteredInError
    )
}

fn effective(observation: &Observation) -> Option<When> {
    match observation.effective()? {
        ObservationEffective::DateTime(at) => when_datetime(at),
        ObservationEffective::Period(period) => period.start.as_ref().and_then(when_datetime),
        ObservationEffective::Instant(at) => Some(when_instant(at)),
    }
}

fn quantity(observation: &Observation) -> Option<&Quantity> {
    observation.value_quantity.as_ref().filter(|q| q.value.is_some_and(f64::is_finite))
}

/// What makes two results comparable: the UCUM code when given, else the printed unit, ignoring case.
fn unit_key(quantity: &Quantity) -> Option<String> {
    quantity.code.as_deref().or(quantity.unit.as_deref()).map(str::to_lowercase)
}

struct Dated<T> {
    when: When,
    source: String,
    fact: T,
}

/// Sorts newest first; same instant falls back to the citation so the order never depends on input order.
fn newest_first<T>(items: &mut [Dated<T>]) {
    items.sort_by(|a, b| b.when.key().cmp(&a.when.key()).then_with(|| b.source.cmp(&a.source)));
}

/// One trend per panel analyte with at least one numeric result dated by `as_of`.
///
/// `latest` is the newest by effective time (same instant: the greater id, so input order never matters).
/// `previous` is the newest result strictly earlier than `latest` in the same unit, since comparing
/// across units would invent a trend.
pub(crate) fn labs(observations: &[Observation], as_of: time::Date, uncitable: &mut usize) -> Vec<LabTrend> {
    let mut per_analyte: Vec<Vec<Dated<(&'static str, &Quantity)>>> = ANALYTES.iter().map(|_| Vec::new()).collect();
    for observation in observations {
        let Some(source) = cite("Observation", observation.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if !usable(observation) {
            continue;
        }
        let Some((index, loinc)) =
            ANALYTES.iter().enumerate().find_map(|(i, a)| loinc_in(&observation.code, a.loinc).map(|code| (i, code)))
        else {
            continue;
        };
        let (Some(value), Some(when)) = (quantity(observation), effective(observation)) else {
            continue;
        };
        if when.date > as_of {
            continue;
        }
        if let Some(results) = per_analyte.get_mut(index) {
            results.push(Dated { when, source, fact: (loinc, value) });
        }
    }

    let mut trends = Vec::new();
    for (analyte, mut results) in ANALYTES.iter().zip(per_analyte) {
        newest_first(&mut results);
        let Some((latest, earlier)) = results.split_first() else {
            continue;
        };
        let (loinc, latest_quantity) = latest.fact;
        // A same-instant result is a duplicate of the latest (panels get filed twice), not an earlier one.
        let previous = earlier
            .iter()
            .find(|r| r.when.key() < latest.when.key() && unit_key(r.fact.1) == unit_key(latest_quantity));
        let latest_result = lab_result(latest);
        let previous_result = previous.map(lab_result);
        let trend = match &previous_result {
            Some(previous) => trend(previous.value, latest_result.value),
            None => Trend::Single,
        };
        let mut sources = vec![latest_result.source.clone()];
        sources.extend(previous_result.as_ref().map(|p| p.source.clone()));
        trends.push(LabTrend {
            name: analyte.name.to_owned(),
            loinc: loinc.to_owned(),
            latest: latest_result,
            previous: previous_result,
            trend,
            sources,
        });
    }
    trends
}

fn lab_result(result: &Dated<(&'static str, &Quantity)>) -> LabResult {
    let quantity = result.fact.1;
    LabResult {
        value: quantity.value.unwrap_or_default(),
        unit: quantity.unit.clone().or_else(|| quantity.code.clone()),
        date: result.when.text.clone(),
        source: result.source.clone(),
    }
}

/// `stable` when |latest − previous| < 5 % of |previous|; from a previous 0 any change is a direction.
pub(crate) fn trend(previous: f64, latest: f64) -> Trend {
    let change = latest - previous;
    if change.abs() < STABLE_BAND * previous.abs() || change == 0.0 {
        Trend::Stable
    } else if change > 0.0 {
        Trend::Up
    } else {
        Trend::Down
    }
}

/// Latest blood pressure (panel with both systolic and diastolic), BMI and body weight by `as_of`.
pub(crate) fn vitals(observations: &[Observation], as_of: time::Date, uncitable: &mut usize) -> Vitals {
    let mut pressures: Vec<Dated<BloodPressure>> = Vec::new();
    let mut bmis: Vec<Dated<Measurement>> = Vec::new();
    let mut weights: Vec<Dated<Measurement>> = Vec::new();
    for observation in observations {
        let Some(source) = cite("Observation", observation.id.as_ref()) else {
            *uncitable += 1;
            continue;
        };
        if !usable(observation) {
            continue;
        }
        let Some(when) = effective(observation).filter(|w| w.date <= as_of) else {
            continue;
        };
        if loinc_in(&observation.code, BP_PANELS).is_some() {
            if let Some(pressure) = blood_pressure(observation, &when, &source) {
                pressures.push(Dated { when, source, fact: pressure });
            }
        } else if let Some(code) = loinc_in(&observation.code, &[BMI, BODY_WEIGHT]) {
            let Some(value) = quantity(observation) else {
                continue;
            };
            let measurement = Measurement {
                value: value.value.unwrap_or_default(),
                unit: value.unit.clone().or_else(|| value.code.clone()),
                date: when.text.clone(),
                source: source.clone(),
            };
            let list = if code == BMI { &mut bmis } else { &mut weights };
            list.push(Dated { when, source, fact: measurement });
        }
    }
    newest_first(&mut pressures);
    newest_first(&mut bmis);
    newest_first(&mut weights);
    Vitals {
        blood_pressure: pressures.into_iter().next().map(|d| d.fact),
        bmi: bmis.into_iter().next().map(|d| d.fact),
        body_weight: weights.into_iter().next().map(|d| d.fact),
    }
}

fn blood_pressure(observation: &Observation, when: &When, source: &str) -> Option<BloodPressure> {
    let component = |code: &str| {
        observation.component.iter().find_map(|component| {
            loinc_in(&component.code, &[code])?;
            component.value_quantity.as_ref().filter(|q| q.value.is_some_and(f64::is_finite))
        })
    };
    let systolic = component(SYSTOLIC)?;
    let diastolic = component(DIASTOLIC)?;
    Some(BloodPressure {
        systolic: systolic.value?,
        diastolic: diastolic.value?,
        unit: systolic.unit.clone().or_else(|| systolic.code.clone()),
        date: when.text.clone(),
        source: source.to_owned(),
    })
}
