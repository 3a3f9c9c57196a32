//! Coverage policies through the knowledge-base port. On AWS the Bedrock adapter built by
//! `Ports::payer_policies` returns one passage per matched policy whose text is the whole source document
//! (read from `PAYER_POLICY_BUCKET`, so the knowledge base's chunking does not matter); locally
//! [`PolicyFiles`] serves the same documents from a directory. Either way the tool parses the passage and
//! keeps only a policy that really covers the service asked.

use std::collections::BTreeMap;
use std::path::Path;

use shared::ToolError;
use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::session::SessionContext;
use tracing::warn;

use crate::domain::policy::CoveragePolicy;

/// The policy documents of a directory (`*.md` with front matter), read once at cold start.
#[derive(Debug, Clone, Default)]
pub struct PolicyFiles {
    documents: Vec<(String, CoveragePolicy, String)>,
}

impl PolicyFiles {
    /// Reads every policy in `dir`; a document that does not parse is a start-up error, not a silent gap.
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        let entries = std::fs::read_dir(dir).map_err(|_| "the payer policy directory cannot be read".to_owned())?;
        let mut documents = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if !name.ends_with(".md") || name.eq_ignore_ascii_case("README.md") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|_| format!("policy `{name}` cannot be read"))?;
            let policy = CoveragePolicy::parse(&text).map_err(|e| format!("policy `{name}`: {e}"))?;
            documents.push((name, policy, text));
        }
        documents.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { documents })
    }

    pub fn from_documents(documents: &[&str]) -> Result<Self, String> {
        let mut out = Vec::new();
        for (n, text) in documents.iter().enumerate() {
            let policy = CoveragePolicy::parse(text).map_err(|e| e.to_string())?;
            out.push((format!("document-{n}"), policy, (*text).to_owned()));
        }
        Ok(Self { documents: out })
    }

    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }
}

impl KnowledgeBase for PolicyFiles {
    /// Filters are exact metadata matches (`policy_id`, `service_code`), as a Bedrock KB metadata filter.
    async fn retrieve(
        &self,
        _session: &SessionContext,
        query: &RetrievalQuery,
    ) -> Result<Vec<Passage>, KnowledgeError> {
        let passages = self
            .documents
            .iter()
            .filter(|(_, policy, _)| {
                query.filters.iter().all(|(key, value)| match key.as_str() {
                    "policy_id" => &policy.policy_id == value,
                    "service_code" => &policy.service.code == value,
                    _ => false,
                })
            })
            .take(usize::try_from(query.max_results).unwrap_or(usize::MAX))
            .map(|(name, policy, text)| Passage {
                text: text.clone(),
                source: name.clone(),
                score: 1.0,
                metadata: BTreeMap::from([
                    ("policy_id".to_owned(), policy.policy_id.clone()),
                    ("service_code".to_owned(), policy.service.code.clone()),
                ]),
            })
            .collect();
        Ok(passages)
    }
}

/// The coverage policy for the service: by id when given (and it must cover the service), else the one
/// policy that covers it. Unknown ids and services are the caller's to fix, so the error says which.
pub async fn find_policy(
    kb: &impl KnowledgeBase,
    session: &SessionContext,
    policy_id: Option<&str>,
    system: Option<&str>,
    code: &str,
) -> Result<CoveragePolicy, ToolError> {
    let filters = match policy_id {
        Some(id) => vec![("policy_id".to_owned(), id.to_owned())],
        None => vec![("service_code".to_owned(), code.to_owned())],
    };
    let query =
        RetrievalQuery { text: format!("coverage policy criteria for service {code}"), max_results: 5, filters };
    let passages = kb.retrieve(session, &query).await?;
    let mut candidates = Vec::new();
    for passage in passages {
        match CoveragePolicy::parse(&passage.text) {
            Ok(policy) => candidates.push(policy),
            Err(e) => warn!(source = %passage.source, error = %e, "a retrieved passage is not a policy document"),
        }
    }
    if let Some(id) = policy_id {
        let policy = candidates
            .into_iter()
            .find(|p| p.policy_id == id)
            .ok_or_else(|| ToolError::invalid("no coverage policy with the given `policy_id` was found"))?;
        if !policy.covers(system, code) {
            return Err(ToolError::invalid("the given `policy_id` does not cover the given `service_code`"));
        }
        return Ok(policy);
    }
    let mut covering: Vec<CoveragePolicy> = candidates.into_iter().filter(|p| p.covers(system, code)).collect();
    match covering.len() {
        0 => Err(ToolError::invalid("no coverage policy was found for the given `service_code`")),
        1 => Ok(covering.remove(0)),
        _ => Err(ToolError::invalid("several coverage policies cover the given `service_code`; give `policy_id`")),
    }
}
