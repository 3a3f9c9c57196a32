//! Coverage policies: the YAML front matter of a payer policy document, checked once when it is loaded so
//! that evaluation never meets a criterion it cannot read.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::logic::Expr;

/// A service code as a payer names it (CPT, HCPCS or RxNorm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCode {
    pub system: String,
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
}

/// The FHIR resource types a criterion can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvidenceResource {
    Condition,
    Observation,
    MedicationRequest,
    Procedure,
    Encounter,
}

impl EvidenceResource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Condition => "Condition",
            Self::Observation => "Observation",
            Self::MedicationRequest => "MedicationRequest",
            Self::Procedure => "Procedure",
            Self::Encounter => "Encounter",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = "exists")]
    Exists,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "duration_days>=")]
    DurationDaysAtLeast,
}

impl Comparator {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exists => "exists",
            Self::AtLeast => ">=",
            Self::Below => "<",
            Self::DurationDaysAtLeast => "duration_days>=",
        }
    }
}

/// What the chart must show for a criterion. Every key is present in the policy files; `value` and
/// `within_days` are `null` where they do not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub resource: EvidenceResource,
    pub code_system: String,
    pub codes: Vec<String>,
    pub comparator: Comparator,
    pub value: Option<f64>,
    pub within_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub id: String,
    pub text: String,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    policy_id: String,
    title: String,
    service: ServiceCode,
    applies_to_diagnoses: Vec<String>,
    criteria: Vec<Criterion>,
    logic: String,
    documentation_required: Vec<String>,
}

/// A payer's coverage policy for one service, with its logic parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoveragePolicy {
    pub policy_id: String,
    pub title: String,
    pub service: ServiceCode,
    pub applies_to_diagnoses: Vec<String>,
    pub criteria: Vec<Criterion>,
    pub logic: String,
    #[serde(skip)]
    pub expression: Expr,
    pub documentation_required: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy document has no yaml front matter")]
    NoFrontMatter,
    #[error("the policy front matter does not parse: {0}")]
    Yaml(String),
    #[error("criterion `{0}` is defined twice")]
    DuplicateCriterion(String),
    #[error("criterion `{0}` needs a numeric `value` for its comparator")]
    MissingValue(String),
    #[error("criterion `{0}` lists no codes")]
    NoCodes(String),
    #[error("the policy logic does not parse: {0}")]
    Logic(String),
    #[error("the policy logic names `{0}`, which is not a criterion")]
    UnknownCriterion(String),
}

impl CoveragePolicy {
    /// Parses a policy document: front matter between the first two `---` lines, prose after it.
    pub fn parse(document: &str) -> Result<Self, PolicyError> {
        let yaml = front_matter(document).ok_or(PolicyError::NoFrontMatter)?;
        let front: FrontMatter = serde_yaml_ng::from_str(yaml).map_err(|e| PolicyError::Yaml(e.to_string()))?;
        let mut ids = BTreeSet::new();
        for criterion in &front.criteria {
            if !ids.insert(criterion.id.as_str()) {
                return Err(PolicyError::DuplicateCriterion(criterion.id.clone()));
            }
            if criterion.evidence.codes.is_empty() {
                return Err(PolicyError::NoCodes(criterion.id.clone()));
            }
            let needs_value = criterion.evidence.comparator != Comparator::Exists;
            if needs_value && criterion.evidence.value.is_none_or(|v| !v.is_finite()) {
                return Err(PolicyError::MissingValue(criterion.id.clone()));
            }
        }
        let expression = Expr::parse(&front.logic).map_err(|e| PolicyError::Logic(e.to_string()))?;
        if let Some(unknown) = expression.criteria().into_iter().find(|id| !ids.contains(id.as_str())) {
            return Err(PolicyError::UnknownCriterion(unknown));
        }
        Ok(Self {
            policy_id: front.policy_id,
            title: front.title,
            service: front.service,
            applies_to_diagnoses: front.applies_to_diagnoses,
            criteria: front.criteria,
            logic: front.logic,
            expression,
            documentation_required: front.documentation_required,
        })
    }

    pub fn covers(&self, system: Option<&str>, code: &str) -> bool {
        self.service.code == code && system.is_none_or(|s| s == self.service.system)
    }
}

fn front_matter(document: &str) -> Option<&str> {
    let rest = document.trim_start_matches('\u{feff}');
    let rest = rest.strip_prefix("---")?.trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix("\r\n").or_else(|| rest.strip_prefix('\n'))?;
    let end = rest.find("\n---")?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "---\npolicy_id: P-1\ntitle: \"t\"\nservice: {system: \"s\", code: \"1\"}\napplies_to_diagnoses: []\n\
criteria:\n  - id: C1\n    text: \"a\"\n    evidence: {resource: Condition, code_system: \"x\", codes: [\"1\"], \
comparator: \"exists\", value: null, within_days: null}\n  - id: C2\n    text: \"b\"\n    evidence: {resource: \
Observation, code_system: \"x\", codes: [\"2\"], comparator: \">=\", value: 7, within_days: 30}\nlogic: \"C1 AND C2\"\n\
documentation_required: []\n---\n# prose\n";

    #[test]
    fn parses_front_matter_and_logic() {
        let policy = CoveragePolicy::parse(DOC).unwrap();
        assert_eq!(policy.policy_id, "P-1");
        assert_eq!(policy.criteria.len(), 2);
        assert_eq!(policy.criteria[1].evidence.comparator, Comparator::AtLeast);
        assert_eq!(policy.criteria[1].evidence.value, Some(7.0));
        assert!(policy.covers(Some("s"), "1"));
        assert!(!policy.covers(Some("other"), "1"));
    }

    #[test]
    fn rejects_logic_naming_an_unknown_criterion() {
        let doc = DOC.replace("C1 AND C2", "C1 AND C3");
        assert_eq!(CoveragePolicy::parse(&doc), Err(PolicyError::UnknownCriterion("C3".into())));
    }

    #[test]
    fn rejects_a_comparator_without_a_value() {
        let doc = DOC.replace("value: 7", "value: null");
        assert_eq!(CoveragePolicy::parse(&doc), Err(PolicyError::MissingValue("C2".into())));
    }

    #[test]
    fn rejects_unknown_keys_and_missing_front_matter() {
        assert!(matches!(CoveragePolicy::parse(&DOC.replace("logic:", "extra: 1\nlogic:")), Err(PolicyError::Yaml(_))));
        assert_eq!(CoveragePolicy::parse("# no front matter"), Err(PolicyError::NoFrontMatter));
    }
}
