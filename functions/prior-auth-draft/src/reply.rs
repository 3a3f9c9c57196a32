//! What the prior-auth actions answer: the structured result and its text rendering.

use serde_json::json;
use shared::envelope::ToolReply;
use shared::writer::Narrative;

use crate::domain::evaluate::Evaluation;
use crate::domain::policy::CoveragePolicy;
use crate::service::DraftContent;

/// The stored draft's handles: its id, the hash the clinician's sign-off must name, and how many resources
/// did not parse.
pub struct Drafted<'a> {
    pub draft_id: &'a str,
    pub content_hash: &'a str,
    pub unparsed: usize,
}

pub fn draft(
    drafted: &Drafted<'_>,
    policy: &CoveragePolicy,
    evaluation: &Evaluation,
    content: &DraftContent,
    letter: &Narrative,
) -> ToolReply {
    let Drafted { draft_id, content_hash, unparsed } = *drafted;
    let result = json!({
        "draft_id": draft_id,
        "content_hash": content_hash,
        "status": "draft",
        "policy_id": policy.policy_id,
        "overall": evaluation.overall,
        "criteria": content.evaluation["criteria"],
        "as_of": evaluation.as_of.to_string(),
        "bundle": content.bundle,
        "letter": content.letter,
        "unparsed_resources": unparsed,
    });
    ToolReply { result, text: draft_text(drafted, policy, evaluation, letter) }
}

pub fn finalized(draft_id: &str, content: &DraftContent, overridden: bool) -> ToolReply {
    let text = format!(
        "Prior-authorization request {draft_id} is finalized (Claim status active){}.",
        if overridden { ", with an override of unmet criteria" } else { "" }
    );
    let result =
        json!({"draft_id": draft_id, "status": "final", "bundle": content.bundle, "attestation": content.attestation});
    ToolReply { result, text }
}

fn draft_text(drafted: &Drafted<'_>, policy: &CoveragePolicy, evaluation: &Evaluation, letter: &Narrative) -> String {
    let mut lines = vec![format!(
        "DRAFT prior-authorization request {} for {} {} under {} (as of {}): overall {}.",
        drafted.draft_id,
        policy.service.code,
        policy.service.display.as_deref().unwrap_or(""),
        policy.policy_id,
        evaluation.as_of,
        evaluation.overall.as_str()
    )];
    for c in &evaluation.criteria {
        let refs = c.evidence.iter().map(|f| f.reference.as_str()).collect::<Vec<_>>().join(", ");
        lines.push(format!("- {} {}: {} [{}]", c.id, c.status.as_str(), c.reason, refs));
    }
    lines.push(String::new());
    lines.push(letter.paragraph());
    lines.push(format!(
        "Not final until the treating clinician signs it in the application (content hash {}); then \
         prior_auth_finalize with this draft id.",
        drafted.content_hash
    ));
    lines.join("\n")
}
