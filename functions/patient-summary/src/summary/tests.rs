use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::fhir::model::{
    AllergyIntolerance, Condition, Encounter, Immunization, MedicationRequest, Observation, Patient, Procedure,
};
use time::macros::date;

use super::results::trend;
use super::*;

fn parse<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("test resource parses")
}

fn patient(birth: &str) -> Patient {
    parse(json!({"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": birth}))
}

fn empty_chart(patient: Patient) -> ChartExtract {
    ChartExtract {
        patient,
        conditions: vec![],
        medications: vec![],
        allergies: vec![],
        labs: vec![],
        vitals: vec![],
        immunizations: vec![],
        encounters: vec![],
        screenings: vec![],
    }
}

fn condition(id: &str, system: &str, code: &str, display: &str, onset: &str, verification: &str) -> Condition {
    parse(json!({
        "resourceType": "Condition", "id": id,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]},
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": onset
    }))
}

fn diabetes(id: &str, onset: &str) -> Condition {
    condition(id, "http://snomed.info/sct", "44054006", "Diabetes mellitus type 2", onset, "confirmed")
}

fn lab(id: &str, loinc: &str, value: f64, unit: &str, at: &str) -> Observation {
    parse(json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    }))
}

fn bp(id: &str, systolic: f64, diastolic: f64, at: &str) -> Observation {
    parse(json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "55284-4"}]},
        "effectiveDateTime": at,
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": diastolic, "unit": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": systolic, "unit": "mm[Hg]"}}
        ]
    }))
}

fn vaccine(id: &str, cvx: &str, at: &str, status: &str) -> Immunization {
    parse(json!({
        "resourceType": "Immunization", "id": id, "status": status,
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": cvx, "display": format!("vaccine {cvx}")}]},
        "patient": {"reference": "Patient/p1"},
        "occurrenceDateTime": at
    }))
}

fn colonoscopy(id: &str, at: &str) -> Procedure {
    parse(json!({
        "resourceType": "Procedure", "id": id, "status": "completed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "73761001", "display": "Colonoscopy"}]},
        "subject": {"reference": "Patient/p1"},
        "performedPeriod": {"start": at, "end": at}
    }))
}

fn gap_ids(summary: &PatientSummary) -> Vec<&str> {
    summary.care_gaps.iter().map(|g| g.rule_id.as_str()).collect()
}

fn gap<'a>(summary: &'a PatientSummary, rule: &str) -> Option<&'a CareGap> {
    summary.care_gaps.iter().find(|g| g.rule_id == rule)
}

#[test]
fn trend_band_is_five_percent_of_previous() {
    assert_eq!(trend(100.0, 104.9), Trend::Stable);
    assert_eq!(trend(100.0, 95.1), Trend::Stable);
    assert_eq!(trend(100.0, 105.0), Trend::Up);
    assert_eq!(trend(100.0, 95.0), Trend::Down);
    assert_eq!(trend(0.0, 0.0), Trend::Stable);
    assert_eq!(trend(0.0, 0.1), Trend::Up);
}

#[test]
fn lab_trends_up_down_stable_single() {
    let mut chart = empty_chart(patient("1970-01-01"));
    chart.labs = vec![
        // Deliberately oldest first: the summary must not rely on input order.
        lab("a1", "4548-4", 6.0, "%", "2020-01-01T10:00:00+00:00"),
        lab("a2", "4548-4", 7.5, "%", "2020-06-01T10:00:00+00:00"),
        lab("c1", "2160-0", 1.2, "mg/dL", "2020-01-01T10:00:00+00:00"),
        lab("c2", "38483-4", 0.9, "mg/dL", "2020-06-01T10:00:00+00:00"),
        lab("g1", "2339-0", 100.0, "mg/dL", "2020-01-01"),
        lab("g2", "2339-0", 103.0, "mg/dL", "2020-06-01"),
        lab("l1", "18262-6", 120.0, "mg/dL", "2020-06-01"),
    ];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let by_name = |name: &str| summary.labs.iter().find(|l| l.name == name).expect("analyte present");

    let hba1c = by_name("HbA1c");
    assert_eq!(hba1c.trend, Trend::Up);
    assert_eq!(hba1c.latest.source, "Observation/a2");
    assert_eq!(hba1c.latest.date, "2020-06-01");
    assert_eq!(hba1c.previous.as_ref().map(|p| p.source.as_str()), Some("Observation/a1"));
    assert_eq!(hba1c.sources, vec!["Observation/a2", "Observation/a1"]);

    let creatinine = by_name("Creatinine");
    assert_eq!(creatinine.trend, Trend::Down);
    assert_eq!(creatinine.loinc, "38483-4");

    assert_eq!(by_name("Glucose").trend, Trend::Stable);
    let ldl = by_name("LDL cholesterol");
    assert_eq!(ldl.trend, Trend::Single);
    assert!(ldl.previous.is_none());
    // Panel order, and no entry for analytes without results.
    let names: Vec<&str> = summary.labs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["HbA1c", "LDL cholesterol", "Creatinine", "Glucose"]);
}

