//! `shared::fhir::model` against an independent reading: every Patient, Condition, MedicationRequest,
//! AllergyIntolerance, Immunization, Encounter, Procedure and Observation of the 25 Synthea bundles is read with
//! both our types and fhir-sdk's r4b models, and every element our types hold must read the same. Then hostile
//! variants (broken required elements, statuses outside their value set, malformed dates) must fail in both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use fhir_sdk::r4b::resources as sdk;
use fhir_sdk::r4b::types as sdkt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::fhir::model::{self as ours, Timed};

fn resources() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir/synthea");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the Synthea bundles are beside the checkout") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            all.extend(bundle["entry"].as_array().into_iter().flatten().map(|e| e["resource"].clone()));
        }
    }
    all
}

// ---- one rendering of each element, for both readings ----

fn date_o(d: &ours::Date) -> String {
    match d {
        ours::Date::Year(y) => format!("{y}"),
        ours::Date::YearMonth(y, m) => format!("{y}-{m}"),
        ours::Date::Date(d) => d.to_string(),
    }
}
fn date_s(d: &fhir_sdk::Date) -> String {
    match d {
        fhir_sdk::Date::Year(y) => format!("{y}"),
        fhir_sdk::Date::YearMonth(y, m) => format!("{y}-{m}"),
        fhir_sdk::Date::Date(d) => d.to_string(),
    }
}
fn dt_o(d: &ours::DateTime) -> String {
    match d {
        ours::DateTime::Date(d) => date_o(d),
        ours::DateTime::DateTime(ours::Instant(at)) => at.to_string(),
    }
}
fn dt_s(d: &fhir_sdk::DateTime) -> String {
    match d {
        fhir_sdk::DateTime::Date(d) => date_s(d),
        fhir_sdk::DateTime::DateTime(fhir_sdk::Instant(at)) => at.to_string(),
    }
}
fn opt<T>(value: Option<T>, f: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), f)
}
fn period_o(p: &ours::Period) -> String {
    format!("{}..{}", opt(p.start.as_ref(), dt_o), opt(p.end.as_ref(), dt_o))
}
fn period_s(p: &sdkt::Period) -> String {
    format!("{}..{}", opt(p.start.as_ref(), dt_s), opt(p.end.as_ref(), dt_s))
}
fn coding_o(c: &ours::Coding) -> String {
    format!("{:?}|{:?}|{:?}", c.system, c.code, c.display)
}
fn coding_s(c: &sdkt::Coding) -> String {
    format!("{:?}|{:?}|{:?}", c.system, c.code, c.display)
}
fn cc_o(c: &ours::CodeableConcept) -> String {
    let codings: Vec<String> = c.coding.iter().map(coding_o).collect();
    format!("{codings:?} {:?}", c.text)
}
fn cc_s(c: &sdkt::CodeableConcept) -> String {
    let codings: Vec<String> = c.coding.iter().flatten().map(coding_s).collect();
    format!("{codings:?} {:?}", c.text)
}
fn qty_o(q: &ours::Quantity) -> String {
    format!("{:?} {:?} {:?} {:?}", q.value, q.unit, q.system, q.code)
}
fn qty_s(q: &sdkt::Quantity) -> String {
    format!("{:?} {:?} {:?} {:?}", q.value, q.unit, q.system, q.code)
}
fn timed_o(t: Option<Timed<'_>>) -> String {
    match t {
        Some(Timed::DateTime(d)) => dt_o(d),
        Some(Timed::Period(p)) => period_o(p),
        None => "-".to_owned(),
    }
}

fn patient(o: &ours::Patient, s: &sdk::Patient) -> [String; 2] {
    let deceased_o = match o.deceased() {
        Some(ours::PatientDeceased::Boolean(b)) => b.to_string(),
        Some(ours::PatientDeceased::DateTime(d)) => dt_o(d),
        None => "-".to_owned(),
    };
    let deceased_s = match &s.deceased {
        Some(sdk::PatientDeceased::Boolean(b)) => b.to_string(),
        Some(sdk::PatientDeceased::DateTime(d)) => dt_s(d),
        None => "-".to_owned(),
    };
    [
        format!(
            "{:?} {} {} {deceased_o}",
            o.id,
            opt(o.gender, |g| g.as_str().to_owned()),
            opt(o.birth_date.as_ref(), date_o)
        ),
        format!(
            "{:?} {} {} {deceased_s}",
            s.id,
            opt(s.gender.as_ref(), |g| AsRef::<str>::as_ref(g).to_owned()),
            opt(s.birth_date.as_ref(), date_s)
        ),
    ]
}

