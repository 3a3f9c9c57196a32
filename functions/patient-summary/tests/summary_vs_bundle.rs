//! Independent reading check: the summary of real Synthea bundles against facts read straight from the
//! bundle JSON with plain `serde_json::Value` navigation, never through the summary module's code.
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a missing bundle or bad parse must fail the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use patient_summary::summary::{
    COLORECTAL_SCREENING_CODES, ChartExtract, LAB_CODES, PatientSummary, VITAL_CODES, summarize,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::fhir::model::{
    AllergyIntolerance, Condition, Encounter, Immunization, MedicationRequest, Observation, Patient, Procedure,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::date;

const AS_OF: time::Date = date!(2021 - 06 - 01);
const AS_OF_TEXT: &str = "2021-06-01";
/// Six calendar months before AS_OF, worked out by hand.
const HBA1C_WINDOW_START: &str = "2020-12-01";
/// AS_OF is after Aug 1 2020 and before Aug 1 2021.
const FLU_SEASON_START: &str = "2020-08-01";

const FLETCHER: &str = "Fletcher_Hyatt_fe0562b5-f517-4951-8366-32fdab088930.json";
const ESTRELLA: &str = "Estrella_Daugherty_ecc5586f-45d1-4fb2-bb4c-3fce1b7b4456.json";
const TWYLA: &str = "Twyla_Moen_a3f60302-e902-468f-a683-6373d24fc4fd.json";
const STERLING: &str = "Sterling_Rohan_9024267e-3652-4b13-b625-5630bc6d3da4.json";

fn synthea_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fhir/synthea")
}

fn bundle_files() -> Vec<PathBuf> {
    let dir = synthea_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("the Synthea bundles must be at {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn resources(file: &str) -> Vec<Value> {
    let path = synthea_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let bundle: Value = serde_json::from_str(&text).expect("bundle is JSON");
    bundle["entry"].as_array().expect("bundle has entries").iter().map(|e| e["resource"].clone()).collect()
}

fn of_type<'a>(all: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    all.iter().filter(move |r| r["resourceType"] == kind)
}

fn codings(concept: &Value) -> impl Iterator<Item = (&str, &str)> {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["system"].as_str()?, c["code"].as_str()?)))
}

fn has_loinc(concept: &Value, wanted: &[&str]) -> bool {
    codings(concept).any(|(system, code)| system == "http://loinc.org" && wanted.contains(&code))
}

fn has_category(resource: &Value, category: &str) -> bool {
    resource["category"].as_array().into_iter().flatten().any(|c| codings(c).any(|(_, code)| code == category))
}

fn instant(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("instant {text}: {e}"))
}

fn parse_all<T: DeserializeOwned>(values: impl Iterator<Item = Value>) -> Vec<T> {
    values.map(|v| serde_json::from_value::<T>(v).expect("the FHIR model reads it")).collect()
}

/// The chart as the handler's FHIR searches would return it.
fn extract(all: &[Value]) -> ChartExtract {
    let patient = of_type(all, "Patient").next().expect("bundle has a Patient").clone();
    let conditions =
        of_type(all, "Condition").filter(|c| codings(&c["clinicalStatus"]).any(|(_, code)| code == "active"));
    let medications = of_type(all, "MedicationRequest").filter(|m| m["status"] == "active");
    let labs =
        of_type(all, "Observation").filter(|o| has_category(o, "laboratory") && has_loinc(&o["code"], LAB_CODES));
    let vitals =
        of_type(all, "Observation").filter(|o| has_category(o, "vital-signs") && has_loinc(&o["code"], VITAL_CODES));
    let mut encounters: Vec<&Value> = of_type(all, "Encounter").collect();
    encounters.sort_by_key(|e| std::cmp::Reverse(instant(e["period"]["start"].as_str().expect("start"))));
    let screenings = of_type(all, "Procedure")
        .filter(|p| codings(&p["code"]).any(|(system, code)| COLORECTAL_SCREENING_CODES.contains(&(system, code))));
    ChartExtract {
        patient: serde_json::from_value::<Patient>(patient).expect("Patient parses"),
        conditions: parse_all::<Condition>(conditions.cloned()),
        medications: parse_all::<MedicationRequest>(medications.cloned()),
        allergies: parse_all::<AllergyIntolerance>(of_type(all, "AllergyIntolerance").cloned()),
        labs: parse_all::<Observation>(labs.cloned()),
        vitals: parse_all::<Observation>(vitals.cloned()),
        immunizations: parse_all::<Immunization>(of_type(all, "Immunization").cloned()),
        encounters: parse_all::<Encounter>(encounters.into_iter().take(10).cloned()),
        screenings: parse_all::<Procedure>(screenings.cloned()),
    }
}

