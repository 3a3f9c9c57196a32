//! One tool shell for every tool: each tool action keeps only its clinical logic.
//!
//! A tool action declares its name, its Cedar action and its typed input, and implements two steps:
//! `authorize` (the typed Cedar gate, plus the minimal relationship reads a decision needs) and `run` (the
//! clinical work, given the permit). The shell does the rest, in this fixed order for every tool:
//!
//! span (request id; session id as soon as known) → envelope → accepted envelope → `SessionId` → tool name →
//! verified identity → arguments (unknown ones rejected by name, values never echoed) → authorize → run →
//! one audit record (an intent record at the first permit, the final record at the end) and its metrics →
//! the reply, rendered in the envelope's format.
//!
//! A function serving several actions (prior-auth: draft and finalize) passes a tuple of them.

mod args;
mod channel;
mod gate;
mod recorder;

use std::future::Future;
use std::process::ExitCode;
use std::time::Instant;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tracing::{Instrument, info_span, warn};

pub use self::args::parse_arguments;
pub use self::channel::{BREAK_GLASS_MAX_MINUTES, BreakGlass, SIGNOFF_MAX_AGE_MINUTES, Signoff};
pub use self::gate::{Action, CedarContext, Gate, Permit, Resource, context_matches_schema};
pub use self::recorder::{ModelUse, Recorder};
use crate::audit::{AuditRecord, AuditSink, CheckpointWhen};
use crate::authz::{Authorizer, AuthzError};
use crate::config::{Config, ConfigError};
use crate::envelope::{self, EnvelopeSettings, ToolCall, ToolReply};
use crate::error::ToolError;
use crate::identity::{JwtVerifier, Principal};
use crate::runtime::{self, Handler, Invocation};
use crate::schema::ToolSchema;
use crate::session::{SessionContext, SessionId};

/// A tool's input type declares the tool: its name and description as the model sees them, and the Cedar
/// action it is gated by. The agent-facing schemas (`schemas/`) are generated from the type.
pub trait ToolInput: DeserializeOwned + JsonSchema {
    /// The tool name the model calls (`patient_summary`); `/patient-summary` and `/patient_summary` are the
    /// same tool as an OpenAPI path.
    const NAME: &'static str;
    /// What the tool does and when to use it, written for the model.
    const DESCRIPTION: &'static str;
    /// The Cedar action the gate asks about.
    const ACTION: Action;
    /// Names that belong to the front end's own channel (a clinician's sign-off, a break-glass grant). The
    /// schema never offers them; when the model writes one anyway (a prompt injection, a confused model) it
    /// is refused by name, saying where the value must come from.
    const CHANNEL_ONLY: &'static [&'static str] = &[];
    /// A Bedrock Agent returns control to the application for the user's confirmation before calling it.
    const REQUIRE_CONFIRMATION: bool = false;

    /// The schema an agent is given for this tool.
    fn schema() -> ToolSchema {
        ToolSchema::new::<Self>(Self::NAME, Self::DESCRIPTION).confirmed(Self::REQUIRE_CONFIRMATION)
    }
}

/// One action of a tool: its checks and its two steps.
pub trait ToolAction {
    /// The arguments as the model writes them.
    type Input: ToolInput;
    /// The arguments once checked (ids parsed, lengths bounded).
    type Args;
    /// What `authorize` read to decide and `run` acts on (`()` for most actions).
    type Facts;

    /// Checks the arguments; a failure is `invalid_input` naming the field, before any call downstream.
    fn check(input: Self::Input) -> Result<Self::Args, ToolError>;

    /// Asks the gate (the first statement), reading at most the relationship facts the decision needs.
    fn authorize(
        &self,
        call: &Call<'_>,
        args: &Self::Args,
    ) -> impl Future<Output = Result<Permit<Self::Facts>, ToolError>>;

    /// The clinical work, allowed by `permit`.
    fn run(
        &self,
        call: &Call<'_>,
        permit: Permit<Self::Facts>,
        args: Self::Args,
    ) -> impl Future<Output = Result<ToolReply, ToolError>>;
}

