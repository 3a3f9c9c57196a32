//! The knowledge-base port: passages retrieved for a query, with where they came from.
//!
//! In AWS this is a Bedrock Knowledge Base (Retrieve); each tool that needs one locally (ICD-10 coding,
//! payer policies) implements its own embedded index behind the same trait.

use std::collections::BTreeMap;
use std::future::Future;

use crate::error::ToolError;
use crate::session::SessionContext;

/// One retrieval. Query text is built by the tool from codes and clinical terms, never from identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetrievalQuery {
    pub text: String,
    pub max_results: u32,
    /// Metadata equality filters (`key`, `value`), all of which must hold (e.g. `payer` = `acme`).
    pub filters: Vec<(String, String)>,
}

/// A retrieved passage and its provenance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Passage {
    pub text: String,
    /// Where the passage came from (an S3 URI, a document id, a code system entry).
    pub source: String,
    /// Relevance as reported by the index; only comparable within one retrieval.
    pub score: f32,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnowledgeError {
    #[error("the knowledge base is unavailable")]
    Unavailable,
    #[error("the knowledge base rejected the query")]
    Rejected,
}

impl From<KnowledgeError> for ToolError {
    fn from(_: KnowledgeError) -> Self {
        ToolError::UpstreamUnavailable
    }
}

pub trait KnowledgeBase: Send + Sync {
    fn retrieve(
        &self,
        session: &SessionContext,
        query: &RetrievalQuery,
    ) -> impl Future<Output = Result<Vec<Passage>, KnowledgeError>> + Send;
}