fn condition(o: &ours::Condition, s: &sdk::Condition) -> [String; 2] {
    let onset_s = match &s.onset {
        Some(sdk::ConditionOnset::DateTime(d)) => dt_s(d),
        Some(sdk::ConditionOnset::Period(p)) => period_s(p),
        _ => "-".to_owned(),
    };
    let abatement_s = match &s.abatement {
        Some(sdk::ConditionAbatement::DateTime(d)) => dt_s(d),
        Some(sdk::ConditionAbatement::Period(p)) => period_s(p),
        _ => "-".to_owned(),
    };
    [
        format!(
            "{:?} {} {} {} {} {} {}",
            o.id,
            opt(o.clinical_status.as_ref(), cc_o),
            opt(o.verification_status.as_ref(), cc_o),
            opt(o.code.as_ref(), cc_o),
            timed_o(o.onset()),
            timed_o(o.abatement()),
            opt(o.recorded_date.as_ref(), dt_o)
        ),
        format!(
            "{:?} {} {} {} {onset_s} {abatement_s} {}",
            s.id,
            opt(s.clinical_status.as_ref(), cc_s),
            opt(s.verification_status.as_ref(), cc_s),
            opt(s.code.as_ref(), cc_s),
            opt(s.recorded_date.as_ref(), dt_s)
        ),
    ]
}

fn dosage_o(d: &ours::Dosage) -> String {
    let repeat = d.timing.as_ref().and_then(|t| t.repeat.as_ref());
    let doses: Vec<String> = d.dose_and_rate.iter().filter_map(|r| r.dose_quantity.as_ref()).map(qty_o).collect();
    format!(
        "{:?} {:?} {:?} {:?} {doses:?} {:?}",
        d.text,
        repeat.and_then(|r| r.frequency),
        repeat.and_then(|r| r.period),
        repeat.and_then(|r| r.period_unit.clone()),
        d.as_needed_boolean
    )
}
fn dosage_s(d: &sdkt::Dosage) -> String {
    let repeat = d.timing.as_ref().and_then(|t| t.repeat.as_ref());
    let doses: Vec<String> = d
        .dose_and_rate
        .iter()
        .flatten()
        .filter_map(|r| match &r.dose {
            Some(sdkt::DosageDoseAndRateDose::Quantity(q)) => Some(qty_s(q)),
            _ => None,
        })
        .collect();
    let as_needed = match &d.as_needed {
        Some(sdkt::DosageAsNeeded::Boolean(b)) => Some(*b),
        _ => None,
    };
    format!(
        "{:?} {:?} {:?} {:?} {doses:?} {as_needed:?}",
        d.text,
        repeat.and_then(|r| r.frequency),
        repeat.and_then(|r| r.period),
        repeat.and_then(|r| r.period_unit.as_ref().map(|u| AsRef::<str>::as_ref(u).to_owned())),
    )
}

fn medication_request(o: &ours::MedicationRequest, s: &sdk::MedicationRequest) -> [String; 2] {
    let med_o = match &o.medication {
        ours::MedicationRequestMedication::CodeableConcept(c) => cc_o(c),
        ours::MedicationRequestMedication::Reference(r) => format!("{:?} {:?}", r.reference, r.display),
    };
    let med_s = match &s.medication {
        sdk::MedicationRequestMedication::CodeableConcept(c) => cc_s(c),
        sdk::MedicationRequestMedication::Reference(r) => format!("{:?} {:?}", r.reference, r.display),
    };
    let dosages_o: Vec<String> = o.dosage_instruction.iter().map(dosage_o).collect();
    let dosages_s: Vec<String> = s.dosage_instruction.iter().flatten().map(dosage_s).collect();
    [
        format!(
            "{:?} {} {:?} {med_o} {} {dosages_o:?}",
            o.id,
            o.status.as_str(),
            o.do_not_perform,
            opt(o.authored_on.as_ref(), dt_o)
        ),
        format!(
            "{:?} {} {:?} {med_s} {} {dosages_s:?}",
            s.id,
            AsRef::<str>::as_ref(&s.status),
            s.do_not_perform,
            opt(s.authored_on.as_ref(), dt_s)
        ),
    ]
}

fn allergy(o: &ours::AllergyIntolerance, s: &sdk::AllergyIntolerance) -> [String; 2] {
    [
        format!(
            "{:?} {} {} {} {}",
            o.id,
            opt(o.clinical_status.as_ref(), cc_o),
            opt(o.verification_status.as_ref(), cc_o),
            opt(o.code.as_ref(), cc_o),
            opt(o.criticality, |c| c.as_str().to_owned())
        ),
        format!(
            "{:?} {} {} {} {}",
            s.id,
            opt(s.clinical_status.as_ref(), cc_s),
            opt(s.verification_status.as_ref(), cc_s),
            opt(s.code.as_ref(), cc_s),
            opt(s.criticality.as_ref(), |c| AsRef::<str>::as_ref(c).to_owned())
        ),
    ]
}