/// `(value, unit, date, id)` of one numeric result.
type Reading = (f64, String, String, String);

/// Numeric results of the given LOINC codes dated by AS_OF, newest first.
fn readings(all: &[Value], codes: &[&str], category: &str) -> Vec<(OffsetDateTime, Reading)> {
    let mut found: Vec<(OffsetDateTime, Reading)> = of_type(all, "Observation")
        .filter(|o| has_category(o, category) && has_loinc(&o["code"], codes))
        .filter_map(|o| {
            let at = o["effectiveDateTime"].as_str()?;
            let value = o["valueQuantity"]["value"].as_f64()?;
            let unit = o["valueQuantity"]["unit"].as_str().unwrap_or_default().to_owned();
            let id = o["id"].as_str()?.to_owned();
            Some((instant(at), (value, unit, at[..10].to_owned(), id)))
        })
        .filter(|(_, (_, _, day, _))| day.as_str() <= AS_OF_TEXT)
        .collect();
    // Same instant (a panel filed twice): the greater id is the latest, the summary's documented tie rule.
    found.sort_by(|a, b| (b.0, &b.1.3).cmp(&(a.0, &a.1.3)));
    found
}

fn latest_two(all: &[Value], codes: &[&str]) -> Option<(Reading, Option<Reading>)> {
    let found = readings(all, codes, "laboratory");
    let (_, latest) = found.first()?.clone();
    let latest_at = found.first()?.0;
    let previous = found.iter().find(|(at, r)| *at < latest_at && r.1 == latest.1).map(|(_, r)| r.clone());
    Some((latest, previous))
}

fn age(birth: &str, on: &str) -> u32 {
    let number = |s: &str| s.parse::<i32>().expect("number");
    let (by, bm, bd) = (number(&birth[..4]), number(&birth[5..7]), number(&birth[8..10]));
    let (y, m, d) = (number(&on[..4]), number(&on[5..7]), number(&on[8..10]));
    let years = y - by - i32::from((m, d) < (bm, bd));
    u32::try_from(years).expect("non-negative age")
}

struct Expected {
    reference: String,
    deceased: bool,
    age: u32,
    problems: BTreeSet<(String, String)>,
    medications: BTreeSet<(String, String)>,
    labs: BTreeMap<&'static str, Option<(Reading, Option<Reading>)>>,
    bp: Option<(f64, f64, String, String)>,
    bmi: Option<Reading>,
    weight: Option<Reading>,
    gaps: BTreeSet<&'static str>,
}