#[test]
fn labs_ignore_future_non_numeric_other_units_and_uncitable() {
    let mut chart = empty_chart(patient("1970-01-01"));
    let mut no_id = lab("x", "4548-4", 9.9, "%", "2020-03-01");
    no_id.id = None;
    let coded: Observation = parse(json!({
        "resourceType": "Observation", "id": "s1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "effectiveDateTime": "2020-04-01", "valueString": "pending"
    }));
    chart.labs = vec![
        lab("a1", "4548-4", 6.0, "%", "2020-01-01"),
        lab("future", "4548-4", 8.0, "%", "2022-01-01"),
        lab("mmol", "4548-4", 48.0, "mmol/mol", "2020-02-01"),
        lab("a2", "4548-4", 6.1, "%", "2020-05-01"),
        no_id,
        coded,
    ];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let hba1c = &summary.labs[0];
    assert_eq!(hba1c.latest.source, "Observation/a2");
    // The mmol/mol result is newer than a1 but not comparable with a % result.
    assert_eq!(hba1c.previous.as_ref().map(|p| p.source.as_str()), Some("Observation/a1"));
    assert_eq!(hba1c.trend, Trend::Stable);
    assert_eq!(summary.counts.uncitable, 1);
    assert_eq!(summary.counts.labs, 6);
}

#[test]
fn problems_dedup_by_code_keep_latest_onset_and_cite_all() {
    let mut chart = empty_chart(patient("1970-01-01"));
    chart.conditions = vec![
        condition("old", "http://snomed.info/sct", "38341003", "Hypertension (old)", "2001-01-01", "confirmed"),
        condition("asthma", "http://snomed.info/sct", "195967001", "Asthma", "2015-05-05", "confirmed"),
        condition("new", "http://snomed.info/sct", "38341003", "Hypertension", "2010-01-01", "confirmed"),
        condition("gone", "http://snomed.info/sct", "10509002", "Acute bronchitis", "2020-01-01", "refuted"),
        condition("oops", "http://snomed.info/sct", "444814009", "Viral sinusitis", "2020-01-01", "entered-in-error"),
    ];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert_eq!(summary.problems.len(), 2, "{:?}", summary.problems);
    let asthma = &summary.problems[0];
    assert_eq!(asthma.display, "Asthma");
    let hypertension = &summary.problems[1];
    assert_eq!(hypertension.display, "Hypertension");
    assert_eq!(hypertension.onset.as_deref(), Some("2010-01-01"));
    assert_eq!(hypertension.sources, vec!["Condition/new", "Condition/old"]);
    assert_eq!(hypertension.code, CodeRef { system: "http://snomed.info/sct".into(), code: "38341003".into() });
}

