//! The knowledge-base port on Bedrock Knowledge Bases (`Retrieve`).
//!
//! `Retrieve` has no session id parameter: the call is correlated by the span and audit record of the tool
//! call, and by CloudTrail's role session name when per-session credentials are configured.
//! `RetrieveAndGenerate` is not used: its `sessionId` is issued by Bedrock, not ours to pass.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aws_sdk_bedrockagentruntime::Client;
use aws_sdk_bedrockagentruntime::types::{
    FilterAttribute, KnowledgeBaseQuery, KnowledgeBaseRetrievalConfiguration, KnowledgeBaseRetrievalResult,
    KnowledgeBaseVectorSearchConfiguration, RetrievalFilter,
};
use aws_smithy_types::Document;
use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::session::SessionContext;
use tracing::{Instrument, info, info_span, warn};

use crate::sts::SessionCredentials;
use crate::{AwsError, CallPolicy, Upstream, classify, error_code};

/// Most passages asked for in one call (the service allows 100; tools need a handful).
const MAX_RESULTS: u32 = 25;

pub struct BedrockKnowledgeBase {
    client: Client,
    knowledge_base_id: String,
    policy: CallPolicy,
    session_credentials: Option<Arc<SessionCredentials>>,
}

impl fmt::Debug for BedrockKnowledgeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockKnowledgeBase")
            .field("knowledge_base_id", &self.knowledge_base_id)
            .finish_non_exhaustive()
    }
}

impl BedrockKnowledgeBase {
    /// `knowledge_base_id`: 1–10 upper-case letters and digits, as Bedrock issues them.
    pub fn new(client: Client, knowledge_base_id: &str) -> Result<Self, AwsError> {
        let ok = (1..=10).contains(&knowledge_base_id.len())
            && knowledge_base_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(AwsError::Invalid("KNOWLEDGE_BASE_ID"));
        }
        Ok(Self {
            client,
            knowledge_base_id: knowledge_base_id.to_owned(),
            policy: CallPolicy::default(),
            session_credentials: None,
        })
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_session_credentials(mut self, credentials: Arc<SessionCredentials>) -> Self {
        self.session_credentials = Some(credentials);
        self
    }

    async fn call_config(
        &self,
        session: &SessionContext,
    ) -> Result<aws_sdk_bedrockagentruntime::config::Builder, KnowledgeError> {
        let timeouts = self.policy.timeout_config(session).map_err(knowledge_error)?;
        let mut config = aws_sdk_bedrockagentruntime::config::Builder::default()
            .retry_config(self.policy.retry_config())
            .timeout_config(timeouts);
        if let Some(source) = &self.session_credentials {
            let assumed = source.assume(session).await.map_err(|e| match e {
                AwsError::Unavailable => KnowledgeError::Unavailable,
                _ => KnowledgeError::Rejected,
            })?;
            config = config.credentials_provider(assumed.credentials);
        }
        Ok(config)
    }
}

/// Equality on every pair: one pair is a bare `equals`, more are `andAll` (which needs at least two).
fn filter(pairs: &[(String, String)]) -> Result<Option<RetrievalFilter>, KnowledgeError> {
    let mut equals = pairs
        .iter()
        .map(|(key, value)| {
            FilterAttribute::builder()
                .key(key)
                .value(Document::String(value.clone()))
                .build()
                .map(RetrievalFilter::Equals)
                .map_err(|_| KnowledgeError::Rejected)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match equals.len() {
        0 => None,
        1 => equals.pop(),
        _ => Some(RetrievalFilter::AndAll(equals)),
    })
}

fn passage(result: KnowledgeBaseRetrievalResult) -> Option<Passage> {
    let text = result.content?.text;
    let source =
        result.location.and_then(|l| l.s3_location.and_then(|s3| s3.uri)).or(result.document_id).unwrap_or_default();
    let metadata: BTreeMap<String, String> = result
        .metadata
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Document::String(s) => Some((k, s)),
            Document::Number(n) => Some((k, n.to_f64_lossy().to_string())),
            Document::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect();
    #[expect(clippy::cast_possible_truncation, reason = "a relevance score needs no f64 precision")]
    let score = result.score.unwrap_or_default() as f32;
    Some(Passage { text, source, score, metadata })
}

impl KnowledgeBase for BedrockKnowledgeBase {
    async fn retrieve(&self, session: &SessionContext, query: &RetrievalQuery) -> Result<Vec<Passage>, KnowledgeError> {
        let span = info_span!("bedrock_retrieve", session_id = %session.session_id, kb = %self.knowledge_base_id);
        async {
            if query.text.trim().is_empty() {
                return Err(KnowledgeError::Rejected);
            }
            let config = self.call_config(session).await?;
            let results = i32::try_from(query.max_results.clamp(1, MAX_RESULTS)).unwrap_or(1);
            let search = KnowledgeBaseVectorSearchConfiguration::builder()
                .number_of_results(results)
                .set_filter(filter(&query.filters)?)
                .build();
            let output = self
                .client
                .retrieve()
                .knowledge_base_id(&self.knowledge_base_id)
                .retrieval_query(KnowledgeBaseQuery::builder().text(&query.text).build())
                .retrieval_configuration(
                    KnowledgeBaseRetrievalConfiguration::builder().vector_search_configuration(search).build(),
                )
                .customize()
                .config_override(config)
                .send()
                .await
                .map_err(|e| {
                    warn!(error = error_code(&e), "retrieve failed");
                    knowledge_error(classify(&e))
                })?;
            let passages: Vec<Passage> = output.retrieval_results.into_iter().filter_map(passage).collect();
            info!(passages = passages.len(), filters = query.filters.len(), "retrieved");
            Ok(passages)
        }
        .instrument(span)
        .await
    }
}

fn knowledge_error(upstream: Upstream) -> KnowledgeError {
    match upstream {
        Upstream::Unavailable => KnowledgeError::Unavailable,
        Upstream::Rejected => KnowledgeError::Rejected,
    }
}
