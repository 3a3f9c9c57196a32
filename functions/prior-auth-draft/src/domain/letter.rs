//! The statements a letter of medical necessity is written from: only evaluated facts, each clinical
//! statement carrying the references it rests on. The writer turns them into prose; it adds nothing.

use shared::writer::Statement;

use super::evaluate::Evaluation;
use super::logic::Status;
use super::policy::CoveragePolicy;

pub fn statements(policy: &CoveragePolicy, evaluation: &Evaluation) -> Vec<Statement> {
    let service = policy.service.display.as_deref().unwrap_or(&policy.service.code);
    let mut out = vec![Statement {
        text: format!(
            "This letter requests prior authorization of {service} (code {}) under coverage policy {} and reviews \
             each of its criteria against the medical record as of {}",
            policy.service.code, policy.policy_id, evaluation.as_of
        ),
        sources: Vec::new(),
    }];
    for result in &evaluation.criteria {
        let verdict = match result.status {
            Status::Met => "is met",
            Status::NotMet => "is not met",
            Status::InsufficientEvidence => "cannot be shown from the record and needs documentation",
        };
        out.push(Statement {
            text: format!("Criterion {} ({}) {verdict}: {}", result.id, result.text, result.reason),
            sources: result.evidence.iter().map(|f| f.reference.clone()).collect(),
        });
    }
    let overall = match evaluation.overall {
        Status::Met => "the record supports every criterion the policy's logic requires",
        Status::NotMet => "the record does not support the policy's logic; the unmet criteria are listed above",
        Status::InsufficientEvidence => {
            "the policy's logic cannot be decided from the record; the criteria needing documentation are listed above"
        }
    };
    out.push(Statement { text: format!("In summary, {overall} ({})", policy.logic), sources: Vec::new() });
    out
}
