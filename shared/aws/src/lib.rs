//! AWS adapters behind the ports of `shared`: Bedrock Converse with a mandatory Guardrail
//! ([`bedrock::BedrockModel`]), a clinical writer on it with an `ApplyGuardrail` contextual grounding check
//! ([`writer::BedrockWriter`]), Knowledge Base Retrieve ([`knowledge::BedrockKnowledgeBase`]), per-session STS
//! credentials ([`sts::SessionCredentials`]), the HealthLake control-plane self-check ([`healthlake`]),
//! Secrets Manager with a TTL cache ([`secrets::SecretsManagerSecrets`]) and KMS envelope encryption and
//! pseudonyms ([`kms::KmsKeys`]).
//!
//! Every adapter bounds its retries and timeouts by the invocation deadline ([`CallPolicy`]) and maps what
//! AWS says to the port's own error: throttling, 5xx, timeouts and transport failures become "unavailable"
//! after the retries; anything else is "rejected". No request or response body reaches a log line.
//!
//! # Choosing AWS or local per port
//!
//! [`config::Deployment::from_env`] reads the environment once: the shared configuration and one switch per
//! port (see `shared/aws/README.md` for the full table):
//!
//! | variable | values | needs |
//! | --- | --- | --- |
//! | `MODEL_PROVIDER` | `none` (default), `bedrock` | `BEDROCK_MODEL_ID`, `BEDROCK_GUARDRAIL_ID`, `BEDROCK_GUARDRAIL_VERSION`, `BEDROCK_CROSS_REGION_INFERENCE` (optional, default `false`) |
//! | `CLINICAL_WRITER` | `local` (default), `bedrock` | the model variables above |
//! | `KNOWLEDGE_BASE` | `local` (default), `bedrock` | `KNOWLEDGE_BASE_ID`; `PAYER_POLICY_BUCKET` for [`config::Ports::payer_policies`] |
//! | `KEYS` | `local` (default), `kms` | `LOCAL_MASTER_KEY` (64 hex, optional) / `KMS_KEY_ID`, `KMS_MAC_KEY_ID` (optional) |
//! | `SESSION_CREDENTIALS` | `off` (default), `sts` | `DATA_ACCESS_ROLE_ARN` |
//! | `HEALTHLAKE_DATASTORE_ID` | a datastore id (optional) | cold-start self-check; sets the FHIR endpoint |
//!
//! # Wiring a tool (ICD-10 coding, prior-auth drafts)
//!
//! In `main.rs`'s `build()`:
//!
//! ```text
//! let deployment = Deployment::from_env().await?;    // refuses to start on a datastore that is not ACTIVE
//! let ports = &deployment.ports;                      // or not under a customer-managed key
//! let store = deployment.fhir_store(&http);           // HealthLake, signed per session when configured
//! let model = ports.model()?;                 // Option<BedrockModel>: None = deterministic path only
//! let kb = ports.knowledge_base(MyLocalKb::load()?)?;   // KnowledgeAdapter<MyLocalKb>: chunks (ICD-10)
//! let policies = ports.payer_policies(PolicyFiles::default())?;   // whole documents from the policy bucket
//! let keys = ports.keys()?;                   // KeysAdapter (LocalKeys or KmsKeys)
//! let mine = deployment.var("MY_TOOL_SETTING");   // the tool's own keys, from the same reading
//! ```
//!
//! `Deployment::from_env` is async (it loads the SDK configuration only when a port is on AWS), so `build()` in
//! `main.rs` is an `async fn` run inside the runtime by `shared::tool::lambda_main`. Add
//! `shared-aws.workspace = true` to the tool's dependencies; tests of the tool keep using the local adapters
//! (`LocalKeys`, `EnvSecrets`, `shared::model::ScriptedModel`, the tool's own knowledge base).
//!
//! Then make the tool generic over `LanguageModel`, `KnowledgeBase`, `Keys` and `Secrets` and store these
//! values. When the model answers [`shared::model::ModelOutcome::GuardrailIntervened`], use the tool's
//! deterministic output and record `guardrail_action: "intervened"` in the audit record. Before calling a
//! model, replace identifiers the model does not need by tokens; put note or user text in
//! `ModelRequest::guarded_text` and retrieved passages in `grounding_sources`. Give the `SessionContext` the
//! verified caller (`.with_caller(principal.subject)`) so per-session credentials carry it.

pub mod bedrock;
pub mod config;
pub mod healthlake;
pub mod kms;
pub mod knowledge;
pub mod s3;
pub mod secrets;
pub mod sts;
pub mod writer;

use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use shared::session::SessionContext;

