//! The knowledge-base port on Bedrock Knowledge Bases (`Retrieve`).
//!
//! `Retrieve` has no session id parameter: the call is correlated by the span and audit record of the tool
//! call. It is signed with the function role, never with per-session credentials (the data-access roles
//! hold HealthLake permissions only). `RetrieveAndGenerate` is not used: its `sessionId` is issued by
//! Bedrock, not ours to pass.
//!
//! With [`BedrockKnowledgeBase::with_whole_documents`] (payer policies), a retrieval result is a pointer,
//! not the answer: a knowledge base splits each document into chunks (about 300 tokens by default, "How
//! content chunking works for knowledge bases"), so the adapter takes each chunk's source location
//! (`location.s3Location.uri`), keeps one result per document (its best-scoring chunk's score and
//! metadata) and returns the whole source document read from the policy bucket.

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

use crate::s3::{PolicyBucket, S3Location};
use crate::{AwsError, CallPolicy, Upstream, classify, error_code};

/// Most passages asked for in one call (the service allows 100; tools need a handful).
const MAX_RESULTS: u32 = 25;

/// Chunks asked for per wanted document when whole documents are returned.
const CHUNKS_PER_DOCUMENT: u32 = 4;

pub struct BedrockKnowledgeBase {
    client: Client,
    knowledge_base_id: String,
    policy: CallPolicy,
    whole_documents: Option<Arc<PolicyBucket>>,
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
            whole_documents: None,
        })
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Returns whole source documents from `bucket` instead of chunks (see the module documentation).
    pub fn with_whole_documents(mut self, bucket: PolicyBucket) -> Self {
        self.whole_documents = Some(Arc::new(bucket));
        self
    }

    fn call_config(
        &self,
        session: &SessionContext,
    ) -> Result<aws_sdk_bedrockagentruntime::config::Builder, KnowledgeError> {
        let timeouts = self.policy.timeout_config(session).map_err(knowledge_error)?;
        Ok(aws_sdk_bedrockagentruntime::config::Builder::default()
            .retry_config(self.policy.retry_config())
            .timeout_config(timeouts))
    }

    /// One passage per source document, in order of each document's best chunk, with the whole text.
    async fn whole_documents(
        &self,
        bucket: &PolicyBucket,
        session: &SessionContext,
        chunks: Vec<Passage>,
        wanted: usize,
    ) -> Result<Vec<Passage>, KnowledgeError> {
        let mut documents: Vec<(S3Location, Passage)> = Vec::new();
        for chunk in chunks {
            // Fails closed: a result without an S3 location, or in another bucket, means the knowledge base
            // indexes something other than the policy bucket, and a partial policy set would go unnoticed.
            let Some(location) = S3Location::parse(&chunk.source) else {
                warn!(error = "policy_location_not_s3", "a retrieved policy has no s3 location");
                return Err(KnowledgeError::Rejected);
            };
            if location.bucket != bucket.bucket() {
                warn!(error = "policy_outside_bucket", "a retrieved policy is outside the payer policy bucket");
                return Err(KnowledgeError::Rejected);
            }
            if !documents.iter().any(|(seen, _)| *seen == location) && documents.len() < wanted {
                documents.push((location, chunk));
            }
        }
        let mut passages = Vec::with_capacity(documents.len());
        for (location, chunk) in documents {
            let text = bucket.document(session, &location).await?;
            passages.push(Passage { text: text.to_string(), ..chunk });
        }
        Ok(passages)
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
        let span = info_span!("bedrock_retrieve", otel.kind = "client", session_id = %session.session_id, kb = %self.knowledge_base_id);
        async {
            if query.text.trim().is_empty() {
                return Err(KnowledgeError::Rejected);
            }
            let config = self.call_config(session)?;
            let wanted = query.max_results.clamp(1, MAX_RESULTS);
            // Several chunks of one document often rank together: ask for more, keep `wanted` documents.
            let chunks = if self.whole_documents.is_some() {
                wanted.saturating_mul(CHUNKS_PER_DOCUMENT).min(MAX_RESULTS)
            } else {
                wanted
            };
            let results = i32::try_from(chunks).unwrap_or(1);
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
            match &self.whole_documents {
                None => Ok(passages),
                Some(bucket) => {
                    let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
                    let documents = self.whole_documents(bucket, session, passages, wanted).await?;
                    info!(documents = documents.len(), "whole documents read");
                    Ok(documents)
                }
            }
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