fn immunization(o: &ours::Immunization, s: &sdk::Immunization) -> [String; 2] {
    let occ_o = match &o.occurrence {
        ours::ImmunizationOccurrence::DateTime(d) => dt_o(d),
        ours::ImmunizationOccurrence::String(t) => t.clone(),
    };
    let occ_s = match &s.occurrence {
        sdk::ImmunizationOccurrence::DateTime(d) => dt_s(d),
        sdk::ImmunizationOccurrence::String(t) => t.clone(),
    };
    [
        format!("{:?} {} {} {occ_o}", o.id, o.status.as_str(), cc_o(&o.vaccine_code)),
        format!("{:?} {} {} {occ_s}", s.id, AsRef::<str>::as_ref(&s.status), cc_s(&s.vaccine_code)),
    ]
}

fn encounter(o: &ours::Encounter, s: &sdk::Encounter) -> [String; 2] {
    let types_o: Vec<String> = o.r#type.iter().map(cc_o).collect();
    let types_s: Vec<String> = s.r#type.iter().flatten().map(cc_s).collect();
    [
        format!(
            "{:?} {} {} {types_o:?} {}",
            o.id,
            o.status.as_str(),
            coding_o(&o.class),
            opt(o.period.as_ref(), period_o)
        ),
        format!(
            "{:?} {} {} {types_s:?} {}",
            s.id,
            AsRef::<str>::as_ref(&s.status),
            coding_s(&s.class),
            opt(s.period.as_ref(), period_s)
        ),
    ]
}

fn procedure(o: &ours::Procedure, s: &sdk::Procedure) -> [String; 2] {
    let performed_s = match &s.performed {
        Some(sdk::ProcedurePerformed::DateTime(d)) => dt_s(d),
        Some(sdk::ProcedurePerformed::Period(p)) => period_s(p),
        _ => "-".to_owned(),
    };
    [
        format!("{:?} {} {} {}", o.id, o.status.as_str(), opt(o.code.as_ref(), cc_o), timed_o(o.performed())),
        format!("{:?} {} {} {performed_s}", s.id, AsRef::<str>::as_ref(&s.status), opt(s.code.as_ref(), cc_s)),
    ]
}

fn observation(o: &ours::Observation, s: &sdk::Observation) -> [String; 2] {
    let eff_o = match o.effective() {
        Some(ours::ObservationEffective::DateTime(d)) => dt_o(d),
        Some(ours::ObservationEffective::Period(p)) => period_o(p),
        Some(ours::ObservationEffective::Instant(ours::Instant(at))) => at.to_string(),
        None => "-".to_owned(),
    };
    let eff_s = match &s.effective {
        Some(sdk::ObservationEffective::DateTime(d)) => dt_s(d),
        Some(sdk::ObservationEffective::Period(p)) => period_s(p),
        Some(sdk::ObservationEffective::Instant(fhir_sdk::Instant(at))) => at.to_string(),
        _ => "-".to_owned(),
    };
    let value_s = match &s.value {
        Some(sdk::ObservationValue::Quantity(q)) => qty_s(q),
        _ => "-".to_owned(),
    };
    let comps_o: Vec<String> =
        o.component.iter().map(|c| format!("{} {}", cc_o(&c.code), opt(c.value_quantity.as_ref(), qty_o))).collect();
    let comps_s: Vec<String> = s
        .component
        .iter()
        .flatten()
        .map(|c| {
            let value = match &c.value {
                Some(sdk::ObservationComponentValue::Quantity(q)) => qty_s(q),
                _ => "-".to_owned(),
            };
            format!("{} {value}", cc_s(&c.code))
        })
        .collect();
    [
        format!(
            "{:?} {} {} {eff_o} {} {comps_o:?}",
            o.id,
            o.status.as_str(),
            cc_o(&o.code),
            opt(o.value_quantity.as_ref(), qty_o)
        ),
        format!("{:?} {} {} {eff_s} {value_s} {comps_s:?}", s.id, AsRef::<str>::as_ref(&s.status), cc_s(&s.code)),
    ]
}

