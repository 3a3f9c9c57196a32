//! What the Bedrock writer would send for every seeded Synthea patient, captured at the wire with the SDK's
//! mocks: no Converse or ApplyGuardrail request carries the patient's name, MRN, SSN, phone, address, birth
//! date or FHIR reference, and every Converse request carries the Guardrail and the session id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::operation::apply_guardrail::{ApplyGuardrailInput, ApplyGuardrailOutput};
use aws_sdk_bedrockruntime::operation::converse::{ConverseInput, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as OutputBlock, GuardrailAction, GuardrailAssessment,
    GuardrailContentBlock, GuardrailContextualGroundingFilter, GuardrailContextualGroundingFilterType,
    GuardrailContextualGroundingPolicyAction, GuardrailContextualGroundingPolicyAssessment,
    GuardrailConverseContentBlock, Message, StopReason, SystemContentBlock,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use patient_summary::summary::{ChartExtract, statements, summarize};
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::session::{SessionContext, SessionId};
use shared::writer::{ClinicalWriter, Purpose, WritingRequest};
use shared_aws::bedrock::{BedrockModel, Guardrail, ModelId};
use shared_aws::writer::BedrockWriter;

fn synthea_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fhir/synthea")
}

fn parse_all<T: DeserializeOwned>(all: &[Value], kind: &str, keep: impl Fn(&Value) -> bool) -> Vec<T> {
    all.iter()
        .filter(|r| r["resourceType"] == kind && keep(r))
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .collect()
}

fn category(resource: &Value, wanted: &str) -> bool {
    resource["category"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["coding"].as_array().into_iter().flatten().any(|coding| coding["code"] == wanted))
}