/// What building or using an adapter can fail with, outside the ports' own errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    #[error("environment variable `{0}` is missing")]
    Missing(&'static str),
    #[error("environment variable `{0}` is invalid")]
    Invalid(&'static str),
    #[error("an aws service is unavailable")]
    Unavailable,
    #[error("an aws service rejected the request")]
    Rejected,
    #[error("the healthlake datastore is not active")]
    DatastoreNotActive,
    #[error("the healthlake datastore is not encrypted with a customer-managed key")]
    DatastoreNotCustomerManaged,
    #[error("per-session credentials need a verified caller")]
    NoCaller,
    #[error(
        "`BEDROCK_MODEL_ID` names a model bedrock serves on demand only through an inference profile: give an \
         application inference profile arn in this region, or a geographic profile id with \
         `BEDROCK_CROSS_REGION_INFERENCE=true`"
    )]
    ModelNeedsInferenceProfile,
    #[error(
        "`BEDROCK_MODEL_ID` is a cross-region inference profile, which may process prompts in other regions of \
         its geography; set `BEDROCK_CROSS_REGION_INFERENCE=true` to allow that"
    )]
    CrossRegionInferenceOff,
    #[error("`BEDROCK_MODEL_ID` is a global inference profile, which may process prompts in any region; never allowed")]
    GlobalInferenceProfile,
    #[error("`BEDROCK_MODEL_ID` cannot be invoked from `AWS_REGION`: it names another region or geography")]
    ModelOutsideRegion,
}

impl From<Upstream> for AwsError {
    fn from(upstream: Upstream) -> Self {
        match upstream {
            Upstream::Unavailable => Self::Unavailable,
            Upstream::Rejected => Self::Rejected,
        }
    }
}

/// Retries and timeouts of one AWS call, bounded by the invocation deadline.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// One attempt never waits longer than this, even with a distant deadline.
    pub attempt_timeout: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(20),
        }
    }
}

impl CallPolicy {
    /// Standard retry mode (throttling and transient errors, with jitter) for `max_attempts`.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// The whole operation, retries included, ends before the invocation's deadline.
    pub fn timeout_config(&self, session: &SessionContext) -> Result<TimeoutConfig, Upstream> {
        let remaining = session.remaining();
        if remaining.is_zero() {
            return Err(Upstream::Unavailable);
        }
        Ok(TimeoutConfig::builder()
            .operation_timeout(remaining)
            .operation_attempt_timeout(self.attempt_timeout.min(remaining))
            .connect_timeout(Duration::from_secs(2).min(remaining))
            .build())
    }
}

/// How an AWS call failed, before it is mapped to a port's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Throttled, 5xx, timed out or unreachable after the retries: worth trying again later.
    Unavailable,
    /// The service refused the request (validation, access denied, not found): retrying will not help.
    Rejected,
}

/// Error codes that mean "not now" even when the service answers with a 4xx.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalServerException",
    "InternalFailure",
    "ModelNotReadyException",
    "ModelTimeoutException",
    "RequestTimeout",
    "KMSInternalException",
    "DependencyTimeoutException",
    "InternalServiceError",
    "InternalServiceErrorException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

/// Classifies an SDK error without keeping its message (which may quote the request).
pub fn classify<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Upstream {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Upstream::Unavailable,
        SdkError::ServiceError(context) => {
            let transient = context.raw().status().is_server_error()
                || context.raw().status().as_u16() == 429
                || context.err().code().is_some_and(|code| TRANSIENT_CODES.contains(&code));
            if transient { Upstream::Unavailable } else { Upstream::Rejected }
        }
        _ => Upstream::Rejected,
    }
}

/// The error code alone (e.g. `ThrottlingException`), safe for a log line.
pub fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> &'static str {
    match error {
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch_failure",
        SdkError::ResponseError(_) => "response_error",
        SdkError::ConstructionFailure(_) => "construction_failure",
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("unknown");
            // Only known codes are logged: an unknown code string is not trusted to be free of request data.
            TRANSIENT_CODES
                .iter()
                .chain(KNOWN_REJECTIONS)
                .find(|known| **known == code)
                .copied()
                .unwrap_or("service_error")
        }
        _ => "unknown",
    }
}

const KNOWN_REJECTIONS: &[&str] = &[
    "AccessDeniedException",
    "ValidationException",
    "ResourceNotFoundException",
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "InvalidKeyUsageException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InvalidParameterException",
    "MalformedPolicyDocument",
    "RegionDisabledException",
];

/// Keeps a value inside a character set by replacing every other character with `_`, and truncates it.
pub(crate) fn restrict(raw: &str, max: usize, allowed: impl Fn(char) -> bool) -> String {
    raw.chars().map(|c| if allowed(c) { c } else { '_' }).take(max).collect()
}
