//! The policy tests kept as data in `policies/tests/` (the shape of the cedar CLI's `run-tests` files:
//! name, request, entities, decision, reason, num_errors), run against the embedded policies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::str::FromStr;

use cedar_policy::{Entities, EntityUid};
use serde::Deserialize;
use shared::authz::Authorizer;
use shared::fhir::FhirId;
use shared::identity::{Principal, Role};
use shared::tool::Resource;

const TENANT: &str = "org-synthea-ma";

#[derive(Deserialize)]
struct Case {
    name: String,
    request: CaseRequest,
    entities: serde_json::Value,
    decision: String,
    reason: Vec<String>,
    num_errors: usize,
}

#[derive(Deserialize)]
struct CaseRequest {
    principal: String,
    action: String,
    resource: String,
    context: serde_json::Value,
}

fn split_uid(raw: &str) -> (String, String) {
    let uid = EntityUid::from_str(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    (uid.type_name().to_string(), uid.id().unescaped().to_owned())
}

#[test]
fn policy_tests_as_data() {
    let authorizer = Authorizer::embedded().expect("embedded policies validate");
    let dir = format!("{}/../policies/tests", env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let file = file.unwrap().path();
        let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for case in cases {
            let entities = Entities::from_json_value(case.entities, Some(authorizer.schema())).unwrap();
            let (_, action) = split_uid(&case.request.action);
            let (resource_type, resource_id) = split_uid(&case.request.resource);
            let principal = EntityUid::from_str(&case.request.principal).unwrap();
            let decision = authorizer.decide_with(
                principal,
                &action,
                (&resource_type, &resource_id),
                case.request.context,
                &entities,
            );
            let expected_allow = case.decision == "allow";
            assert_eq!(decision.allowed, expected_allow, "{}: decision", case.name);
            let mut got = decision.policies.clone();
            got.sort();
            let mut want = case.reason.clone();
            want.sort();
            assert_eq!(got, want, "{}: determining policies", case.name);
            assert_eq!(decision.errors, case.num_errors, "{}: errors", case.name);
            ran += 1;
        }
    }
    assert!(ran >= 8, "only {ran} policy cases found in {dir}");
}

#[test]
fn principal_mapping_gives_the_same_decisions() {
    let authorizer = Authorizer::embedded().unwrap();
    let principal = |roles: &[Role]| Principal {
        subject: "u".into(),
        roles: roles.iter().copied().collect(),
        organization: Some(TENANT.into()),
        practitioner_id: None,
    };
    let ctx = |rel: bool, bg: bool| serde_json::json!({"care_relationship": rel, "break_glass": bg});
    let p1 = FhirId::parse("p1").unwrap();
    let decide = |p: &Principal, rel, bg| {
        authorizer.decide(p, "patient_summary.read", Resource::Patient(&p1), TENANT, ctx(rel, bg))
    };
    assert!(decide(&principal(&[Role::Clinician]), true, false).allowed);
    assert!(!decide(&principal(&[Role::Clinician]), false, false).allowed);
    let glass = decide(&principal(&[Role::Clinician]), false, true);
    assert!(glass.allowed);
    assert_eq!(glass.policies, ["summary.clinician-break-glass"]);
    assert!(!decide(&principal(&[Role::RcmCoder]), true, true).allowed);
}

#[test]
fn a_malformed_context_fails_closed() {
    let authorizer = Authorizer::embedded().unwrap();
    let principal = Principal {
        subject: "u".into(),
        roles: [Role::Clinician].into(),
        organization: Some(TENANT.into()),
        practitioner_id: None,
    };
    let p1 = FhirId::parse("p1").unwrap();
    let decision = authorizer.decide(
        &principal,
        "patient_summary.read",
        Resource::Patient(&p1),
        TENANT,
        serde_json::json!({"care_relationship": "yes"}),
    );
    assert!(!decision.allowed);
    assert!(decision.errors > 0);
}

#[test]
fn invalid_policies_refuse_to_load() {
    let schema = shared::authz::SCHEMA;
    // References an attribute the schema does not declare.
    let bad = r#"@id("x") permit (principal, action == Action::"patient_summary.read", resource) when { principal.salary > 1 };"#;
    assert!(Authorizer::from_sources(schema, bad).is_err());
    assert!(Authorizer::from_sources(schema, "permit (principal, action, resource) when {").is_err());
    // Every policy needs an @id, so audit records can name it.
    assert!(
        Authorizer::from_sources(schema, r#"permit (principal, action == Action::"patient_summary.read", resource);"#)
            .is_err()
    );
}