/// Everything identifying about the patient, as it appears in the bundle.
fn identifiers(patient: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for name in patient["name"].as_array().into_iter().flatten() {
        out.extend(name["given"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
        out.extend(name["family"].as_str().map(str::to_owned));
    }
    for identifier in patient["identifier"].as_array().into_iter().flatten() {
        out.extend(identifier["value"].as_str().map(str::to_owned));
    }
    for telecom in patient["telecom"].as_array().into_iter().flatten() {
        out.extend(telecom["value"].as_str().map(str::to_owned));
    }
    for address in patient["address"].as_array().into_iter().flatten() {
        out.extend(address["line"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
    }
    out.extend(patient["birthDate"].as_str().map(str::to_owned));
    out.extend(patient["id"].as_str().map(str::to_owned));
    out.retain(|s| s.len() >= 3);
    out
}

fn grounded() -> ApplyGuardrailOutput {
    let filter = |kind| {
        GuardrailContextualGroundingFilter::builder()
            .r#type(kind)
            .threshold(0.8)
            .score(0.95)
            .action(GuardrailContextualGroundingPolicyAction::None)
            .build()
            .unwrap()
    };
    ApplyGuardrailOutput::builder()
        .action(GuardrailAction::None)
        .set_outputs(Some(vec![]))
        .assessments(
            GuardrailAssessment::builder()
                .contextual_grounding_policy(
                    GuardrailContextualGroundingPolicyAssessment::builder()
                        .filters(filter(GuardrailContextualGroundingFilterType::Grounding))
                        .filters(filter(GuardrailContextualGroundingFilterType::Relevance))
                        .build(),
                )
                .build(),
        )
        .build()
        .unwrap()
}

/// The model "rewrites" by echoing its numbered grounding sources, which keeps the sentence count right (the
/// `query` block, the instructions the grounding check reads, is not a source).
fn echo(input: &ConverseInput) -> ConverseOutput {
    let lines: Vec<String> = input.messages()[0]
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::GuardContent(GuardrailConverseContentBlock::Text(t))
                if !t
                    .qualifiers()
                    .contains(&aws_sdk_bedrockruntime::types::GuardrailConverseContentQualifier::Query) =>
            {
                Some(t.text().to_owned())
            }
            _ => None,
        })
        .collect();
    let message = Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text(lines.join("\n")))
        .build()
        .unwrap();
    ConverseOutput::builder().output(OutputBlock::Message(message)).stop_reason(StopReason::EndTurn).build().unwrap()
}

fn converse_text(input: &ConverseInput) -> String {
    let mut out: Vec<String> = input
        .system()
        .iter()
        .filter_map(|b| match b {
            SystemContentBlock::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    for block in input.messages().iter().flat_map(|m| m.content.iter()) {
        match block {
            ContentBlock::Text(t) => out.push(t.clone()),
            ContentBlock::GuardContent(GuardrailConverseContentBlock::Text(t)) => out.push(t.text().to_owned()),
            other => panic!("unexpected block {other:?}"),
        }
    }
    out.join("\n")
}

fn guardrail_text(input: &ApplyGuardrailInput) -> String {
    input
        .content()
        .iter()
        .map(|b| match b {
            GuardrailContentBlock::Text(t) => t.text().to_owned(),
            other => panic!("unexpected block {other:?}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn no_prompt_for_any_seeded_patient_carries_identifiers() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(synthea_dir())
        .expect("the Synthea bundles sit beside the checkout")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "expected the seeded patients, found {}", files.len());

    let mut prompts_checked = 0;
    for file in files {
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let all: Vec<Value> = bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect();
        let patient_json = all.iter().find(|r| r["resourceType"] == "Patient").unwrap().clone();
        let chart = ChartExtract {
            patient: serde_json::from_value(patient_json.clone()).unwrap(),
            conditions: parse_all(&all, "Condition", |_| true),
            medications: parse_all(&all, "MedicationRequest", |_| true),
            allergies: parse_all(&all, "AllergyIntolerance", |_| true),
            labs: parse_all(&all, "Observation", |o| category(o, "laboratory")),
            vitals: parse_all(&all, "Observation", |o| category(o, "vital-signs")),
            immunizations: parse_all(&all, "Immunization", |_| true),
            encounters: parse_all(&all, "Encounter", |_| true),
            screenings: parse_all(&all, "Procedure", |_| true),
        };
        let summary = summarize(&chart, time::macros::date!(2021 - 06 - 01));
        let request = WritingRequest { purpose: Purpose::PreVisitSummary, statements: statements(&summary) };

        let conversed: Arc<Mutex<Vec<ConverseInput>>> = Arc::default();
        let checked: Arc<Mutex<Vec<ApplyGuardrailInput>>> = Arc::default();
        let (c, a) = (conversed.clone(), checked.clone());
        let converse = mock!(Client::converse)
            .match_requests(move |input| {
                c.lock().unwrap().push(input.clone());
                true
            })
            .then_compute_output(echo);
        let apply = mock!(Client::apply_guardrail)
            .match_requests(move |input| {
                a.lock().unwrap().push(input.clone());
                true
            })
            .then_output(grounded);
        let client = mock_client!(aws_sdk_bedrockruntime, RuleMode::MatchAny, &[&converse, &apply]);
        let model = BedrockModel::new(
            client,
            ModelId::parse("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1").unwrap(),
            Guardrail::new("gr-clinical", "1").unwrap(),
        );
        let session = SessionContext::new(
            SessionId::parse("sess-phi-01").unwrap(),
            "req-1",
            Instant::now() + Duration::from_secs(10),
        );
        let narrative = BedrockWriter::new(model).write(&session, &request).await.unwrap();
        assert_eq!(narrative.guardrail_action.as_deref(), Some("none"), "{}", file.display());

        let identifying = identifiers(&patient_json);
        assert!(identifying.len() >= 4, "the bundle's patient has identifiers to look for");
        let converse_inputs = conversed.lock().unwrap().clone();
        let check_inputs = checked.lock().unwrap().clone();
        assert_eq!((converse_inputs.len(), check_inputs.len()), (1, 1));
        let input = &converse_inputs[0];
        assert!(input.guardrail_config().is_some());
        assert_eq!(input.request_metadata().and_then(|m| m.get("session_id")).map(String::as_str), Some("sess-phi-01"));
        for text in [converse_text(input), guardrail_text(&check_inputs[0])] {
            for value in &identifying {
                assert!(!text.contains(value.as_str()), "{} leaks `{value}` into a prompt", file.display());
            }
            assert!(!text.contains("Patient/"), "FHIR references are citations, not prompt text");
            prompts_checked += 1;
        }
    }
    assert!(prompts_checked >= 40);
}