fn expected(all: &[Value]) -> Expected {
    let patient = of_type(all, "Patient").next().expect("Patient");
    let death = patient["deceasedDateTime"].as_str().map(|d| d[..10].to_owned());
    let deceased = death.is_some() || patient["deceasedBoolean"] == true;
    let birth = patient["birthDate"].as_str().expect("birthDate");
    let age_on = death.clone().filter(|d| d.as_str() < AS_OF_TEXT).unwrap_or_else(|| AS_OF_TEXT.to_owned());
    let age = age(birth, &age_on);

    let active_conditions: Vec<&Value> = of_type(all, "Condition")
        .filter(|c| c["clinicalStatus"]["coding"][0]["code"] == "active")
        .filter(|c| {
            !matches!(c["verificationStatus"]["coding"][0]["code"].as_str(), Some("refuted" | "entered-in-error"))
        })
        .collect();
    let coding_pair = |concept: &Value| {
        let coding = &concept["coding"][0];
        (coding["system"].as_str().expect("system").to_owned(), coding["code"].as_str().expect("code").to_owned())
    };
    let problems = active_conditions.iter().map(|c| coding_pair(&c["code"])).collect();
    let medications = of_type(all, "MedicationRequest")
        .filter(|m| m["status"] == "active")
        .map(|m| coding_pair(&m["medicationCodeableConcept"]))
        .collect();

    let mut labs = BTreeMap::new();
    labs.insert("HbA1c", latest_two(all, &["4548-4"]));
    labs.insert("Creatinine", latest_two(all, &["2160-0", "38483-4"]));
    labs.insert("Glucose", latest_two(all, &["2339-0", "2345-7"]));

    let mut pressures: Vec<(OffsetDateTime, (f64, f64, String, String))> = of_type(all, "Observation")
        .filter(|o| has_loinc(&o["code"], &["55284-4", "85354-9"]))
        .filter_map(|o| {
            let at = o["effectiveDateTime"].as_str()?;
            let component = |code: &str| {
                o["component"].as_array()?.iter().find(|c| has_loinc(&c["code"], &[code]))?["valueQuantity"]["value"]
                    .as_f64()
            };
            Some((
                instant(at),
                (component("8480-6")?, component("8462-4")?, at[..10].to_owned(), o["id"].as_str()?.to_owned()),
            ))
        })
        .filter(|(_, bp)| bp.2.as_str() <= AS_OF_TEXT)
        .collect();
    pressures.sort_by(|a, b| (b.0, &b.1.3).cmp(&(a.0, &a.1.3)));
    let bp = pressures.first().map(|(_, bp)| bp.clone());
    let bmi = readings(all, &["39156-5"], "vital-signs").first().map(|(_, r)| r.clone());
    let weight = readings(all, &["29463-7"], "vital-signs").first().map(|(_, r)| r.clone());

    let mut gaps = BTreeSet::new();
    if !deceased {
        let diabetic = active_conditions.iter().any(|c| {
            codings(&c["code"]).any(|(system, code)| {
                (system == "http://snomed.info/sct" && (code == "44054006" || code == "46635009"))
                    || (system.starts_with("http://hl7.org/fhir/sid/icd-10")
                        && (code.starts_with("E10") || code.starts_with("E11")))
            })
        });
        let recent_hba1c =
            readings(all, &["4548-4"], "laboratory").iter().any(|(_, r)| r.2.as_str() >= HBA1C_WINDOW_START);
        if diabetic && !recent_hba1c {
            gaps.insert("diabetes-hba1c-6m");
        }
        let screened = of_type(all, "Procedure").any(|p| {
            p["status"] == "completed"
                && codings(&p["code"]).any(|(system, code)| system == "http://snomed.info/sct" && code == "73761001")
                && p["performedPeriod"]["start"]
                    .as_str()
                    .or(p["performedDateTime"].as_str())
                    .is_none_or(|d| &d[..10] <= AS_OF_TEXT)
        });
        if (45..=75).contains(&age) && !screened {
            gaps.insert("colorectal-screening-45-75");
        }
        if bp.as_ref().is_some_and(|(systolic, diastolic, _, _)| *systolic > 140.0 || *diastolic > 90.0) {
            gaps.insert("bp-above-140-90");
        }
        let flu_cvx = [
            "140", "141", "150", "155", "158", "161", "166", "168", "171", "185", "186", "197", "205", "88", "111",
            "135", "144", "149", "151", "153",
        ];
        let flu_this_season = of_type(all, "Immunization").any(|i| {
            let day = &i["occurrenceDateTime"].as_str().unwrap_or("0000-00-00")[..10];
            i["status"] == "completed"
                && codings(&i["vaccineCode"]).any(|(_, code)| flu_cvx.contains(&code))
                && (FLU_SEASON_START..=AS_OF_TEXT).contains(&day)
        });
        if !flu_this_season {
            gaps.insert("influenza-this-season");
        }
    }

    Expected {
        reference: format!("Patient/{}", patient["id"].as_str().expect("id")),
        deceased,
        age,
        problems,
        medications,
        labs,
        bp,
        bmi,
        weight,
        gaps,
    }
}