/// Everything a step may use about its call.
pub struct Call<'a> {
    /// Session id, request id, deadline and the verified subject: passed to every downstream call.
    pub session: SessionContext,
    /// The verified caller.
    pub principal: &'a Principal,
    /// The Cedar gate of this call; its decisions go into the audit record.
    pub gate: Gate<'a>,
    /// The call's audit record.
    pub audit: &'a Recorder<'a>,
    /// What arrived through the channel the model cannot write (break-glass, a clinician's sign-off).
    pub channel: &'a Channel,
    /// The organisation whose datastore this deployment serves.
    pub tenant: &'a str,
}

/// Values from the front end's own channel (Bedrock session attributes, Gateway propagated headers, the
/// direct event): never from tool arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channel {
    pub break_glass: Option<String>,
    pub signoff: Option<String>,
}

/// The actions one function serves: a single `ToolAction`, or a tuple of them.
pub trait Actions {
    /// The action named `tool` (any of its spellings), as (tool name, Cedar action).
    fn resolve(&self, tool: &str) -> Option<(&'static str, Action)>;

    /// Checks the arguments, authorizes and runs the action named `tool` (already resolved).
    fn dispatch(
        &self,
        tool: &str,
        call: &Call<'_>,
        arguments: &Map<String, Value>,
    ) -> impl Future<Output = Result<ToolReply, ToolError>>;

    fn schemas(&self) -> Vec<ToolSchema>;
}

/// Whether `called` (a tool name, an OpenAPI path, a function name) names the tool `name`.
pub fn names_tool(called: &str, name: &str) -> bool {
    let called = called.strip_prefix('/').unwrap_or(called);
    called.len() == name.len() && called.bytes().zip(name.bytes()).all(|(c, n)| c == n || (c == b'-' && n == b'_'))
}

async fn run_action<A: ToolAction>(
    action: &A,
    call: &Call<'_>,
    arguments: &Map<String, Value>,
) -> Result<ToolReply, ToolError> {
    if let Some(name) = <A::Input as ToolInput>::CHANNEL_ONLY.iter().find(|n| arguments.contains_key(**n)) {
        return Err(ToolError::invalid(format!(
            "`{name}` is never a tool argument: it comes only from the clinician, through the application"
        )));
    }
    let input: A::Input = parse_arguments(arguments)?;
    let args = A::check(input)?;
    let permit = action.authorize(call, &args).await?;
    if permit.action() != <A::Input as ToolInput>::ACTION {
        // A permit for another action cannot authorize this one.
        return Err(ToolError::Internal);
    }
    action.run(call, permit, args).await
}

impl<A: ToolAction> Actions for A {
    fn resolve(&self, tool: &str) -> Option<(&'static str, Action)> {
        let (name, action) = (<A::Input as ToolInput>::NAME, <A::Input as ToolInput>::ACTION);
        names_tool(tool, name).then_some((name, action))
    }

    async fn dispatch(
        &self,
        _tool: &str,
        call: &Call<'_>,
        arguments: &Map<String, Value>,
    ) -> Result<ToolReply, ToolError> {
        run_action(self, call, arguments).await
    }

    fn schemas(&self) -> Vec<ToolSchema> {
        vec![A::Input::schema()]
    }
}

impl<A: ToolAction, B: ToolAction> Actions for (A, B) {
    fn resolve(&self, tool: &str) -> Option<(&'static str, Action)> {
        self.0.resolve(tool).or_else(|| self.1.resolve(tool))
    }

    async fn dispatch(
        &self,
        tool: &str,
        call: &Call<'_>,
        arguments: &Map<String, Value>,
    ) -> Result<ToolReply, ToolError> {
        if names_tool(tool, <A::Input as ToolInput>::NAME) {
            run_action(&self.0, call, arguments).await
        } else {
            run_action(&self.1, call, arguments).await
        }
    }

