//! The typed Cedar gate: `gate.require(Resource::…, &Context { … })?` as the first statement of each step.
//!
//! Each context is a struct tied to exactly one action (`CedarContext::ACTION`), so a context cannot be
//! paired with the wrong action and a misspelled field is a compile error in the tool. A context that does
//! not match the schema (a field the schema lacks, or one missing) is an internal error, logged and
//! audited as such, never a silent deny; `tests` checks every context type against the embedded schema.
//! The gate writes each decision and its deciding policy ids into the call's audit record itself.

use std::fmt;

use serde::Serialize;
use tracing::{error, info};

use crate::authz::{Authorizer, AuthzDecision, ContextMismatch};
use crate::error::ToolError;
use crate::fhir::FhirId;
use crate::identity::Principal;
use crate::tool::recorder::Recorder;

/// The actions of `policies/schema.cedarschema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    #[serde(rename = "patient_summary.read")]
    PatientSummaryRead,
    #[serde(rename = "icd10_coding.propose")]
    Icd10CodingPropose,
    #[serde(rename = "prior_auth.draft")]
    PriorAuthDraft,
    #[serde(rename = "prior_auth.finalize")]
    PriorAuthFinalize,
}

impl Action {
    pub const ALL: [Self; 4] =
        [Self::PatientSummaryRead, Self::Icd10CodingPropose, Self::PriorAuthDraft, Self::PriorAuthFinalize];

    /// The action's id in the Cedar schema (`Action::"<id>"`).
    pub const fn id(self) -> &'static str {
        match self {
            Self::PatientSummaryRead => "patient_summary.read",
            Self::Icd10CodingPropose => "icd10_coding.propose",
            Self::PriorAuthDraft => "prior_auth.draft",
            Self::PriorAuthFinalize => "prior_auth.finalize",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The resource a decision is about, as a typed uid instead of a `("Type", "id")` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A patient of the tenant organisation (`Patient::"<id>"`, child of `Organization::"<tenant>"`).
    Patient(&'a FhirId),
    /// A patient not known yet: the ceiling question of a step whose patient is read after it.
    AnyPatient,
    /// The tenant organisation itself (`Organization::"<tenant>"`).
    Organization,
}

/// A Cedar request context: one struct per action, with exactly the schema's fields.
pub trait CedarContext: Serialize {
    const ACTION: Action;
    /// The most permissive context a later fact could give: asked first, so that a caller whom nothing
    /// could allow is denied before any read at all.
    fn ceiling() -> Self;
}

/// Proof that the gate allowed an action; only the gate makes one, and `run` needs one. It may carry the
/// facts the decision was made on (e.g. the stored draft it read), so `run` acts on exactly those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit<F = ()> {
    action: Action,
    policies: Vec<String>,
    facts: F,
}

impl Permit {
    /// The same permit, carrying the facts it was decided on.
    pub fn with<F>(self, facts: F) -> Permit<F> {
        Permit { action: self.action, policies: self.policies, facts }
    }
}

impl<F> Permit<F> {
    pub fn action(&self) -> Action {
        self.action
    }

    /// The `@id`s of the policies that allowed it.
    pub fn policies(&self) -> &[String] {
        &self.policies
    }

    pub fn facts(&self) -> &F {
        &self.facts
    }

    pub fn into_facts(self) -> F {
        self.facts
    }
}

/// The gate of one call: the verified principal, the tenant, and the audit record decisions go into.
pub struct Gate<'a> {
    pub(crate) authorizer: &'a Authorizer,
    pub(crate) principal: &'a Principal,
    pub(crate) tenant: &'a str,
    pub(crate) recorder: &'a Recorder<'a>,
}

impl Gate<'_> {
    pub fn principal(&self) -> &Principal {
        self.principal
    }

    /// Decides; a permit, or `Denied` (after recording the decision). The first permit of a call writes the
    /// audit intent record, before the call's first downstream request.
    pub fn require<C: CedarContext>(&self, resource: Resource<'_>, context: &C) -> Result<Permit, ToolError> {
        let decision = self.decide(resource, context)?;
        let allowed = decision.allowed;
        info!(action = %C::ACTION, allowed, policies = ?decision.policies, "authorization decided");
        let policies = decision.policies.clone();
        self.recorder.decision(decision);
        if !allowed {
            return Err(ToolError::Denied);
        }
        self.recorder.intent();
        Ok(Permit { action: C::ACTION, policies, facts: () })
    }

    /// Asks with `C::ceiling()`: could any fact read later allow this caller? Denied here means no read at all.
    pub fn require_ceiling<C: CedarContext>(&self, resource: Resource<'_>) -> Result<Permit, ToolError> {
        self.require(resource, &C::ceiling())
    }

    fn decide<C: CedarContext>(&self, resource: Resource<'_>, context: &C) -> Result<AuthzDecision, ToolError> {
        let context = serde_json::to_value(context).map_err(|_| ToolError::Internal)?;
        self.authorizer.decide_typed(self.principal, C::ACTION.id(), resource, self.tenant, context).map_err(
            |ContextMismatch| {
                // A programming error, not a deny: it must show up in tests and alarms, not as a refusal.
                error!(action = %C::ACTION, "the cedar context does not match the schema");
                ToolError::Internal
            },
        )
    }
}

/// Whether `C` matches its action's context in the embedded schema: each tool's tests call this for each of
/// its contexts, so a misspelled or missing field fails a test instead of denying in production.
pub fn context_matches_schema<C: CedarContext>(authorizer: &Authorizer) -> bool {
    let Ok(context) = serde_json::to_value(C::ceiling()) else { return false };
    let principal = Principal {
        subject: "schema-check".into(),
        roles: std::collections::BTreeSet::new(),
        organization: None,
        practitioner_id: None,
    };
    authorizer.decide_typed(&principal, C::ACTION.id(), Resource::Organization, "schema-check", context).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `care_relationship` misspelled: the schema has no such field.
    #[derive(Serialize)]
    struct Misspelled {
        care_relashionship: bool,
        break_glass: bool,
    }

    impl CedarContext for Misspelled {
        const ACTION: Action = Action::PatientSummaryRead;
        fn ceiling() -> Self {
            Self { care_relashionship: true, break_glass: true }
        }
    }

    #[derive(Serialize)]
    struct Right {
        care_relationship: bool,
        break_glass: bool,
    }

    impl CedarContext for Right {
        const ACTION: Action = Action::PatientSummaryRead;
        fn ceiling() -> Self {
            Self { care_relationship: true, break_glass: true }
        }
    }

    #[test]
    fn a_misspelled_context_field_is_an_error_not_a_deny() {
        let authorizer = Authorizer::embedded().unwrap();
        assert!(context_matches_schema::<Right>(&authorizer));
        assert!(!context_matches_schema::<Misspelled>(&authorizer));

        let principal = Principal {
            subject: "dr".into(),
            roles: [crate::identity::Role::Clinician].into(),
            organization: Some("org".into()),
            practitioner_id: None,
        };
        let sink = crate::audit::MemoryAuditSink::default();
        let record = crate::audit::AuditRecord::new("f", "t", "a", "direct", "r");
        let recorder = Recorder::new(&sink, record, std::time::Instant::now());
        let gate = Gate { authorizer: &authorizer, principal: &principal, tenant: "org", recorder: &recorder };
        let patient = FhirId::parse("p1").unwrap();
        assert_eq!(gate.require(Resource::Patient(&patient), &Misspelled::ceiling()), Err(ToolError::Internal));
        assert!(gate.require(Resource::Patient(&patient), &Right::ceiling()).is_ok());
    }
}