fn check(file: &str) -> (PatientSummary, Expected) {
    let all = resources(file);
    let summary = summarize(&extract(&all), AS_OF);
    let want = expected(&all);

    assert_eq!(summary.as_of, AS_OF_TEXT);
    assert_eq!(summary.patient.reference, want.reference, "{file}");
    assert_eq!(summary.patient.deceased, want.deceased, "{file}");
    assert_eq!(summary.patient.age_years, Some(want.age), "{file}");

    let problems: BTreeSet<(String, String)> =
        summary.problems.iter().map(|p| (p.code.system.clone(), p.code.code.clone())).collect();
    assert_eq!(problems, want.problems, "{file}: active problem codes");
    let medications: BTreeSet<(String, String)> = summary
        .medications
        .iter()
        .filter_map(|m| m.code.as_ref().map(|c| (c.system.clone(), c.code.clone())))
        .collect();
    assert_eq!(medications, want.medications, "{file}: active medication codes");

    for (name, expected_lab) in &want.labs {
        let got = summary.labs.iter().find(|l| l.name == *name);
        match (got, expected_lab) {
            (None, None) => {}
            (Some(lab), Some((latest, previous))) => {
                let as_reading = |r: &patient_summary::summary::LabResult| {
                    (r.value, r.unit.clone().unwrap_or_default(), r.date.clone(), r.source.clone())
                };
                let cited = |r: &Reading| (r.0, r.1.clone(), r.2.clone(), format!("Observation/{}", r.3));
                assert_eq!(as_reading(&lab.latest), cited(latest), "{file}: latest {name}");
                assert_eq!(
                    lab.previous.as_ref().map(as_reading),
                    previous.as_ref().map(cited),
                    "{file}: previous {name}"
                );
            }
            (got, want) => panic!("{file}: {name} got {got:?}, expected {want:?}"),
        }
    }

    let bp = summary
        .vitals
        .blood_pressure
        .as_ref()
        .map(|bp| (bp.systolic, bp.diastolic, bp.date.clone(), bp.source.clone()));
    let want_bp = want.bp.as_ref().map(|(s, d, day, id)| (*s, *d, day.clone(), format!("Observation/{id}")));
    assert_eq!(bp, want_bp, "{file}: latest blood pressure");
    let measurement = |m: Option<&patient_summary::summary::Measurement>| {
        m.map(|m| (m.value, m.unit.clone().unwrap_or_default(), m.date.clone(), m.source.clone()))
    };
    let cited = |r: Option<&Reading>| r.map(|r| (r.0, r.1.clone(), r.2.clone(), format!("Observation/{}", r.3)));
    assert_eq!(measurement(summary.vitals.bmi.as_ref()), cited(want.bmi.as_ref()), "{file}: latest BMI");
    assert_eq!(measurement(summary.vitals.body_weight.as_ref()), cited(want.weight.as_ref()), "{file}: latest weight");

    let gaps: BTreeSet<&str> = summary.care_gaps.iter().map(|g| g.rule_id.as_str()).collect();
    let want_gaps: BTreeSet<&str> = want.gaps.iter().copied().collect();
    assert_eq!(gaps, want_gaps, "{file}: care gaps");
    for gap in &summary.care_gaps {
        assert!(!gap.sources.is_empty(), "{file}: {} cites nothing", gap.rule_id);
    }
    (summary, want)
}

