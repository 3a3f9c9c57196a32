//! Knowledge Base Retrieve at the wire (SDK mocks): the configured KB id, the query and the metadata
//! filters go out; passages come back with their provenance; throttling ends in "unavailable".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_bedrockagentruntime::Client;
use aws_sdk_bedrockagentruntime::operation::retrieve::{RetrieveInput, RetrieveOutput};
use aws_sdk_bedrockagentruntime::types::{
    KnowledgeBaseRetrievalResult, RetrievalFilter, RetrievalResultContent, RetrievalResultLocation,
    RetrievalResultLocationType, RetrievalResultS3Location,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::Document;
use aws_smithy_types::body::SdkBody;
use shared::knowledge::{KnowledgeBase, KnowledgeError, RetrievalQuery};
use shared::session::{SessionContext, SessionId};
use shared_aws::CallPolicy;
use shared_aws::knowledge::BedrockKnowledgeBase;

fn session() -> SessionContext {
    SessionContext::new(SessionId::parse("sess-kb-1").unwrap(), "req-1", Instant::now() + Duration::from_secs(5))
}

fn kb(client: Client) -> BedrockKnowledgeBase {
    BedrockKnowledgeBase::new(client, "KB12345678").unwrap().with_policy(CallPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        attempt_timeout: Duration::from_secs(2),
    })
}

fn one_result() -> RetrieveOutput {
    let result = KnowledgeBaseRetrievalResult::builder()
        .content(
            RetrievalResultContent::builder()
                .text("MRI lumbar spine requires 6 weeks of conservative therapy.")
                .build(),
        )
        .location(
            RetrievalResultLocation::builder()
                .r#type(RetrievalResultLocationType::S3)
                .s3_location(RetrievalResultS3Location::builder().uri("s3://payer-policies/acme/mri.md").build())
                .build()
                .unwrap(),
        )
        .score(0.82)
        .metadata("payer", Document::String("acme".into()))
        .metadata("page", Document::Number(aws_smithy_types::Number::PosInt(3)))
        .build();
    RetrieveOutput::builder().retrieval_results(result).build().unwrap()
}

fn equals_pairs(filter: &RetrievalFilter) -> Vec<(String, String)> {
    let pair = |f: &aws_sdk_bedrockagentruntime::types::FilterAttribute| match f.value() {
        Document::String(v) => (f.key().to_owned(), v.clone()),
        other => panic!("unexpected filter value {other:?}"),
    };
    match filter {
        RetrievalFilter::Equals(f) => vec![pair(f)],
        RetrievalFilter::AndAll(all) => all.iter().flat_map(equals_pairs).collect(),
        other => panic!("unexpected filter {other:?}"),
    }
}

#[tokio::test]
async fn retrieve_carries_the_kb_id_query_and_filters() {
    let seen: Arc<Mutex<Vec<RetrieveInput>>> = Arc::default();
    let record = seen.clone();
    let rule = mock!(Client::retrieve)
        .match_requests(move |input| {
            record.lock().unwrap().push(input.clone());
            true
        })
        .then_output(one_result);
    let client = mock_client!(aws_sdk_bedrockagentruntime, RuleMode::MatchAny, &[&rule]);
    let query = RetrievalQuery {
        text: "MRI lumbar spine prior authorization criteria".into(),
        max_results: 4,
        filters: vec![("payer".into(), "acme".into()), ("line_of_business".into(), "commercial".into())],
    };
    let passages = kb(client).retrieve(&session(), &query).await.unwrap();
    assert_eq!(passages.len(), 1);
    assert_eq!(passages[0].source, "s3://payer-policies/acme/mri.md");
    assert_eq!(passages[0].metadata.get("payer").map(String::as_str), Some("acme"));
    assert_eq!(passages[0].metadata.get("page").map(String::as_str), Some("3"));
    assert!((passages[0].score - 0.82).abs() < 1e-6);

    let input = seen.lock().unwrap().pop().unwrap();
    assert_eq!(input.knowledge_base_id(), Some("KB12345678"));
    assert_eq!(input.retrieval_query().map(|q| q.text()), Some("MRI lumbar spine prior authorization criteria"));
    let search = input.retrieval_configuration().and_then(|c| c.vector_search_configuration()).unwrap();
    assert_eq!(search.number_of_results(), 4);
    assert_eq!(
        equals_pairs(search.filter().unwrap()),
        vec![("payer".to_owned(), "acme".to_owned()), ("line_of_business".to_owned(), "commercial".to_owned())]
    );
    assert!(matches!(search.filter(), Some(RetrievalFilter::AndAll(_))));
}

#[tokio::test]
async fn a_single_filter_is_a_bare_equals_and_none_is_no_filter() {
    let seen: Arc<Mutex<Vec<RetrieveInput>>> = Arc::default();
    let record = seen.clone();
    let rule = mock!(Client::retrieve)
        .match_requests(move |input| {
            record.lock().unwrap().push(input.clone());
            true
        })
        .then_output(one_result);
    let client = mock_client!(aws_sdk_bedrockagentruntime, RuleMode::MatchAny, &[&rule]);
    let kb = kb(client);
    let one = RetrievalQuery { text: "q".into(), max_results: 500, filters: vec![("payer".into(), "acme".into())] };
    kb.retrieve(&session(), &one).await.unwrap();
    kb.retrieve(&session(), &RetrievalQuery { text: "q".into(), max_results: 1, filters: vec![] }).await.unwrap();
    let inputs = seen.lock().unwrap().clone();
    let first = inputs[0].retrieval_configuration().and_then(|c| c.vector_search_configuration()).unwrap();
    assert!(matches!(first.filter(), Some(RetrievalFilter::Equals(_))));
    assert_eq!(first.number_of_results(), 25, "max results are capped");
    let second = inputs[1].retrieval_configuration().and_then(|c| c.vector_search_configuration()).unwrap();
    assert!(second.filter().is_none());
}

#[tokio::test]
async fn throttled_retrieve_is_retried_then_unavailable() {
    let rule = mock!(Client::retrieve)
        .sequence()
        .http_response(|| {
            let mut response =
                HttpResponse::new(StatusCode::try_from(429).unwrap(), SdkBody::from(r#"{"message":"slow down"}"#));
            response.headers_mut().insert("x-amzn-errortype", "ThrottlingException");
            response
        })
        .times(4)
        .build();
    let client = mock_client!(aws_sdk_bedrockagentruntime, RuleMode::Sequential, &[&rule]);
    let result =
        kb(client).retrieve(&session(), &RetrievalQuery { text: "q".into(), max_results: 3, filters: vec![] }).await;
    assert_eq!(result, Err(KnowledgeError::Unavailable));
    assert_eq!(rule.num_calls(), 3);
}

#[test]
fn knowledge_base_ids_are_checked() {
    let client = mock_client!(aws_sdk_bedrockagentruntime, RuleMode::Sequential, &[] as &[&aws_smithy_mocks::Rule]);
    assert!(BedrockKnowledgeBase::new(client.clone(), "kb-lower").is_err());
    assert!(BedrockKnowledgeBase::new(client, "").is_err());
}