/// Both readings of one resource: both fail, or both succeed and render the same. Returns whether it parsed.
fn agree<O: DeserializeOwned, S: DeserializeOwned>(value: &Value, render: fn(&O, &S) -> [String; 2]) -> bool {
    let o = serde_json::from_value::<O>(value.clone());
    let s = serde_json::from_value::<S>(value.clone());
    match (o, s) {
        (Ok(o), Ok(s)) => {
            let [a, b] = render(&o, &s);
            assert_eq!(a, b, "{} {} reads differently", value["resourceType"], value["id"]);
            true
        }
        (Err(_), Err(_)) => false,
        (o, s) => panic!(
            "{} {}: ours {}, fhir-sdk {}",
            value["resourceType"],
            value["id"],
            if o.is_ok() { "parses" } else { "fails" },
            if s.is_ok() { "parses" } else { "fails" }
        ),
    }
}

fn check(value: &Value) -> Option<bool> {
    Some(match value["resourceType"].as_str()? {
        "Patient" => agree::<ours::Patient, sdk::Patient>(value, patient),
        "Condition" => agree::<ours::Condition, sdk::Condition>(value, condition),
        "MedicationRequest" => agree::<ours::MedicationRequest, sdk::MedicationRequest>(value, medication_request),
        "AllergyIntolerance" => agree::<ours::AllergyIntolerance, sdk::AllergyIntolerance>(value, allergy),
        "Immunization" => agree::<ours::Immunization, sdk::Immunization>(value, immunization),
        "Encounter" => agree::<ours::Encounter, sdk::Encounter>(value, encounter),
        "Procedure" => agree::<ours::Procedure, sdk::Procedure>(value, procedure),
        "Observation" => agree::<ours::Observation, sdk::Observation>(value, observation),
        _ => return None,
    })
}

#[test]
fn every_synthea_resource_reads_the_same_as_with_fhir_sdk() {
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for value in resources() {
        if check(&value) == Some(true) {
            *checked.entry(value["resourceType"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    println!("resources compared: {checked:?}");
    assert_eq!(checked.len(), 8, "every type was met: {checked:?}");
    assert!(checked.values().sum::<usize>() > 5_000, "{checked:?}");
}

#[test]
fn hostile_variants_fail_in_both_readings() {
    let observation = json!({"resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "effectiveDateTime": "2020-01-02T03:04:05+01:00", "valueQuantity": {"value": 6.1, "unit": "%"}});
    assert_eq!(check(&observation), Some(true));
    let broken: Vec<Value> = vec![
        json!({"status": "done"}),
        json!({"code": null}),
        json!({"code": {"coding": {"system": "http://loinc.org"}}}),
    ];
    for patch in broken {
        let mut value = observation.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                value.as_object_mut().unwrap().remove(k);
            } else {
                value[k] = v.clone();
            }
        }
        assert_eq!(check(&value), Some(false), "{patch} must fail in both");
    }
    // Where fhir-sdk is more lenient: a malformed date in a choice element (`effective[x]`) is dropped
    // silently and the resource kept undated; ours fails the resource, so it is counted as unparsed.
    for bad in ["2020-02-30T03:04:05Z", "2020-01-02T03:04", "2020-01-02T03:04:05"] {
        let mut value = observation.clone();
        value["effectiveDateTime"] = bad.into();
        assert!(serde_json::from_value::<ours::Observation>(value.clone()).is_err(), "{bad}");
        assert_eq!(serde_json::from_value::<sdk::Observation>(value).unwrap().effective, None, "{bad}");
    }
    let mut text_value = observation.clone();
    text_value["valueQuantity"]["value"] = "6.1".into();
    assert!(serde_json::from_value::<ours::Observation>(text_value.clone()).is_err(), "a decimal is a JSON number");
    assert_eq!(serde_json::from_value::<sdk::Observation>(text_value).unwrap().value, None);
    let encounter = json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"code": "AMB"}, "period": {"start": "2020"}});
    assert_eq!(check(&encounter), Some(true));
    for patch in [json!({"status": "over"}), json!({"period": {"start": "2020-13"}})] {
        let mut value = encounter.clone();
        for (k, v) in patch.as_object().unwrap() {
            value[k] = v.clone();
        }
        assert_eq!(check(&value), Some(false), "{patch} must fail in both");
    }
    // fhir-sdk reads a year or month of any length (`"20"` as the year 20, `"2020-1"`); R4's `date` regex has
    // four and two digits.
    for lax in ["20", "2020-1"] {
        let mut value = encounter.clone();
        value["period"]["start"] = lax.into();
        assert!(serde_json::from_value::<ours::Encounter>(value.clone()).is_err(), "{lax}");
        assert!(serde_json::from_value::<sdk::Encounter>(value).is_ok(), "{lax}");
    }
    let mut no_class = encounter;
    no_class.as_object_mut().unwrap().remove("class");
    assert_eq!(check(&no_class), Some(false));
    let patient = json!({"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1970-02-29"});
    assert_eq!(check(&patient), Some(false), "no 29 February in 1970");
}