#[test]
fn fletcher_hyatt_deceased_largest_bundle() {
    let (summary, want) = check(FLETCHER);
    assert!(want.deceased && summary.patient.deceased);
    assert_eq!(summary.patient.age_years, Some(80), "born 1915-07-03, died 1996-01-21");
    assert!(summary.care_gaps.is_empty());
    assert!(summary.notes.iter().any(|n| n.contains("deceased")));
}

#[test]
fn estrella_daugherty_living_diabetic() {
    let (summary, want) = check(ESTRELLA);
    // Synthetic data and no names by contract: the card is safe to show in test output for review.
    eprintln!("{}", patient_summary::summary::render_text(&summary));
    assert!(!want.deceased);
    assert!(summary.problems.iter().any(|p| p.code.code == "44054006"));
    let gap = summary.care_gaps.iter().find(|g| g.rule_id == "diabetes-hba1c-6m").expect("no HbA1c since 2020-06");
    assert!(gap.sources.iter().any(|s| s.starts_with("Condition/")));
    assert!(gap.sources.iter().any(|s| s.starts_with("Observation/")), "cites the last HbA1c");
    assert!(summary.labs.iter().any(|l| l.name == "HbA1c" && l.previous.is_some()));
}

#[test]
fn twyla_moen_living_diabetic() {
    let (summary, _) = check(TWYLA);
    assert!(summary.problems.iter().any(|p| p.code.code == "44054006"));
    assert!(summary.care_gaps.iter().any(|g| g.rule_id == "diabetes-hba1c-6m"));
}

#[test]
fn sterling_rohan() {
    check(STERLING);
}

#[test]
fn every_bundle_matches_the_independent_reading() {
    let files = bundle_files();
    assert_eq!(files.len(), 25, "expected the 25 shared Synthea bundles");
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("file name");
        let (summary, _) = check(name);
        for gap in &summary.care_gaps {
            *fired.entry(gap.rule_id.clone()).or_default() += 1;
        }
    }
    eprintln!("care gaps fired across {} bundles as of {AS_OF_TEXT}: {fired:?}", files.len());
}

#[test]
fn every_read_resource_parses_in_all_bundles() {
    let files = bundle_files();
    assert_eq!(files.len(), 25, "expected the 25 shared Synthea bundles");
    let kinds = [
        "Patient",
        "Condition",
        "MedicationRequest",
        "AllergyIntolerance",
        "Observation",
        "Immunization",
        "Encounter",
        "Procedure",
    ];
    let mut present: BTreeMap<&str, usize> = BTreeMap::new();
    let mut parsed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("file name");
        for resource in resources(name) {
            let Some(kind) = kinds.iter().copied().find(|k| resource["resourceType"] == *k) else {
                continue;
            };
            *present.entry(kind).or_default() += 1;
            let id = resource["id"].as_str().unwrap_or("?").to_owned();
            let ok = match kind {
                "Patient" => serde_json::from_value::<Patient>(resource).map(drop),
                "Condition" => serde_json::from_value::<Condition>(resource).map(drop),
                "MedicationRequest" => serde_json::from_value::<MedicationRequest>(resource).map(drop),
                "AllergyIntolerance" => serde_json::from_value::<AllergyIntolerance>(resource).map(drop),
                "Observation" => serde_json::from_value::<Observation>(resource).map(drop),
                "Immunization" => serde_json::from_value::<Immunization>(resource).map(drop),
                "Encounter" => serde_json::from_value::<Encounter>(resource).map(drop),
                _ => serde_json::from_value::<Procedure>(resource).map(drop),
            };
            match ok {
                Ok(()) => *parsed.entry(kind).or_default() += 1,
                Err(e) => failures.push(format!("{name}: {kind}/{id}: {e}")),
            }
        }
    }
    eprintln!("parsed per type: {parsed:?}");
    assert!(failures.is_empty(), "{} failed to parse:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(parsed, present);
    assert_eq!(present.len(), kinds.len(), "every type occurs at least once");
    assert_eq!(parsed.values().sum::<usize>(), present.values().sum::<usize>());
}
