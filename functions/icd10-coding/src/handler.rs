//! The ICD-10 coding tool: envelope → verified identity → note checks → Cedar → deterministic coder →
//! (model path, pseudonymised) → FHIR cross-check → reply, with one audit record per call whatever the outcome.

use std::collections::BTreeMap;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::ToolError;
use shared::audit::{AuditRecord, AuditSink, Outcome};
use shared::authz::Authorizer;
use shared::envelope::{self, Envelope, ToolCall, ToolReply};
use shared::fhir::{FhirId, FhirStore};
use shared::identity::JwtVerifier;
use shared::knowledge::{KnowledgeBase, RetrievalQuery};
use shared::model::{LanguageModel, ModelOutcome};
use shared::phi::{self, Pseudonymised};
use shared::runtime::{Handler, Invocation};
use shared::session::{SessionContext, SessionId};
use tracing::{Instrument, info, info_span, warn};

use crate::coder::{self, Coding};
use crate::history::{self, History};
use crate::reply::{self, ModelStats, ProposalOut, Source};
use crate::select::{self, Selected};
use crate::table::CodeTable;

/// The Cedar action this tool asks about.
pub const ACTION: &str = "icd10_coding.propose";
/// Names the tool answers to in each envelope.
const TOOL_NAMES: &[&str] = &["icd10_coding", "/icd10-coding", "/icd10_coding"];
/// The largest note accepted, in bytes of UTF-8 (50 KiB): several pages of a visit note; anything larger is a
/// document dump, not an encounter note.
pub const MAX_NOTE_BYTES: usize = 50 * 1024;
/// Passages the model is given.
const RETRIEVED_PASSAGES: u32 = 20;

/// Everything the tool needs, built once at cold start.
pub struct CodingTool<S, M, K, A> {
    pub store: S,
    /// `None`: the deterministic coder alone (the local default).
    pub model: Option<M>,
    pub knowledge: K,
    pub audit: A,
    pub verifier: JwtVerifier,
    pub authorizer: Authorizer,
    pub table: &'static CodeTable,
    pub function_name: String,
    /// The organisation whose datastore this deployment serves (`TENANT_ORGANIZATION`).
    pub tenant: String,
}

/// The tool's arguments, from whichever envelope.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodingInput {
    /// The encounter note as plain text (at most 51,200 bytes of UTF-8). Evidence offsets in the reply are
    /// character offsets into exactly this text.
    pub note: String,
    /// FHIR id of the Patient (the id in `Patient/<id>`). Optional: without it the FHIR history cross-check is
    /// skipped and the reply says so.
    #[serde(default)]
    pub patient_id: Option<String>,
    /// FHIR id of the Encounter the note documents. Optional; echoed in the reply.
    #[serde(default)]
    pub encounter_id: Option<String>,
}

/// The argument names `CodingInput` accepts, for the unknown-argument check (which names the field).
const ARGUMENTS: &[&str] = &["note", "patient_id", "encounter_id"];

#[derive(Debug)]
struct CodingArgs {
    note: String,
    patient: Option<FhirId>,
    encounter: Option<FhirId>,
}

impl CodingArgs {
    fn from_call(call: &ToolCall) -> Result<Self, ToolError> {
        if let Some(unknown) = call.arguments.keys().find(|k| !ARGUMENTS.contains(&k.as_str())) {
            return Err(ToolError::invalid(format!("unknown argument `{}`", sanitize_name(unknown))));
        }
        // serde's message could quote the note; ours names the field only.
        let input: CodingInput = serde_json::from_value(Value::Object(call.arguments.clone()))
            .map_err(|_| ToolError::invalid("`note` is required and every argument must be a string"))?;
        if input.note.len() > MAX_NOTE_BYTES {
            return Err(ToolError::invalid(format!(
                "`note` is {} bytes; the limit is {MAX_NOTE_BYTES} bytes (50 KiB) of UTF-8 text",
                input.note.len()
            )));
        }
        if input.note.trim().is_empty() {
            return Err(ToolError::invalid("`note` is empty"));
        }
        if input.note.contains('\0') {
            return Err(ToolError::invalid("`note` must be plain text"));
        }
        let id = |field: &str, raw: Option<String>| {
            raw.filter(|s| !s.trim().is_empty()).map(|s| FhirId::argument(field, s.trim())).transpose()
        };
        Ok(Self {
            note: input.note,
            patient: id("patient_id", input.patient_id)?,
            encounter: id("encounter_id", input.encounter_id)?,
        })
    }
}