    fn schemas(&self) -> Vec<ToolSchema> {
        vec![A::Input::schema(), B::Input::schema()]
    }
}

/// Less time than this left after a call: checkpoint the chain now rather than when due.
const CHECKPOINT_NOW_WITHIN: std::time::Duration = std::time::Duration::from_millis(1500);

/// A function: its actions and what every call needs, built once at cold start.
pub struct Shell<T, S> {
    pub actions: T,
    pub verifier: JwtVerifier,
    pub authorizer: Authorizer,
    pub audit: S,
    pub envelopes: EnvelopeSettings,
    pub function_name: String,
    pub tenant: String,
}

impl<T: Actions, S: AuditSink> Handler for Shell<T, S> {
    async fn call(&self, invocation: Invocation) -> Value {
        let started = Instant::now();
        let trace_id = crate::telemetry::begin_trace(invocation.trace_header.as_deref(), &invocation.request_id);
        let span = info_span!(
            "tool_call",
            otel.kind = "server",
            function = %self.function_name,
            request_id = %invocation.request_id,
            session_id = tracing::field::Empty,
            tool = tracing::field::Empty,
            trace_id = %trace_id,
        );
        crate::telemetry::link_to_caller(&span, invocation.trace_header.as_deref());
        async {
            let record = AuditRecord::new(&self.function_name, "unknown", "unknown", "unknown", &invocation.request_id);
            let call = match envelope::parse(&invocation.payload, invocation.client_context.as_ref(), &self.envelopes) {
                Ok(call) => call,
                Err(error) => {
                    let recorder = Recorder::new(&self.audit, record, started);
                    let outcome: Result<ToolReply, ToolError> = Err(error);
                    let reply = envelope::render(&envelope::Envelope::Direct, &outcome, &invocation.request_id);
                    recorder.finish(&outcome);
                    self.audit.checkpoint(CheckpointWhen::IfDue).await;
                    return reply;
                }
            };
            let mut record = record;
            record.envelope = call.envelope.name();
            let recorder = Recorder::new(&self.audit, record, started);
            let outcome = self.serve(&call, &invocation, &recorder).await;
            let reply = envelope::render(&call.envelope, &outcome, &invocation.request_id);
            recorder.finish(&outcome);
            // A keyed checkpoint every N records, and now when the deadline is close: an instance that is
            // frozen or ends after this call still has its last records under a checkpoint.
            let near_deadline = invocation.deadline.saturating_duration_since(Instant::now()) < CHECKPOINT_NOW_WITHIN;
            let when = if near_deadline { CheckpointWhen::Now } else { CheckpointWhen::IfDue };
            self.audit.checkpoint(when).await;
            reply
        }
        .instrument(span)
        .await
    }
}

impl<T: Actions, S: AuditSink> Shell<T, S> {
    /// The shell around `actions` with what the configuration names: the identity provider (its JWKS fetched
    /// through `http`), the embedded policies (validated here: invalid ones refuse the start), the accepted
    /// envelopes and the tenant.
    pub fn new(actions: T, config: &Config, http: reqwest::Client, audit: S) -> Result<Self, StartError> {
        let verifier = JwtVerifier::from_jwks_url(&config.jwt_issuer, &config.jwt_audience, &config.jwks_url, http);
        Ok(Self {
            actions,
            verifier,
            authorizer: Authorizer::embedded()?,
            audit,
            envelopes: config.envelopes.clone(),
            function_name: config.function_name.clone(),
            tenant: config.tenant_organization.clone(),
        })
    }

    /// A shell for tests: the test issuer's keys, the embedded policies, every envelope.
    #[cfg(feature = "test-util")]
    pub fn for_tests(actions: T, audit: S, function_name: &str, tenant: &str) -> Self {
        #[expect(clippy::expect_used, reason = "test support: the embedded policies are checked by their own tests")]
        let authorizer = Authorizer::embedded().expect("embedded policies validate");
        Self {
            actions,
            verifier: crate::testing::verifier(),
            authorizer,
            audit,
            envelopes: EnvelopeSettings::default(),
            function_name: function_name.to_owned(),
            tenant: tenant.to_owned(),
        }
    }