#[test]
fn refuted_diabetes_does_not_open_the_hba1c_gap() {
    let mut chart = empty_chart(patient("1990-01-01"));
    chart.conditions = vec![condition("d", "http://snomed.info/sct", "44054006", "Diabetes", "2010-01-01", "refuted")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert!(gap(&summary, "diabetes-hba1c-6m").is_none());
}

#[test]
fn hba1c_gap_window_is_six_calendar_months_inclusive() {
    let mut chart = empty_chart(patient("1990-01-01"));
    chart.conditions = vec![diabetes("dm", "2010-01-01")];
    chart.labs = vec![lab("h", "4548-4", 7.0, "%", "2020-12-01T08:00:00-05:00")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert!(gap(&summary, "diabetes-hba1c-6m").is_none(), "HbA1c exactly 6 months ago counts");

    chart.labs = vec![lab("h", "4548-4", 7.0, "%", "2020-11-30T23:00:00-05:00")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let found = gap(&summary, "diabetes-hba1c-6m").expect("gap");
    assert_eq!(found.sources, vec!["Condition/dm", "Observation/h"]);
    assert_eq!(found.evidence_window, EvidenceWindow { start: Some("2020-12-01".into()), end: "2021-06-01".into() });
    assert!(found.detail.contains("2020-11-30"));

    chart.labs = vec![];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert_eq!(gap(&summary, "diabetes-hba1c-6m").map(|g| g.sources.clone()), Some(vec!["Condition/dm".to_owned()]));
}

#[test]
fn icd10_diabetes_codes_count() {
    let mut chart = empty_chart(patient("1990-01-01"));
    chart.conditions =
        vec![condition("e11", "http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "Type 2 diabetes", "2010", "confirmed")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert!(gap(&summary, "diabetes-hba1c-6m").is_some());
    assert_eq!(summary.problems[0].onset.as_deref(), Some("2010"));

    chart.conditions =
        vec![condition("e13", "http://hl7.org/fhir/sid/icd-10-cm", "E13.9", "Other", "2010", "confirmed")];
    assert!(gap(&summarize(&chart, date!(2021 - 06 - 01)), "diabetes-hba1c-6m").is_none());
}

#[test]
fn bp_gap_is_strictly_above_140_over_90() {
    let as_of = date!(2021 - 06 - 01);
    let fires = |systolic: f64, diastolic: f64| {
        let mut chart = empty_chart(patient("1990-01-01"));
        chart.vitals = vec![bp("bp", systolic, diastolic, "2021-05-01"), bp("older", 180.0, 110.0, "2020-05-01")];
        gap(&summarize(&chart, as_of), "bp-above-140-90").map(|g| g.sources.clone())
    };
    assert_eq!(fires(140.0, 90.0), None);
    assert_eq!(fires(141.0, 90.0), Some(vec!["Observation/bp".to_owned()]));
    assert_eq!(fires(140.0, 91.0), Some(vec!["Observation/bp".to_owned()]));
    assert_eq!(fires(120.0, 80.0), None);
}

#[test]
fn latest_vitals_are_picked_by_date() {
    let mut chart = empty_chart(patient("1990-01-01"));
    let bmi: Observation = parse(json!({
        "resourceType": "Observation", "id": "bmi", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}]},
        "effectiveDateTime": "2021-01-01", "valueQuantity": {"value": 27.36, "unit": "kg/m2"}
    }));
    chart.vitals = vec![bp("b1", 120.0, 80.0, "2020-01-01"), bp("b2", 130.0, 85.0, "2021-01-01"), bmi];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let pressure = summary.vitals.blood_pressure.as_ref().expect("bp");
    assert_eq!((pressure.systolic, pressure.diastolic, pressure.source.as_str()), (130.0, 85.0, "Observation/b2"));
    assert_eq!(summary.vitals.bmi.as_ref().map(|m| m.value), Some(27.36));
    assert!(summary.vitals.body_weight.is_none());
    assert!(render_text(&summary).contains("BMI 27.4 kg/m2 (2021-01-01)"));
}

#[test]
fn influenza_season_starts_on_aug_1() {
    let fires = |given: &str, as_of: time::Date| {
        let mut chart = empty_chart(patient("1990-01-01"));
        chart.immunizations = vec![vaccine("flu", "140", given, "completed")];
        gap(&summarize(&chart, as_of), "influenza-this-season").is_some()
    };
    // On Jul 31 the season began the previous Aug 1.
    assert!(!fires("2020-08-01T09:00:00+00:00", date!(2021 - 07 - 31)));
    assert!(fires("2020-07-31T09:00:00+00:00", date!(2021 - 07 - 31)));
    // On Aug 1 a new season begins; last season's shot no longer covers it.
    assert!(fires("2021-07-31T09:00:00+00:00", date!(2021 - 08 - 01)));
    assert!(!fires("2021-08-01T09:00:00+00:00", date!(2021 - 08 - 01)));
    // A non-influenza vaccine or a not-done one does not count.
    let mut chart = empty_chart(patient("1990-01-01"));
    chart.immunizations =
        vec![vaccine("td", "113", "2021-01-01", "completed"), vaccine("nd", "140", "2021-01-01", "not-done")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let found = gap(&summary, "influenza-this-season").expect("gap");
    assert_eq!(found.evidence_window.start.as_deref(), Some("2020-08-01"));
    assert_eq!(found.sources, vec!["Patient/p1"]);
}

#[test]
fn colorectal_gap_for_ages_45_to_75_without_screening() {
    let as_of = date!(2021 - 06 - 01);
    let fires = |birth: &str, screened: bool| {
        let mut chart = empty_chart(patient(birth));
        if screened {
            chart.screenings = vec![colonoscopy("col", "2015-03-03T10:00:00+00:00")];
        }
        gap(&summarize(&chart, as_of), "colorectal-screening-45-75").is_some()
    };
    assert!(fires("1976-06-01", false), "45 today");
    assert!(!fires("1976-06-02", false), "44, turns 45 tomorrow");
    assert!(fires("1945-06-02", false), "75");
    assert!(!fires("1945-06-01", false), "76 today");
    assert!(!fires("1960-01-01", true));
    // A screening after as_of is not yet on record.
    let mut chart = empty_chart(patient("1960-01-01"));
    chart.screenings = vec![colonoscopy("later", "2022-01-01T10:00:00+00:00")];
    assert!(gap(&summarize(&chart, as_of), "colorectal-screening-45-75").is_some());
}

#[test]
fn deceased_patient_has_no_care_gaps_and_age_at_death() {
    let dead: Patient = parse(json!({
        "resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1915-07-03",
        "deceasedDateTime": "1996-01-21T19:20:06+00:00"
    }));
    let mut chart = empty_chart(dead);
    chart.conditions = vec![diabetes("dm", "1990-01-01")];
    chart.vitals = vec![bp("bp", 190.0, 120.0, "1995-01-01")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert!(summary.care_gaps.is_empty());
    assert!(summary.patient.deceased);
    assert_eq!(summary.patient.age_years, Some(80));
    assert!(summary.notes.iter().any(|n| n.contains("deceased")));
    assert!(render_text(&summary).contains("deceased"));

    let flagged: Patient =
        parse(json!({"resourceType": "Patient", "id": "p2", "birthDate": "1950-01-01", "deceasedBoolean": true}));
    let summary = summarize(&empty_chart(flagged), date!(2021 - 06 - 01));
    assert!(summary.care_gaps.is_empty());
    assert_eq!(summary.patient.age_years, None);
}

#[test]
fn no_phi_leaves_the_summary() {
    let canary: Patient = parse(json!({
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1969-08-23",
        "name": [{"family": "CANARY-FAMILY", "given": ["CANARY-GIVEN"]}],
        "telecom": [{"system": "phone", "value": "555-CANARY"}],
        "identifier": [{"system": "urn:mrn", "value": "MRN-CANARY"}],
        "address": [{"line": ["1 CANARY Street"], "city": "CANARYVILLE"}]
    }));
    let mut chart = empty_chart(canary);
    chart.conditions = vec![diabetes("dm", "2010-01-01")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let json = serde_json::to_string(&summary).expect("serializes");
    let text = render_text(&summary);
    let sentences = serde_json::to_string(&statements(&summary)).expect("serializes");
    for output in [&json, &text, &sentences] {
        assert!(!output.to_uppercase().contains("CANARY"), "{output}");
        assert!(!output.contains("1969-08-23"), "birth date leaked: {output}");
    }
    let value: Value = serde_json::from_str(&json).expect("json");
    let patient_keys: Vec<&str> = value["patient"].as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(patient_keys.len(), 4);
    for key in ["reference", "age_years", "sex", "deceased"] {
        assert!(patient_keys.contains(&key));
    }
    assert_eq!(value["patient"]["reference"], "Patient/p1");
    assert_eq!(value["patient"]["age_years"], 51);
    assert_eq!(value["as_of"], "2021-06-01");
    assert_eq!(value["care_gaps"][0]["rule_id"], "diabetes-hba1c-6m");
    assert!(value["care_gaps"][0]["evidence_window"].is_object());
}

#[test]
fn medications_allergies_vaccines_and_encounters() {
    let mut chart = empty_chart(patient("1990-01-01"));
    let med = |id: &str, code: &str, display: &str, authored: &str, status: &str| -> MedicationRequest {
        parse(json!({
            "resourceType": "MedicationRequest", "id": id, "status": status, "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}], "text": display},
            "subject": {"reference": "Patient/p1"}, "authoredOn": authored,
            "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1}}]}]
        }))
    };
    chart.medications = vec![
        med("m1", "860975", "metformin 500 MG", "2019-01-01", "active"),
        med("m2", "860975", "metformin 500 MG Oral Tablet", "2020-01-01", "active"),
        med("m3", "314076", "lisinopril 10 MG", "2020-01-01", "stopped"),
        med("m4", "197361", "Amlodipine 5 MG", "2018-01-01", "active"),
    ];
    let allergy = |id: &str, clinical: &str, criticality: &str| -> AllergyIntolerance {
        parse(json!({
            "resourceType": "AllergyIntolerance", "id": id, "criticality": criticality,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": clinical}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": id, "display": format!("Allergy {id}")}]},
            "patient": {"reference": "Patient/p1"}
        }))
    };
    chart.allergies = vec![
        allergy("a-low", "active", "low"),
        allergy("a-high", "active", "high"),
        allergy("a-old", "resolved", "high"),
    ];
    chart.immunizations = vec![
        vaccine("f1", "140", "2019-10-01", "completed"),
        vaccine("f2", "140", "2020-10-01", "completed"),
        vaccine("td", "113", "2015-01-01", "completed"),
    ];
    chart.encounters = (1..=7)
        .map(|month| {
            parse(json!({
                "resourceType": "Encounter", "id": format!("e{month}"), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "type": [{"text": "Check up"}],
                "period": {"start": format!("2021-0{month}-01T09:00:00+00:00")}
            }))
        })
        .collect::<Vec<Encounter>>();
    let summary = summarize(&chart, date!(2021 - 06 - 15));

    let meds: Vec<(&str, &[String])> =
        summary.medications.iter().map(|m| (m.display.as_str(), m.sources.as_slice())).collect();
    assert_eq!(meds.len(), 2);
    assert_eq!(meds[0].0, "Amlodipine 5 MG");
    assert_eq!(
        meds[1],
        ("metformin 500 MG Oral Tablet", &["MedicationRequest/m1".to_owned(), "MedicationRequest/m2".to_owned()][..])
    );
    assert_eq!(summary.medications[1].dosage.as_deref(), Some("1 dose, 2 times every 1 d"));
    assert_eq!(summary.medications[1].authored_on.as_deref(), Some("2020-01-01"));

    let allergies: Vec<&str> = summary.allergies.iter().map(|a| a.sources[0].as_str()).collect();
    assert_eq!(allergies, vec!["AllergyIntolerance/a-high", "AllergyIntolerance/a-low"]);

    let vaccines: Vec<(&str, &str)> =
        summary.immunizations.iter().map(|i| (i.source.as_str(), i.date.as_str())).collect();
    assert_eq!(vaccines, vec![("Immunization/f2", "2020-10-01"), ("Immunization/td", "2015-01-01")]);

    // July's encounter is after as_of; the five newest before it remain, newest first.
    let encounters: Vec<&str> = summary.recent_encounters.iter().map(|e| e.source.as_str()).collect();
    assert_eq!(encounters, vec!["Encounter/e6", "Encounter/e5", "Encounter/e4", "Encounter/e3", "Encounter/e2"]);
    assert_eq!(summary.recent_encounters[0].class_code.as_deref(), Some("AMB"));
    assert_eq!(summary.recent_encounters[0].type_display.as_deref(), Some("Check up"));
    assert!(gap(&summary, "influenza-this-season").is_none());
    assert_eq!(gap_ids(&summary), Vec::<&str>::new());
}

#[test]
fn statements_cite_every_fact() {
    let mut chart = empty_chart(patient("1960-03-01"));
    chart.conditions = vec![diabetes("dm", "2010-01-01")];
    chart.labs = vec![lab("h1", "4548-4", 7.04, "%", "2020-01-01"), lab("h2", "4548-4", 6.96, "%", "2021-01-01")];
    chart.vitals = vec![bp("bp", 150.4, 85.6, "2021-05-01")];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let said = statements(&summary);
    assert!(said.iter().all(|s| !s.sources.is_empty() && !s.text.is_empty()), "{said:?}");
    assert!(said.iter().any(|s| s.text == "HbA1c was 7.0 % on 2021-01-01, stable from 7.0 % on 2020-01-01"));
    assert!(said.iter().any(|s| s.text.contains("150/86 mmHg")));
    assert_eq!(said[0].text, "the patient is a 61-year-old female");
    let text = render_text(&summary);
    assert!(text.contains("BP 150/86 mm[Hg] (2021-05-01)"), "{text}");
    assert!(text.contains("Blood pressure above 140/90"));
    assert_eq!(gap_ids(&summary), vec!["colorectal-screening-45-75", "bp-above-140-90", "influenza-this-season"]);
}

#[test]
fn uncitable_resources_are_skipped_and_counted() {
    let mut chart = empty_chart(parse(json!({"resourceType": "Patient", "birthDate": "1980-01-01"})));
    let mut anonymous = diabetes("x", "2010-01-01");
    anonymous.id = None;
    chart.conditions = vec![anonymous];
    let mut flu = vaccine("y", "140", "2021-01-01", "completed");
    flu.id = None;
    chart.immunizations = vec![flu];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    assert!(summary.problems.is_empty());
    assert!(summary.immunizations.is_empty());
    assert_eq!(summary.counts.uncitable, 3);
    assert_eq!(summary.patient.reference, "");
    assert!(gap(&summary, "diabetes-hba1c-6m").is_none());
    // The flu shot cannot be cited, so it cannot close the gap either.
    assert!(gap(&summary, "influenza-this-season").is_some_and(|g| g.sources.is_empty()));
}

#[test]
fn months_before_clamps_the_day() {
    use super::read::{influenza_season_start, months_before};
    assert_eq!(months_before(date!(2021 - 08 - 31), 6), date!(2021 - 02 - 28));
    assert_eq!(months_before(date!(2021 - 03 - 15), 6), date!(2020 - 09 - 15));
    assert_eq!(influenza_season_start(date!(2021 - 07 - 31)), date!(2020 - 08 - 01));
    assert_eq!(influenza_season_start(date!(2021 - 08 - 01)), date!(2021 - 08 - 01));
}

#[test]
fn duplicate_results_at_the_same_instant_are_not_a_trend() {
    let mut chart = empty_chart(patient("1970-01-01"));
    chart.labs = vec![
        lab("dup-a", "38483-4", 0.9, "mg/dL", "2020-06-01T10:00:00+00:00"),
        lab("dup-b", "38483-4", 0.9, "mg/dL", "2020-06-01T10:00:00+00:00"),
        lab("older", "38483-4", 1.2, "mg/dL", "2019-06-01T10:00:00+00:00"),
    ];
    let summary = summarize(&chart, date!(2021 - 06 - 01));
    let creatinine = &summary.labs[0];
    assert_eq!(creatinine.latest.source, "Observation/dup-b", "greater id wins a tie");
    assert_eq!(creatinine.previous.as_ref().map(|p| p.source.as_str()), Some("Observation/older"));
    assert_eq!(creatinine.trend, Trend::Down);
}