impl<S: FhirStore, M: LanguageModel, K: KnowledgeBase, A: AuditSink> Handler for CodingTool<S, M, K, A> {
    async fn call(&self, invocation: Invocation) -> Value {
        let started = Instant::now();
        let span = info_span!("icd10_coding", request_id = %invocation.request_id, session_id = tracing::field::Empty);
        async {
            let call = match envelope::parse(&invocation.payload, invocation.client_context.as_ref()) {
                Ok(call) => call,
                Err(error) => {
                    let mut audit =
                        AuditRecord::new(&self.function_name, "unknown", ACTION, "unknown", &invocation.request_id);
                    audit.outcome = Outcome::Error(error.kind());
                    audit.latency_ms = elapsed_ms(started);
                    shared::metrics::emit(&audit);
                    self.audit.write(audit);
                    return envelope::render(&Envelope::Direct, &Err(error), &invocation.request_id);
                }
            };
            let mut audit = AuditRecord::new(
                &self.function_name,
                "icd10_coding",
                ACTION,
                envelope_name(&call.envelope),
                &invocation.request_id,
            );
            let outcome = self.code(&call, &invocation, &mut audit).await;
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

/// What the model path produced.
struct ModelPath {
    stats: ModelStats,
    selected: Vec<Selected>,
}

impl<S: FhirStore, M: LanguageModel, K: KnowledgeBase, A: AuditSink> CodingTool<S, M, K, A> {
    async fn code(
        &self,
        call: &ToolCall,
        invocation: &Invocation,
        audit: &mut AuditRecord,
    ) -> Result<ToolReply, ToolError> {
        if !TOOL_NAMES.contains(&call.tool.as_str()) {
            return Err(ToolError::invalid("this function serves only the `icd10_coding` tool"));
        }
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

        // An invalid request is refused before any decision or downstream call.
        let args = CodingArgs::from_call(call)?;
        audit.patient = args.patient.as_ref().map(|p| format!("Patient/{p}"));

        let decision = self.authorizer.decide(
            &principal,
            ACTION,
            ("Organization", self.tenant.as_str()),
            json!({"with_patient": args.patient.is_some()}),
        );
        info!(allowed = decision.allowed, policies = ?decision.policies, "authorization decided");
        let allowed = decision.allowed;
        audit.decision = Some(decision);
        if !allowed {
            return Err(ToolError::Denied);
        }

        let session = SessionContext::new(session_id, invocation.request_id.clone(), invocation.deadline)
            .with_caller(principal.subject.clone());
        let note = args.note.as_str();
        // Locally nothing leaves the process, so the coder reads the note as written; what goes to a model (and
        // any log) is the pseudonymised text.
        let coding = coder::code_note(self.table, note);
        let pseudo = phi::pseudonymise(note);

        let (history, model_path) =
            tokio::join!(self.read_history(&session, args.patient.as_ref()), self.model_path(&session, &pseudo));
        let history = history?;
        if let Some(h) = &history {
            audit.resources_read.clone_from(&h.reads);
            if h.unparsed > 0 {
                warn!(unparsed = h.unparsed, "some history resources did not parse and were left out");
            }
        }
        audit.model = Some(model_path.stats.model.clone().unwrap_or_else(|| "local-deterministic".to_owned()));
        audit.guardrail_action =
            Some(if model_path.stats.status == "guardrail_intervened" { "intervened" } else { "none" }.to_owned());

        let proposals = merge(self.table, note, &pseudo, &coding, &model_path.selected, history.as_ref());
        let codes: Vec<&str> = proposals.iter().map(|p| p.code).collect();
        let unaddressed = history.as_ref().map(|h| history::unaddressed(h, note, &codes)).unwrap_or_default();
        let cross_check = match &history {
            None => "skipped: no patient id".to_owned(),
            Some(h) => format!(
                "done: {} history facts mapped ({} unmapped conditions, {} inactive) with {}",
                h.facts.len(),
                h.unmapped_conditions,
                h.inactive_conditions,
                history::MAP_NAME
            ),
        };
        info!(
            proposals = proposals.len(),
            skipped = coding.skipped.len(),
            phi_tokens = pseudo.replacements.len(),
            model_status = model_path.stats.status,
            model_dropped = model_path.stats.dropped,
            "coding finished"
        );

        let phi_counts: BTreeMap<String, usize> =
            pseudo.counts().into_iter().map(|(kind, n)| (reply::name_of(&kind), n)).collect();
        let text = reply::card(&proposals, &cross_check, &unaddressed, &model_path.stats);
        let result = json!({
            "proposals": proposals,
            "skipped": reply::skipped_summary(&coding.skipped),
            "cross_check": cross_check,
            "history": history.as_ref().map(|h| json!({
                "map": history::MAP_NAME,
                "facts": h.facts,
                "unaddressed_chronic_conditions": unaddressed,
            })),
            "model": model_path.stats,
            "pseudonymisation": {"replaced": phi_counts, "applies_to": "every model request and log line"},
            "offsets": reply::OFFSETS,
            "grounding_formula": reply::GROUNDING_FORMULA,
            "patient": args.patient.as_ref().map(|p| format!("Patient/{p}")),
            "encounter": args.encounter.as_ref().map(|e| format!("Encounter/{e}")),
            "status": "proposal: review before use; nothing was written to the record",
        });
        Ok(ToolReply { result, text })
    }

    async fn read_history(
        &self,
        session: &SessionContext,
        patient: Option<&FhirId>,
    ) -> Result<Option<History>, ToolError> {
        match patient {
            None => Ok(None),
            Some(patient) => history::read(&self.store, session, patient).await.map(Some),
        }
    }

    /// Retrieval and model selection; any failure falls back to the deterministic coder, and the reply says so.
    async fn model_path(&self, session: &SessionContext, pseudo: &Pseudonymised) -> ModelPath {
        let mut stats = ModelStats {
            status: "not_configured",
            model: None,
            retrieved_passages: 0,
            proposed: 0,
            accepted: 0,
            dropped: 0,
            dropped_by_reason: BTreeMap::new(),
            merge: reply::MERGE_RULE,
        };
        let Some(model) = &self.model else { return ModelPath { stats, selected: Vec::new() } };
        // The same rules, run on the text the model sees, so its quotes and the checks share offsets.
        let check = coder::code_note(self.table, &pseudo.text);
        let query = RetrievalQuery {
            text: select::retrieval_text(&pseudo.text, &check),
            max_results: RETRIEVED_PASSAGES,
            filters: Vec::new(),
        };
        let passages = match self.knowledge.retrieve(session, &query).await {
            Ok(passages) => passages,
            Err(e) => {
                warn!(error = %e, "retrieval failed; the model selects without passages");
                Vec::new()
            }
        };
        stats.retrieved_passages = passages.len();
        let selected = match model.converse(session, &select::request(&pseudo.text, &passages)).await {
            Err(e) => {
                warn!(error = %e, "model unavailable; deterministic proposals only");
                stats.status = "unavailable";
                Vec::new()
            }
            Ok(ModelOutcome::GuardrailIntervened { model }) => {
                warn!("guardrail intervened; deterministic proposals only");
                stats.status = "guardrail_intervened";
                stats.model = Some(model);
                Vec::new()
            }
            Ok(ModelOutcome::Text { text, model }) => {
                stats.model = Some(model);
                match select::parse(&text) {
                    None => {
                        warn!("model answer is not the required json; deterministic proposals only");
                        stats.status = "unreadable_answer";
                        Vec::new()
                    }
                    Some(answers) => {
                        stats.status = "used";
                        stats.proposed = answers.len();
                        let (selected, dropped) = select::validate(self.table, &pseudo.text, &check, answers);
                        stats.accepted = selected.len();
                        stats.dropped = dropped.len();
                        for reason in dropped {
                            *stats.dropped_by_reason.entry(reason).or_insert(0) += 1;
                        }
                        selected
                    }
                }
            }
        };
        ModelPath { stats, selected }
    }
}

/// Union of the deterministic proposals and the validated model codes (see `reply::MERGE_RULE`).
fn merge(
    table: &CodeTable,
    note: &str,
    pseudo: &Pseudonymised,
    coding: &Coding,
    selected: &[Selected],
    history: Option<&History>,
) -> Vec<ProposalOut> {
    let status = |code: &str| history.map(|h| history::status_of(h, code));
    let mut out: Vec<ProposalOut> = coding
        .proposals
        .iter()
        .map(|p| {
            let source = if selected.iter().any(|s| s.code == p.code) { Source::Both } else { Source::Deterministic };
            let (status, refs) = split(status(p.code));
            reply::from_deterministic(note, p, source, status, refs)
        })
        .collect();
    for s in selected.iter().filter(|s| !coding.proposals.iter().any(|p| p.code == s.code)) {
        let Some(entry) = table.billable(s.code) else { continue };
        let original = pseudo.to_original(s.span.start..s.span.end);
        let Some(evidence) = reply::evidence(note, coder::Span { start: original.start, end: original.end }) else {
            continue;
        };
        let (status, refs) = split(status(s.code));
        let evidence_match = reply::word_overlap(entry.description, &evidence.quote);
        out.push(ProposalOut {
            code: entry.code,
            description: entry.description,
            source: Source::Model,
            assertion: None,
            basis: None,
            evidence: vec![evidence],
            grounding: reply::grounding(evidence_match, Source::Model, status, &refs),
            cross_check: reply::cross_check_label(status),
            fhir_references: refs,
        });
    }
    out
}

fn split(status: Option<(history::HistoryStatus, Vec<String>)>) -> (Option<history::HistoryStatus>, Vec<String>) {
    match status {
        Some((s, refs)) => (Some(s), refs),
        None => (None, Vec::new()),
    }
}

fn sanitize_name(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(40).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_argument_check_knows_exactly_the_schema_fields() {
        let schema = shared::schema::schema_of::<CodingInput>();
        let mut fields: Vec<&str> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        fields.sort_unstable();
        let mut expected = ARGUMENTS.to_vec();
        expected.sort_unstable();
        assert_eq!(fields, expected);
    }
}
