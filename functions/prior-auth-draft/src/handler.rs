//! The prior-auth tool: envelope → arguments → verified identity → Cedar → minimal FHIR reads → evaluation,
//! PAS Bundle and letter → sealed draft; or, to finalise, Cedar on the treating relationship and the unmet
//! criteria → attested draft. One audit record per call whatever the outcome.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::ToolError;
use shared::audit::{AuditRecord, AuditSink, Detail, Outcome};
use shared::authz::Authorizer;
use shared::envelope::{self, Envelope, ToolCall, ToolReply};
use shared::fhir::relationship::care_relationship;
use shared::fhir::{FhirId, FhirStore, SearchQuery, SearchSet};
use shared::identity::{JwtVerifier, Principal, Role};
use shared::keys::{EncryptionContext, Keys};
use shared::knowledge::KnowledgeBase;
use shared::runtime::{Handler, Invocation};
use shared::session::{SessionContext, SessionId};
use shared::writer::{ClinicalWriter, Narrative, Purpose, WritingRequest};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};
use tracing::{Instrument, info, info_span, warn};

use crate::args::{self, DraftArgs, FinalizeArgs};
use crate::domain::chart::Chart;
use crate::domain::evaluate::{Evaluation, evaluate};
use crate::domain::letter;
use crate::domain::pas::{self, Parties};
use crate::domain::policy::{CoveragePolicy, EvidenceResource};
use crate::policies::find_policy;
use crate::store::{DraftStatus, DraftStore, StoredDraft, Versioned};

pub const DRAFT_ACTION: &str = "prior_auth.draft";
pub const FINALIZE_ACTION: &str = "prior_auth.finalize";
const DRAFT_TOOLS: &[&str] = &["prior_auth_draft", "/prior-auth-draft", "/prior_auth_draft"];
const FINALIZE_TOOLS: &[&str] = &["prior_auth_finalize", "/prior-auth-finalize", "/prior_auth_finalize"];

/// Everything the tool needs, built once at cold start.
pub struct PriorAuthTool<S, K, W, D, C, A> {
    pub store: S,
    pub knowledge: K,
    pub writer: W,
    pub drafts: D,
    pub keys: C,
    pub audit: A,
    pub verifier: JwtVerifier,
    pub authorizer: Authorizer,
    pub function_name: String,
    /// The organisation whose datastore this deployment serves.
    pub tenant: String,
    pub care_lookback_days: u32,
    /// The FHIR base the Bundle's `fullUrl`s are formed from.
    pub fhir_base: String,
    /// Fixes "today" for tests; `None` in production.
    pub as_of: Option<Date>,
}

/// The sealed part of a draft.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftContent {
    pub bundle: Value,
    pub evaluation: Value,
    pub letter: Value,
    pub attestation: Option<Value>,
}

#[derive(Clone, Copy)]
enum Action {
    Draft,
    Finalize,
}

impl<S, K, W, D, C, A> Handler for PriorAuthTool<S, K, W, D, C, A>
where
    S: FhirStore,
    K: KnowledgeBase,
    W: ClinicalWriter,
    D: DraftStore,
    C: Keys,
    A: AuditSink,
{
    async fn call(&self, invocation: Invocation) -> Value {
        let started = Instant::now();
        let span = info_span!("prior_auth", request_id = %invocation.request_id, session_id = tracing::field::Empty);
        async {
            let call = match envelope::parse(&invocation.payload, invocation.client_context.as_ref()) {
                Ok(call) => call,
                Err(error) => {
                    let mut audit =
                        AuditRecord::new(&self.function_name, "unknown", DRAFT_ACTION, "unknown", &invocation.request_id);
                    audit.outcome = Outcome::Error(error.kind());
                    audit.latency_ms = elapsed_ms(started);
                    shared::metrics::emit(&audit);
                    self.audit.write(audit);
                    return envelope::render(&Envelope::Direct, &Err(error), &invocation.request_id);
                }
            };
            let action = if DRAFT_TOOLS.contains(&call.tool.as_str()) {
                Some(Action::Draft)
            } else if FINALIZE_TOOLS.contains(&call.tool.as_str()) {
                Some(Action::Finalize)
            } else {
                None
            };
            let (tool, cedar_action) = match action {
                Some(Action::Finalize) => ("prior_auth_finalize", FINALIZE_ACTION),
                _ => ("prior_auth_draft", DRAFT_ACTION),
            };
            let mut audit =
                AuditRecord::new(&self.function_name, tool, cedar_action, envelope_name(&call.envelope), &invocation.request_id);
            let outcome = match action {
                Some(Action::Draft) => self.draft(&call, &invocation, &mut audit).await,
                Some(Action::Finalize) => self.finalize(&call, &invocation, &mut audit).await,
                None => Err(ToolError::invalid("this function serves only `prior_auth_draft` and `prior_auth_finalize`")),
            };
            audit.outcome = match &outcome {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Error(e.kind()),
            };
            audit.latency_ms = elapsed_ms(started);
            info!(outcome = ?audit.outcome, latency_ms = audit.latency_ms, reads = audit.resources_read.len(), "tool call finished");
            shared::metrics::emit(&audit);
            self.audit.write(audit);
            envelope::render(&call.envelope, &outcome, &invocation.request_id)
        }
        .instrument(span)
        .await
    }
}

