//! The handler's CPU time excluding I/O: `summarize` + `render_text` on the largest shared bundle.
#![expect(clippy::expect_used, reason = "bench setup: a missing bundle must stop the bench, not be measured")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use patient_summary::summary::{
    COLORECTAL_SCREENING_CODES, ChartExtract, LAB_CODES, VITAL_CODES, render_text, summarize,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::fhir::model::{
    AllergyIntolerance, Condition, Encounter, Immunization, MedicationRequest, Observation, Patient, Procedure,
};
use time::macros::date;

const FLETCHER: &str = "Fletcher_Hyatt_fe0562b5-f517-4951-8366-32fdab088930.json";

fn codings(concept: &Value) -> impl Iterator<Item = (&str, &str)> {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["system"].as_str()?, c["code"].as_str()?)))
}

fn loinc_in(concept: &Value, wanted: &[&str]) -> bool {
    codings(concept).any(|(system, code)| system == "http://loinc.org" && wanted.contains(&code))
}

fn category(resource: &Value, wanted: &str) -> bool {
    resource["category"].as_array().into_iter().flatten().any(|c| codings(c).any(|(_, code)| code == wanted))
}

fn parse<T: DeserializeOwned>(values: Vec<&Value>) -> Vec<T> {
    values.into_iter().map(|v| serde_json::from_value(v.clone()).expect("the FHIR model reads it")).collect()
}

/// The extract the handler's searches would return for Fletcher Hyatt (built once, outside the timing).
fn fletcher() -> ChartExtract {
    let path = format!("{}/../../../shared/fhir/synthea/{FLETCHER}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the shared Synthea bundle is present");
    let bundle: Value = serde_json::from_str(&text).expect("bundle JSON");
    let all: Vec<&Value> = bundle["entry"].as_array().expect("entries").iter().map(|e| &e["resource"]).collect();
    let of = |kind: &str| all.iter().copied().filter(|r| r["resourceType"] == kind).collect::<Vec<_>>();
    let mut encounters = of("Encounter");
    encounters.sort_by(|a, b| b["period"]["start"].as_str().cmp(&a["period"]["start"].as_str()));
    encounters.truncate(10);
    ChartExtract {
        patient: parse::<Patient>(of("Patient")).into_iter().next().expect("a Patient"),
        conditions: parse::<Condition>(
            of("Condition").into_iter().filter(|c| codings(&c["clinicalStatus"]).any(|(_, s)| s == "active")).collect(),
        ),
        medications: parse::<MedicationRequest>(
            of("MedicationRequest").into_iter().filter(|m| m["status"] == "active").collect(),
        ),
        allergies: parse::<AllergyIntolerance>(of("AllergyIntolerance")),
        labs: parse::<Observation>(
            of("Observation")
                .into_iter()
                .filter(|o| category(o, "laboratory") && loinc_in(&o["code"], LAB_CODES))
                .collect(),
        ),
        vitals: parse::<Observation>(
            of("Observation")
                .into_iter()
                .filter(|o| category(o, "vital-signs") && loinc_in(&o["code"], VITAL_CODES))
                .collect(),
        ),
        immunizations: parse::<Immunization>(of("Immunization")),
        encounters: parse::<Encounter>(encounters),
        screenings: parse::<Procedure>(
            of("Procedure")
                .into_iter()
                .filter(|p| codings(&p["code"]).any(|pair| COLORECTAL_SCREENING_CODES.contains(&pair)))
                .collect(),
        ),
    }
}

fn summary_cpu(c: &mut Criterion) {
    let chart = fletcher();
    let as_of = date!(2021 - 06 - 01);
    c.bench_function("summarize+render_text/fletcher_hyatt", |b| {
        b.iter(|| {
            let summary = summarize(black_box(&chart), black_box(as_of));
            black_box(render_text(&summary))
        });
    });
}

criterion_group!(benches, summary_cpu);
criterion_main!(benches);