    async fn serve(
        &self,
        call: &ToolCall,
        invocation: &Invocation,
        recorder: &Recorder<'_>,
    ) -> Result<ToolReply, ToolError> {
        let session_id = SessionId::parse(call.session_id.as_deref().unwrap_or_default())?;
        tracing::Span::current().record("session_id", session_id.as_str());
        crate::telemetry::set_session_id(session_id.as_str());
        recorder.session(&session_id);

        let (tool, action) = self.actions.resolve(&call.tool).ok_or_else(|| {
            let names: Vec<String> = self.actions.schemas().into_iter().map(|s| format!("`{}`", s.name)).collect();
            ToolError::invalid(format!("this function serves only {}", names.join(" and ")))
        })?;
        tracing::Span::current().record("tool", tool);
        recorder.tool(tool, action.id());

        let principal = self.verifier.verify(call.identity_token.as_deref()).await.map_err(|e| {
            warn!(reason = %e, "identity rejected");
            ToolError::Unauthenticated
        })?;
        recorder.caller(&principal);

        let session = SessionContext::new(session_id, invocation.request_id.clone(), invocation.deadline)
            .with_caller(principal.subject.clone())
            .with_faults(recorder.faults());
        let channel = Channel { break_glass: call.break_glass.clone(), signoff: call.signoff.clone() };
        let step = Call {
            session,
            principal: &principal,
            gate: Gate { authorizer: &self.authorizer, principal: &principal, tenant: &self.tenant, recorder },
            audit: recorder,
            channel: &channel,
            tenant: &self.tenant,
        };
        self.actions.dispatch(tool, &step, &call.arguments).await
    }
}

/// Why a function refused to start. Reported to the runtime API as an init error; it never serves then.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the runtime api is unavailable: {0}")]
    Runtime(#[from] runtime::RuntimeError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("policies: {0}")]
    Policies(#[from] AuthzError),
    #[error("the http client could not be built")]
    HttpClient,
    #[error("adapter: {0}")]
    Adapter(Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Tool(&'static str),
}

impl StartError {
    pub fn adapter(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Adapter(Box::new(error))
    }
}

/// A panic's message can carry input text (an index into a note, a value in an assertion): the hook logs
/// where it happened, never what it said.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let (file, line) = info.location().map_or(("unknown", 0), |l| (l.file(), l.line()));
        tracing::error!(file, line, "panic; the message is not logged because it may carry input");
    }));
}

/// The TLS configuration of every HTTP client: TLS 1.2 and 1.3 with aws-lc-rs, trusting the Mozilla root
/// store compiled into `webpki-roots` (Amazon Trust Services' roots, which sign the HealthLake, Bedrock and S3
/// endpoints, are in it). The system store would be read from disk and parsed at every cold start: 3.4 ms of
/// a 10.9 ms cold start here, where `/etc/ssl/certs` holds 292 files.
pub fn tls_config() -> Result<rustls::ClientConfig, StartError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| StartError::HttpClient)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The HTTP client every adapter shares: short connect timeout, connections kept across warm invocations.
pub fn http_client() -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .connect_timeout(std::time::Duration::from_secs(2))
        .pool_idle_timeout(std::time::Duration::from_secs(50))
        .build()
        .map_err(|_| StartError::HttpClient)
}

/// The whole of a tool's `main`: tracing and the panic hook, the runtime client, the function built once
/// (a failure is reported as an init error and the function refuses to serve), then the runtime loop.
pub fn lambda_main<H, F>(build: impl FnOnce() -> F) -> ExitCode
where
    H: Handler,
    F: Future<Output = Result<H, StartError>>,
{
    crate::telemetry::init();
    install_panic_hook();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async {
        let client = match runtime::client_from_env() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "no runtime api");
                return ExitCode::FAILURE;
            }
        };
        let handler = match build().await {
            Ok(handler) => handler,
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, "initialisation failed");
                let _ = runtime::report_init_error(&client, "Runtime.InitError", &message).await;
                return ExitCode::FAILURE;
            }
        };
        match runtime::serve(&client, &handler, None).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "runtime loop ended");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tls_tests {
    #[test]
    fn the_clients_take_the_compiled_in_roots() {
        // reqwest refuses a preconfigured TLS backend of another rustls version at build(): this fails if the
        // workspace's rustls drifts from reqwest's.
        assert!(super::http_client().is_ok());
        // AWS endpoints chain to Amazon Trust Services' roots (published at amazontrust.com/repository; no AWS
        // documentation page we found lists the roots per service): all four must be in the compiled-in store.
        for name in ["Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4"] {
            let found = webpki_roots::TLS_SERVER_ROOTS
                .iter()
                .any(|anchor| anchor.subject.as_ref().windows(name.len()).any(|w| w == name.as_bytes()));
            assert!(found, "{name} is not in webpki-roots");
        }
    }
}