impl<S, K, W, D, C, A> PriorAuthTool<S, K, W, D, C, A>
where
    S: FhirStore,
    K: KnowledgeBase,
    W: ClinicalWriter,
    D: DraftStore,
    C: Keys,
    A: AuditSink,
{
    /// Session and identity, after the arguments were checked (an invalid request makes no call at all).
    async fn caller(
        &self,
        call: &ToolCall,
        invocation: &Invocation,
        audit: &mut AuditRecord,
    ) -> Result<(Principal, SessionContext), ToolError> {
        let session_id = SessionId::parse(call.session_id.as_deref().unwrap_or_default())?;
        tracing::Span::current().record("session_id", session_id.as_str());
        audit.session_id = Some(session_id.to_string());
        let principal = self.verifier.verify(call.identity_token.as_deref()).await.map_err(|e| {
            warn!(reason = %e, "identity rejected");
            ToolError::Unauthenticated
        })?;
        audit.subject = Some(principal.subject.clone());
        audit.roles = principal.roles.iter().map(|r| r.as_str()).collect();
        audit.organization = principal.organization.clone();
        let session = SessionContext::new(session_id, invocation.request_id.clone(), invocation.deadline)
            .with_caller(principal.subject.clone());
        Ok((principal, session))
    }

    fn today(&self) -> Date {
        self.as_of.unwrap_or_else(|| OffsetDateTime::now_utc().date())
    }

    async fn draft(
        &self,
        call: &ToolCall,
        invocation: &Invocation,
        audit: &mut AuditRecord,
    ) -> Result<ToolReply, ToolError> {
        let input: DraftArgs = args::from_arguments(&call.arguments)?;
        let patient = FhirId::argument("patient_id", &input.patient_id)?;
        args::check_service_code(&input.service_code)?;
        if let Some(id) = &input.policy_id {
            args::check_policy_id(id)?;
        }
        let named_practitioner = input
            .ordering_practitioner_id
            .as_deref()
            .map(|p| FhirId::argument("ordering_practitioner_id", p))
            .transpose()?;
        let (principal, session) = self.caller(call, invocation, audit).await?;
        audit.patient = Some(format!("Patient/{patient}"));

        let decision = self.authorizer.decide(&principal, DRAFT_ACTION, ("Organization", &self.tenant), json!({}));
        info!(allowed = decision.allowed, policies = ?decision.policies, "authorization decided");
        let allowed = decision.allowed;
        audit.decision = Some(decision);
        if !allowed {
            return Err(ToolError::Denied);
        }

        // A clinician orders as themselves; a specialist drafts for a named practitioner.
        let practitioner = match (principal.roles.contains(&Role::Clinician), principal.practitioner_id.clone()) {
            (true, Some(own)) => {
                if named_practitioner.as_ref().is_some_and(|n| n != &own) {
                    return Err(ToolError::invalid(
                        "a clinician orders as themselves; leave `ordering_practitioner_id` out",
                    ));
                }
                own
            }
            _ => named_practitioner.ok_or_else(|| {
                ToolError::invalid(
                    "`ordering_practitioner_id` is required when the caller is not the ordering clinician",
                )
            })?,
        };

        let policy = find_policy(
            &self.knowledge,
            &session,
            input.policy_id.as_deref(),
            input.service_system.as_deref(),
            &input.service_code,
        )
        .await?;

        let fetched = fetch(&self.store, &session, &patient, &practitioner, &policy).await?;
        audit.resources_read = fetched.reads.clone();
        let patient_resource = fetched.patient.ok_or(ToolError::NotFound)?;
        let practitioner_resource =
            fetched.practitioner.ok_or_else(|| ToolError::invalid("the ordering practitioner was not found"))?;
        let (chart, unparsed) = Chart::from_json(&fetched.evidence);
        if unparsed > 0 {
            warn!(unparsed, "some resources did not parse and were left out");
        }
        let as_of = self.today();
        let evaluation = evaluate(&policy, &chart, as_of);

        // The seal id binds the ciphertext to this draft; the store may hand out its own handle (a Binary id).
        let seal_id = new_draft_id();
        let timestamp = OffsetDateTime::now_utc().format(&Rfc3339).map_err(|_| ToolError::Internal)?;
        let cited: Vec<String> = evaluation.references();
        let evidence: Vec<Value> = fetched
            .evidence
            .iter()
            .filter(|r| reference_of(r).is_some_and(|reference| cited.contains(&reference)))
            .cloned()
            .collect();
        let parties = Parties {
            base: &self.fhir_base,
            patient: patient_resource,
            practitioner: practitioner_resource,
            provider_organization: &self.tenant,
        };
        let bundle = pas::bundle(&seal_id, &timestamp, &policy, &evaluation, &parties, &evidence);

        let request =
            WritingRequest { purpose: Purpose::PriorAuthLetter, statements: letter::statements(&policy, &evaluation) };
        let narrative = self.writer.write(&session, &request).await.map_err(|_| ToolError::UpstreamUnavailable)?;
        audit.model = Some(narrative.writer.clone());
        audit.guardrail_action = Some("none".to_owned());

        let unmet = evaluation.overall != crate::domain::logic::Status::Met;
        let content = DraftContent {
            bundle,
            evaluation: serde_json::to_value(&evaluation).map_err(|_| ToolError::Internal)?,
            letter: serde_json::to_value(&narrative).map_err(|_| ToolError::Internal)?,
            attestation: None,
        };
        let stored = self.seal(&session, &seal_id, patient.as_str(), DraftStatus::Draft, unmet, &content).await?;
        let draft_id = self.drafts.create(&session, &stored).await?;
        audit.detail = Some(Detail::PriorAuthDraft { draft_id: draft_id.clone() });

        let text = render_text(&draft_id, &policy, &evaluation, &narrative);
        let result = json!({
            "draft_id": draft_id,
            "status": "draft",
            "policy_id": policy.policy_id,
            "overall": evaluation.overall,
            "criteria": content.evaluation["criteria"],
            "as_of": evaluation.as_of.to_string(),
            "bundle": content.bundle,
            "letter": content.letter,
            "unparsed_resources": unparsed,
        });
        Ok(ToolReply { result, text })
    }

    async fn seal(
        &self,
        session: &SessionContext,
        draft_id: &str,
        patient: &str,
        status: DraftStatus,
        unmet: bool,
        content: &DraftContent,
    ) -> Result<StoredDraft, ToolError> {
        let plaintext = serde_json::to_vec(content).map_err(|_| ToolError::Internal)?;
        let context = EncryptionContext::draft(&self.tenant, patient, draft_id);
        let sealed = self.keys.seal(session, &context, &plaintext).await?;
        let stored = StoredDraft {
            id: draft_id.to_owned(),
            tenant: self.tenant.clone(),
            patient: patient.to_owned(),
            status,
            unmet_criteria: unmet,
            sealed,
        };
        Ok(stored)
    }

    async fn finalize(
        &self,
        call: &ToolCall,
        invocation: &Invocation,
        audit: &mut AuditRecord,
    ) -> Result<ToolReply, ToolError> {
        let input: FinalizeArgs = args::from_arguments(&call.arguments)?;
        args::check_draft_id(&input.draft_id)?;
        let attestation = args::check_text("attestation", &input.attestation, 10, 1000)?;
        let override_reason =
            input.override_reason.as_deref().map(|r| args::check_text("override_reason", r, 10, 500)).transpose()?;
        let (principal, session) = self.caller(call, invocation, audit).await?;
        audit.detail = Some(Detail::PriorAuthFinalize {
            draft_id: input.draft_id.clone(),
            attested: false,
            override_reason: None,
        });

        // Could anything allow this caller? If not (not a clinician), deny before reading even the draft.
        let ceiling = self.authorizer.decide(
            &principal,
            FINALIZE_ACTION,
            ("Patient", "any"),
            json!({"care_relationship": true, "unmet_criteria": false, "override_reason": true}),
        );
        if !ceiling.allowed {
            info!(policies = ?ceiling.policies, "denied before any read");
            audit.decision = Some(ceiling);
            return Err(ToolError::Denied);
        }

        // The draft's clear metadata (patient, unmet flag) is what the decision needs; nothing is opened yet.
        let Versioned { draft: stored, version } = self
            .drafts
            .get(&session, &input.draft_id)
            .await?
            .filter(|v| v.draft.tenant == self.tenant)
            .ok_or(ToolError::NotFound)?;
        let patient = FhirId::parse(&stored.patient).map_err(|_| ToolError::Internal)?;
        audit.patient = Some(format!("Patient/{patient}"));
        let since = self.today() - Duration::days(i64::from(self.care_lookback_days));
        let relationship =
            care_relationship(&self.store, &session, &patient, principal.practitioner_id.as_ref(), since).await?;
        audit.relationship_reads = relationship.reads.clone();
        let decision = self.authorizer.decide(
            &principal,
            FINALIZE_ACTION,
            ("Patient", patient.as_str()),
            json!({
                "care_relationship": relationship.established,
                "unmet_criteria": stored.unmet_criteria,
                "override_reason": override_reason.is_some(),
            }),
        );
        info!(allowed = decision.allowed, policies = ?decision.policies, unmet = stored.unmet_criteria, "authorization decided");
        let allowed = decision.allowed;
        audit.decision = Some(decision);
        if !allowed {
            return Err(ToolError::Denied);
        }
        if stored.status == DraftStatus::Final {
            return Err(ToolError::invalid("the draft is already finalized"));
        }

        let context = EncryptionContext::draft(&self.tenant, patient.as_str(), &stored.id);
        let plaintext = self.keys.open(&session, &stored.sealed, &context).await?;
        let mut content: DraftContent = serde_json::from_slice(&plaintext).map_err(|_| ToolError::Internal)?;
        let now = OffsetDateTime::now_utc().format(&Rfc3339).map_err(|_| ToolError::Internal)?;
        let practitioner = principal.practitioner_id.as_ref().map(|p| format!("Practitioner/{p}"));
        let claim = content.bundle["entry"]
            .get_mut(0)
            .map(|e| &mut e["resource"])
            .filter(|r| r["resourceType"] == "Claim")
            .ok_or(ToolError::Internal)?;
        claim["status"] = json!("active");
        content.attestation = Some(json!({
            "attested_by": principal.subject,
            "practitioner": practitioner,
            "attested_at": now,
            "statement": attestation,
            "override_reason": override_reason,
            "unmet_criteria": stored.unmet_criteria,
        }));
        // An override is the clinician's, so only the reason is kept beside the attestation it qualifies.
        audit.detail = Some(Detail::PriorAuthFinalize {
            draft_id: input.draft_id.clone(),
            attested: true,
            override_reason: override_reason.clone(),
        });
        let sealed = self
            .seal(&session, &stored.id, patient.as_str(), DraftStatus::Final, stored.unmet_criteria, &content)
            .await?;
        // Only if nobody finalized (or changed) it since our read: of two concurrent finalizes, one wins.
        self.drafts.replace(&session, &input.draft_id, &sealed, version.as_deref()).await?;
        let text = format!(
            "Prior-authorization request {} is finalized (Claim status active){}.",
            input.draft_id,
            if override_reason.is_some() { ", with an override of unmet criteria" } else { "" }
        );
        Ok(ToolReply {
            result: json!({"draft_id": input.draft_id, "status": "final", "bundle": content.bundle, "attestation": content.attestation}),
            text,
        })
    }
}

