//! Shared test helpers: the synthetic payer policies and Synthea bundles from `../shared`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]
#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use std::collections::HashMap;

use serde_json::Value;

pub const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

pub fn policy_document(policy_id: &str) -> String {
    let dir = format!("{SHARED}/payer-policies");
    let entry = std::fs::read_dir(&dir)
        .expect("../shared/payer-policies beside the repo")
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(policy_id))
        .unwrap_or_else(|| panic!("policy {policy_id} in {dir}"));
    std::fs::read_to_string(entry).unwrap()
}

pub fn bundle_file(name: &str) -> String {
    let dir = format!("{SHARED}/fhir/synthea");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|f| f.starts_with(name) && f.ends_with(".json"))
        .unwrap_or_else(|| panic!("bundle {name}"))
}

pub fn patient_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("{SHARED}/fhir/synthea"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .map(|f| f.rsplitn(2, '_').nth(1).unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A Synthea transaction bundle's resources with `urn:uuid:` references resolved to `Type/id`.
pub fn load_resources(name: &str) -> Vec<Value> {
    let raw = std::fs::read_to_string(format!("{SHARED}/fhir/synthea/{}", bundle_file(name))).unwrap();
    let bundle: Value = serde_json::from_str(&raw).unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    let mut map = HashMap::new();
    for e in entries {
        let r = &e["resource"];
        map.insert(
            e["fullUrl"].as_str().unwrap().to_owned(),
            format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()),
        );
    }
    let mut text = serde_json::to_string(&entries.iter().map(|e| e["resource"].clone()).collect::<Vec<_>>()).unwrap();
    for (urn, reference) in &map {
        text = text.replace(&format!("\"{urn}\""), &format!("\"{reference}\""));
    }
    serde_json::from_str(&text).unwrap()
}

pub fn patient_id(resources: &[Value]) -> String {
    resources.iter().find(|r| r["resourceType"] == "Patient").unwrap()["id"].as_str().unwrap().to_owned()
}
