//! Authorization with Cedar: embedded policies, validated against the schema at cold start.
//!
//! A function whose policies do not validate refuses to start. A decision with evaluation errors is a deny.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer as CedarAuthorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet,
    Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde::Serialize;

use crate::identity::Principal;

/// The schema and policies shipped in the binary (the `policies/` folder of the repository).
pub const SCHEMA: &str = include_str!("../../policies/schema.cedarschema");
pub const POLICIES: &str = concat!(
    include_str!("../../policies/patient_summary.cedar"),
    "\n",
    include_str!("../../policies/icd10_coding.cedar"),
    "\n",
    include_str!("../../policies/prior_auth.cedar"),
);

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("the cedar schema does not parse")]
    Schema,
    #[error("the cedar policies do not parse")]
    Policies,
    #[error("the cedar policies do not validate against the schema: {0}")]
    Invalid(String),
    #[error("a policy lacks an `@id` annotation")]
    MissingId,
}

/// A request context that does not match the action's context type in the schema: a programming error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cedar context does not match the schema")]
pub struct ContextMismatch;

/// The outcome of one authorization question, as the audit record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthzDecision {
    pub allowed: bool,
    /// `@id`s of the policies that determined the decision (empty for a default deny).
    pub policies: Vec<String>,
    /// Policies that errored during evaluation (skipped by Cedar); any error fails the request closed.
    pub errors: usize,
}

impl AuthzDecision {
    fn deny_on_error() -> Self {
        Self { allowed: false, policies: Vec::new(), errors: 1 }
    }
}

pub struct Authorizer {
    schema: Schema,
    policies: PolicySet,
    cedar: CedarAuthorizer,
}

impl Authorizer {
    /// The embedded policies; fails if they do not parse or validate strictly against the schema.
    pub fn embedded() -> Result<Self, AuthzError> {
        Self::from_sources(SCHEMA, POLICIES)
    }

    pub fn from_sources(schema: &str, policies: &str) -> Result<Self, AuthzError> {
        let (schema, _warnings) = Schema::from_cedarschema_str(schema).map_err(|_| AuthzError::Schema)?;
        let policies = PolicySet::from_str(policies).map_err(|_| AuthzError::Policies)?;
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let first = validation.validation_errors().next().map(ToString::to_string).unwrap_or_default();
            return Err(AuthzError::Invalid(first));
        }
        if policies.policies().any(|p| p.annotation("id").is_none()) {
            return Err(AuthzError::MissingId);
        }
        Ok(Self { schema, policies, cedar: CedarAuthorizer::new() })
    }

    /// Asks whether `principal` may take `action` on `resource` of the `tenant` organisation in `context`;
    /// a context that does not match the schema is a deny with an error.
    pub fn decide(
        &self,
        principal: &Principal,
        action: &str,
        resource: crate::tool::Resource<'_>,
        tenant: &str,
        context: serde_json::Value,
    ) -> AuthzDecision {
        self.decide_typed(principal, action, resource, tenant, context)
            .unwrap_or_else(|_| AuthzDecision::deny_on_error())
    }

    /// The typed gate's entry (`tool::Gate`): the resource as a typed uid within the tenant, and a context
    /// that must match the schema exactly (a mismatch is an error, not a deny).
    pub fn decide_typed(
        &self,
        principal: &Principal,
        action: &str,
        resource: crate::tool::Resource<'_>,
        tenant: &str,
        context: serde_json::Value,
    ) -> Result<AuthzDecision, ContextMismatch> {
        use crate::tool::Resource;
        let Some(action_uid) = uid("Action", action) else { return Ok(AuthzDecision::deny_on_error()) };
        Context::from_json_value(context.clone(), Some((&self.schema, &action_uid))).map_err(|_| ContextMismatch)?;
        let Some(user) = principal_entity(principal) else { return Ok(AuthzDecision::deny_on_error()) };
        let principal_uid = user.uid();
        let (resource_type, resource_id, patient) = match resource {
            Resource::Patient(id) => ("Patient", id.as_str(), patient_entity(id.as_str(), tenant)),
            Resource::AnyPatient => ("Patient", ANY_PATIENT, patient_entity(ANY_PATIENT, tenant)),
            Resource::Organization => ("Organization", tenant, None),
        };
        let Ok(entities) = Entities::from_entities(std::iter::once(user).chain(patient), Some(&self.schema)) else {
            return Ok(AuthzDecision::deny_on_error());
        };
        Ok(self.decide_with(principal_uid, action, (resource_type, resource_id), context, &entities))
    }

    /// The same decision from raw parts; the policy tests in `policies/tests/` use this entry.
    pub fn decide_with(
        &self,
        principal: EntityUid,
        action: &str,
        resource: (&str, &str),
        context: serde_json::Value,
        entities: &Entities,
    ) -> AuthzDecision {
        let (Some(action), Some(resource)) = (uid("Action", action), uid(resource.0, resource.1)) else {
            return AuthzDecision::deny_on_error();
        };
        let Ok(context) = Context::from_json_value(context, Some((&self.schema, &action))) else {
            return AuthzDecision::deny_on_error();
        };
        let Ok(request) = Request::new(principal, action, resource, context, Some(&self.schema)) else {
            return AuthzDecision::deny_on_error();
        };
        let response = self.cedar.is_authorized(&request, &self.policies, entities);
        let errors = response.diagnostics().errors().count();
        let policies = response
            .diagnostics()
            .reason()
            .filter_map(|id| self.policies.policy(id).and_then(|p| p.annotation("id")).map(str::to_owned))
            .collect();
        // Fail closed: a permit reached while another policy errored is not trusted.
        let allowed = response.decision() == Decision::Allow && errors == 0;
        AuthzDecision { allowed, policies, errors }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

/// The id of the placeholder patient the ceiling question of a step is asked about.
const ANY_PATIENT: &str = "*";

pub fn uid(entity_type: &str, id: &str) -> Option<EntityUid> {
    let type_name = EntityTypeName::from_str(entity_type).ok()?;
    Some(EntityUid::from_type_name_and_id(type_name, EntityId::new(id)))
}

/// A patient of the tenant organisation: the resource of summary and finalize decisions.
fn patient_entity(id: &str, tenant: &str) -> Option<Entity> {
    let organization = RestrictedExpression::new_entity_uid(uid("Organization", tenant)?);
    Entity::new(uid("Patient", id)?, HashMap::from([("organization".to_owned(), organization)]), HashSet::new()).ok()
}

fn principal_entity(principal: &Principal) -> Option<Entity> {
    let mut attrs = HashMap::new();
    if let Some(org) = &principal.organization {
        attrs.insert("organization".to_owned(), RestrictedExpression::new_string(org.clone()));
    }
    if let Some(practitioner) = &principal.practitioner_id {
        attrs.insert("practitioner_id".to_owned(), RestrictedExpression::new_string(practitioner.to_string()));
    }
    let mut parents = principal.roles.iter().map(|r| uid("Role", r.as_str())).collect::<Option<HashSet<_>>>()?;
    if let Some(org) = &principal.organization {
        parents.insert(uid("Organization", org)?);
    }
    Entity::new(uid("User", &principal.subject)?, attrs, parents).ok()
}