/// What the draft reads: the patient, the ordering practitioner, and per evidence type one search
/// restricted to the policy's codes and the elements the evaluation reads.
struct Fetched {
    patient: Option<Value>,
    practitioner: Option<Value>,
    evidence: Vec<Value>,
    reads: Vec<String>,
}

pub fn evidence_queries(patient: &FhirId, policy: &CoveragePolicy) -> Vec<SearchQuery> {
    let kinds = [
        (
            EvidenceResource::Condition,
            "Condition",
            "code",
            &["id", "code", "clinicalStatus", "verificationStatus", "onset", "abatement", "recordedDate", "subject"][..],
        ),
        (
            EvidenceResource::Observation,
            "Observation",
            "code",
            &["id", "status", "code", "effective", "value", "subject"][..],
        ),
        (
            EvidenceResource::MedicationRequest,
            "MedicationRequest",
            "code",
            &["id", "status", "intent", "medication", "authoredOn", "subject"][..],
        ),
        (EvidenceResource::Procedure, "Procedure", "code", &["id", "status", "code", "performed", "subject"][..]),
        (EvidenceResource::Encounter, "Encounter", "type", &["id", "status", "class", "type", "period", "subject"][..]),
    ];
    let mut queries = Vec::new();
    for (kind, resource_type, parameter, elements) in kinds {
        let tokens: Vec<String> = policy
            .criteria
            .iter()
            .filter(|c| c.evidence.resource == kind)
            .flat_map(|c| c.evidence.codes.iter().map(|code| format!("{}|{code}", c.evidence.code_system)))
            .fold(Vec::new(), |mut acc, t| {
                if !acc.contains(&t) {
                    acc.push(t);
                }
                acc
            });
        if tokens.is_empty() {
            continue;
        }
        queries.push(
            SearchQuery::new(resource_type)
                .patient(patient)
                .param(parameter, tokens.join(","))
                .elements(elements)
                .count(100)
                .pages(5),
        );
    }
    queries
}

async fn fetch(
    store: &impl FhirStore,
    session: &SessionContext,
    patient: &FhirId,
    practitioner: &FhirId,
    policy: &CoveragePolicy,
) -> Result<Fetched, ToolError> {
    let patient_query = SearchQuery::new("Patient")
        .patient(patient)
        .elements(&["id", "identifier", "name", "gender", "birthDate"])
        .count(1)
        .pages(1);
    let practitioner_query = SearchQuery::new("Practitioner")
        .param("_id", practitioner.as_str())
        .elements(&["id", "identifier", "name"])
        .count(1)
        .pages(1);
    let queries = evidence_queries(patient, policy);
    let (p, pr, e0, e1, e2, e3, e4) = tokio::try_join!(
        store.search(session, &patient_query),
        store.search(session, &practitioner_query),
        maybe_search(store, session, queries.first()),
        maybe_search(store, session, queries.get(1)),
        maybe_search(store, session, queries.get(2)),
        maybe_search(store, session, queries.get(3)),
        maybe_search(store, session, queries.get(4)),
    )?;
    let mut reads = Vec::new();
    let mut evidence = Vec::new();
    for set in [&p, &pr, &e0, &e1, &e2, &e3, &e4] {
        reads.extend(set.references());
    }
    for set in [&e0, &e1, &e2, &e3, &e4] {
        evidence.extend(set.parse::<Value>().items);
    }
    Ok(Fetched {
        patient: p.parse::<Value>().items.into_iter().next(),
        practitioner: pr.parse::<Value>().items.into_iter().next(),
        evidence,
        reads,
    })
}

async fn maybe_search(
    store: &impl FhirStore,
    session: &SessionContext,
    query: Option<&SearchQuery>,
) -> Result<SearchSet, shared::fhir::FhirError> {
    match query {
        Some(query) => store.search(session, query).await,
        None => Ok(SearchSet::default()),
    }
}

fn reference_of(resource: &Value) -> Option<String> {
    Some(format!("{}/{}", resource.get("resourceType")?.as_str()?, resource.get("id")?.as_str()?))
}

/// 128 random bits as hex: unguessable enough for an id that Cedar still guards.
fn new_draft_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

fn render_text(draft_id: &str, policy: &CoveragePolicy, evaluation: &Evaluation, letter: &Narrative) -> String {
    let mut lines = vec![format!(
        "DRAFT prior-authorization request {draft_id} for {} {} under {} (as of {}): overall {}.",
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
    lines.push("Not final until a treating clinician attests it (prior_auth_finalize).".to_owned());
    lines.join("\n")
}

fn envelope_name(envelope: &Envelope) -> &'static str {
    match envelope {
        Envelope::BedrockOpenApi { .. } => "bedrock_openapi",
        Envelope::BedrockFunction { .. } => "bedrock_function",
        Envelope::Gateway => "agentcore_gateway",
        Envelope::Direct => "direct",
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
