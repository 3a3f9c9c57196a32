//! Everything a function reads from its environment, read once at cold start ([`Deployment`]): the shared
//! configuration, one switch per port, the adapters built from them, and the tool's own keys.
//!
//! The AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL` for an emulator) is loaded only when
//! at least one port is switched to AWS, so the local stack never looks for AWS credentials.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use shared::audit::{LocalChainMac, StdoutAuditSink};
use shared::config::Config;
use shared::fhir::{HttpFhirStore, Signing};
use shared::keys::{EncryptionContext, KeyError, Keys, LocalKeys, Sealed};
use shared::knowledge::{KnowledgeBase, KnowledgeError, Passage, RetrievalQuery};
use shared::session::SessionContext;
use shared::tool::StartError;
use shared::writer::{ClinicalWriter, LocalWriter, Narrative, WriterError, WritingRequest};
use tracing::info;

use crate::AwsError;
use crate::bedrock::{BedrockModel, CrossRegion, Guardrail, ModelId};
use crate::healthlake::check_datastore;
use crate::kms::KmsKeys;
use crate::knowledge::BedrockKnowledgeBase;
use crate::s3::{PolicyBucket, policy_http_client};
use crate::sts::SessionCredentials;
use crate::writer::BedrockWriter;

/// What the environment asks for, before any client is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub region: Option<String>,
    /// Model id and Guardrail, when a model or the Bedrock writer is switched on.
    pub bedrock: Option<(ModelId, Guardrail)>,
    pub model_provider: Provider,
    pub clinical_writer: Provider,
    pub knowledge_base_id: Option<String>,
    /// The bucket whole payer-policy documents are read from (`PAYER_POLICY_BUCKET`).
    pub payer_policy_bucket: Option<String>,
    pub keys: KeysSetting,
    pub data_access_role_arn: Option<String>,
    pub healthlake_datastore_id: Option<String>,
    /// Records between two keyed audit checkpoints (`AUDIT_CHECKPOINT_EVERY`, 1-10000, default 50).
    pub audit_checkpoint_every: u64,
    /// An S3 endpoint override (`AWS_ENDPOINT_URL_S3`, an emulator); else the SDK's `AWS_ENDPOINT_URL`.
    pub s3_endpoint: Option<String>,
    /// Where spans are exported (`OTEL_TRACES_EXPORTER`; README, Traces).
    pub traces: TraceSetting,
}

/// `OTEL_TRACES_EXPORTER`: `none` (default), `file` (`OTEL_TRACES_FILE`: OTLP/JSON lines, the local stack) or
/// `otlp` (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, by default CloudWatch's OTLP traces endpoint in the region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceSetting {
    Off,
    File(std::path::PathBuf),
    /// `signed`: the endpoint is AWS's (`*.amazonaws.com`), so requests carry SigV4 for service `xray`.
    Otlp {
        url: url::Url,
        signed: bool,
    },
}

impl TraceSetting {
    fn from_lookup(get: impl Fn(&str) -> Option<String>, region: Option<&str>) -> Result<Self, AwsError> {
        match get("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("none") => Ok(Self::Off),
            Some("file") => {
                Ok(Self::File(get("OTEL_TRACES_FILE").ok_or(AwsError::Missing("OTEL_TRACES_FILE"))?.into()))
            }
            Some("otlp") => {
                const KEY: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
                let raw = match get(KEY) {
                    Some(raw) => raw,
                    None => format!("https://xray.{}.amazonaws.com/v1/traces", region.ok_or(AwsError::Missing(KEY))?),
                };
                let url = url::Url::parse(&raw).map_err(|_| AwsError::Invalid(KEY))?;
                let host = url.host_str().unwrap_or_default();
                let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
                // Spans name sessions and resources: plain HTTP only to a collector on the same host.
                if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
                    return Err(AwsError::Invalid(KEY));
                }
                Ok(Self::Otlp { signed: host.ends_with(".amazonaws.com"), url })
            }
            Some(_) => Err(AwsError::Invalid("OTEL_TRACES_EXPORTER")),
        }
    }
}

/// Local (or no) adapter, or the AWS one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Local,
    Aws,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysSetting {
    /// 64 hex digits, or a key generated at start (sealed objects then die with the process).
    Local {
        master_hex: Option<String>,
    },
    Kms {
        key_id: String,
        mac_key_id: Option<String>,
    },
}

impl Settings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let get = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        let required = |key: &'static str| get(key).ok_or(AwsError::Missing(key));
        let switch = |key: &'static str, local: &str, aws: &str| match get(key).as_deref() {
            None => Ok(Provider::Local),
            Some(v) if v == local => Ok(Provider::Local),
            Some(v) if v == aws => Ok(Provider::Aws),
            Some(_) => Err(AwsError::Invalid(key)),
        };
        let region = get("AWS_REGION");
        let traces = TraceSetting::from_lookup(get, region.as_deref())?;
        let model_provider = switch("MODEL_PROVIDER", "none", "bedrock")?;
        let clinical_writer = switch("CLINICAL_WRITER", "local", "bedrock")?;
        let bedrock = if model_provider == Provider::Aws || clinical_writer == Provider::Aws {
            let region = region.clone().ok_or(AwsError::Missing("AWS_REGION"))?;
            let cross_region = match get("BEDROCK_CROSS_REGION_INFERENCE").as_deref() {
                None | Some("false") => CrossRegion::Refused,
                Some("true") => CrossRegion::Allowed,
                Some(_) => return Err(AwsError::Invalid("BEDROCK_CROSS_REGION_INFERENCE")),
            };
            let model_id = ModelId::parse_with(&required("BEDROCK_MODEL_ID")?, &region, cross_region)?;
            let guardrail =
                Guardrail::new(&required("BEDROCK_GUARDRAIL_ID")?, &required("BEDROCK_GUARDRAIL_VERSION")?)?;
            Some((model_id, guardrail))
        } else {
            None
        };
        let knowledge_base_id = match switch("KNOWLEDGE_BASE", "local", "bedrock")? {
            Provider::Local => None,
            Provider::Aws => Some(required("KNOWLEDGE_BASE_ID")?),
        };
        let keys = match switch("KEYS", "local", "kms")? {
            Provider::Local => KeysSetting::Local { master_hex: get("LOCAL_MASTER_KEY") },
            Provider::Aws => KeysSetting::Kms { key_id: required("KMS_KEY_ID")?, mac_key_id: get("KMS_MAC_KEY_ID") },
        };
        let data_access_role_arn = match switch("SESSION_CREDENTIALS", "off", "sts")? {
            Provider::Local => None,
            Provider::Aws => {
                let arn = required("DATA_ACCESS_ROLE_ARN")?;
                if !arn.starts_with("arn:") || !arn.contains(":role/") {
                    return Err(AwsError::Invalid("DATA_ACCESS_ROLE_ARN"));
                }
                Some(arn)
            }
        };
        Ok(Self {
            region,
            bedrock,
            model_provider,
            clinical_writer,
            knowledge_base_id,
            payer_policy_bucket: get("PAYER_POLICY_BUCKET"),
            keys,
            data_access_role_arn,
            healthlake_datastore_id: get("HEALTHLAKE_DATASTORE_ID"),
            audit_checkpoint_every: match get("AUDIT_CHECKPOINT_EVERY") {
                None => 50,
                Some(raw) => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or(AwsError::Invalid("AUDIT_CHECKPOINT_EVERY"))?,
            },
            s3_endpoint: get("AWS_ENDPOINT_URL_S3"),
            traces,
        })
    }

    fn needs_aws(&self) -> bool {
        self.bedrock.is_some()
            || self.knowledge_base_id.is_some()
            || matches!(self.keys, KeysSetting::Kms { .. })
            || self.data_access_role_arn.is_some()
            || self.healthlake_datastore_id.is_some()
            || matches!(self.traces, TraceSetting::Otlp { signed: true, .. })
    }
}

/// A function's whole environment, read once at cold start: the shared [`Config`], the port switches and
/// their adapters ([`Ports`], with the HealthLake self-check and per-session signing already applied to the
/// FHIR configuration), and the tool's own keys through [`Deployment::var`]. Nothing else reads the
/// environment (the runtime API address and the log stream name are Lambda's, read where they are used).
pub struct Deployment {
    pub config: Config,
    pub ports: Ports,
    /// The whole environment, credentials included: never printed (see `Debug`).
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("config", &self.config)
            .field("ports", &self.ports)
            .field("vars", &self.vars.len())
            .finish()
    }
}

impl Deployment {
    pub async fn from_env() -> Result<Self, StartError> {
        Self::from_vars(std::env::vars().collect()).await
    }

    /// Builds from a given environment (tests need not touch the process's).
    pub async fn from_vars(vars: HashMap<String, String>) -> Result<Self, StartError> {
        let get = |key: &str| vars.get(key).cloned();
        let mut config = Config::from_lookup(get)?;
        let settings = Settings::from_lookup(get).map_err(StartError::adapter)?;
        // A key that is configured but unusable refuses the start: records would silently go unanchored.
        let local_mac = LocalChainMac::from_lookup(get).map_err(|_| {
            let named = if get("AUDIT_MAC_KEY").is_some() { "AUDIT_MAC_KEY" } else { "AUDIT_MAC_KEY_FILE" };
            StartError::adapter(AwsError::Invalid(named))
        })?;
        let sdk = if settings.needs_aws() {
            Some(aws_config::defaults(BehaviorVersion::latest()).load().await)
        } else {
            None
        };
        export_traces(&settings, sdk.as_ref(), get("AWS_LAMBDA_FUNCTION_NAME"))?;
        let mut ports = Ports::with_sdk(settings, sdk);
        ports.local_audit_mac = local_mac.map(Arc::new);
        ports.apply_to_fhir(&mut config).await.map_err(StartError::adapter)?;
        Ok(Self { config, ports, vars })
    }

    /// A tool's own setting (`DRAFT_STORE`, `PAYER_POLICIES_DIR`): unset and blank are the same.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The FHIR store every tool reads (HealthLake on AWS), on the shared HTTP client.
    pub fn fhir_store(&self, http: &reqwest::Client) -> HttpFhirStore {
        HttpFhirStore::new(http.clone(), self.config.fhir_endpoint.clone(), self.config.fhir_signing.clone())
    }
}

/// Starts the span export the settings name (the process has one; see `shared::telemetry`).
fn export_traces(settings: &Settings, sdk: Option<&SdkConfig>, function: Option<String>) -> Result<(), StartError> {
    use shared::telemetry::{OtlpSigning, Resource, TraceExport, export_to};
    let export = match &settings.traces {
        TraceSetting::Off => return Ok(()),
        TraceSetting::File(path) => TraceExport::File(path.clone()),
        TraceSetting::Otlp { url, signed } => {
            let signing = match (signed, sdk) {
                (false, _) => None,
                (true, Some(sdk)) => Some(OtlpSigning {
                    region: settings.region.clone().ok_or(StartError::adapter(AwsError::Missing("AWS_REGION")))?,
                    credentials: sdk
                        .credentials_provider()
                        .ok_or(StartError::adapter(AwsError::Missing("AWS_ACCESS_KEY_ID")))?,
                }),
                (true, None) => return Err(StartError::adapter(AwsError::Missing("AWS_REGION"))),
            };
            TraceExport::Otlp { http: shared::tool::http_client()?, url: url.clone(), signing }
        }
    };
    let mut attributes = vec![("cloud.provider".to_owned(), "aws".to_owned())];
    if let Some(region) = &settings.region {
        attributes.push(("cloud.region".to_owned(), region.clone()));
    }
    let service_name = function.unwrap_or_else(|| "clinical-agent".to_owned());
    attributes.push(("faas.name".to_owned(), service_name.clone()));
    export_to(export, Resource { service_name, attributes });
    Ok(())
}

/// The adapters of every port, built once at cold start.
#[derive(Debug, Clone)]
pub struct Ports {
    pub settings: Settings,
    sdk: Option<SdkConfig>,
    session_credentials: Option<Arc<SessionCredentials>>,
    local_audit_mac: Option<Arc<LocalChainMac>>,
}

impl Ports {
    /// Builds from given settings and SDK configuration (tests point the latter at an emulator).
    pub fn with_sdk(settings: Settings, sdk: Option<SdkConfig>) -> Self {
        let session_credentials = match (&settings.data_access_role_arn, &sdk) {
            (Some(role), Some(sdk)) => Some(Arc::new(SessionCredentials::new(aws_sdk_sts::Client::new(sdk), role))),
            _ => None,
        };
        info!(
            model = settings.bedrock.is_some(),
            writer = ?settings.clinical_writer,
            knowledge_base = settings.knowledge_base_id.is_some(),
            kms = matches!(settings.keys, KeysSetting::Kms { .. }),
            session_credentials = session_credentials.is_some(),
            "ports configured"
        );
        Self { settings, sdk, session_credentials, local_audit_mac: None }
    }

    fn sdk(&self) -> Result<&SdkConfig, AwsError> {
        self.sdk.as_ref().ok_or(AwsError::Missing("AWS_REGION"))
    }

    pub fn session_credentials(&self) -> Option<Arc<SessionCredentials>> {
        self.session_credentials.clone()
    }

    /// The Bedrock model, if one is configured; `None` means the tool uses its deterministic path.
    ///
    /// Signed with the function role even when per-session credentials are on: the data-access roles hold
    /// HealthLake permissions only, and Converse / ApplyGuardrail under them would be denied.
    pub fn model(&self) -> Result<Option<BedrockModel>, AwsError> {
        let Some((model_id, guardrail)) = &self.settings.bedrock else {
            return Ok(None);
        };
        Ok(Some(BedrockModel::new(
            aws_sdk_bedrockruntime::Client::new(self.sdk()?),
            model_id.clone(),
            guardrail.clone(),
        )))
    }

    pub fn writer(&self) -> Result<WriterAdapter, AwsError> {
        match (self.settings.clinical_writer, self.model()?) {
            (Provider::Aws, Some(model)) => Ok(WriterAdapter::Bedrock(BedrockWriter::new(model))),
            (Provider::Aws, None) => Err(AwsError::Missing("BEDROCK_MODEL_ID")),
            (Provider::Local, _) => Ok(WriterAdapter::Local(LocalWriter)),
        }
    }

    /// The Bedrock Knowledge Base if configured, otherwise the tool's own local one. Passages are the
    /// knowledge base's chunks (ICD-10 coding). Signed with the function role.
    pub fn knowledge_base<L: KnowledgeBase>(&self, local: L) -> Result<KnowledgeAdapter<L>, AwsError> {
        let Some(id) = &self.settings.knowledge_base_id else {
            return Ok(KnowledgeAdapter::Local(local));
        };
        let kb = BedrockKnowledgeBase::new(aws_sdk_bedrockagentruntime::Client::new(self.sdk()?), id)?;
        Ok(KnowledgeAdapter::Bedrock(kb))
    }

    /// Payer policies: the local directory, or the Bedrock Knowledge Base returning each matched policy
    /// whole, read from `PAYER_POLICY_BUCKET` with the function role (whatever the knowledge base's
    /// chunking). A knowledge base without that bucket refuses to start: every draft would fail.
    pub fn payer_policies<L: KnowledgeBase>(&self, local: L) -> Result<KnowledgeAdapter<L>, AwsError> {
        let Some(id) = &self.settings.knowledge_base_id else {
            return Ok(KnowledgeAdapter::Local(local));
        };
        let bucket = self.settings.payer_policy_bucket.as_deref().ok_or(AwsError::Missing("PAYER_POLICY_BUCKET"))?;
        let sdk = self.sdk()?;
        let region = self.settings.region.as_deref().ok_or(AwsError::Missing("AWS_REGION"))?;
        let credentials = sdk.credentials_provider().ok_or(AwsError::Missing("AWS_ACCESS_KEY_ID"))?;
        let mut policies = PolicyBucket::new(policy_http_client()?, bucket, region, credentials)?;
        // The SDK's endpoint override (an emulator, the wire tests) applies to S3 too, path-style.
        let endpoint = self.settings.s3_endpoint.clone().or_else(|| sdk.endpoint_url().map(str::to_owned));
        if let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) {
            policies = policies.with_endpoint(endpoint);
        }
        let kb = BedrockKnowledgeBase::new(aws_sdk_bedrockagentruntime::Client::new(sdk), id)?
            .with_whole_documents(policies);
        Ok(KnowledgeAdapter::Bedrock(kb))
    }

    pub fn keys(&self) -> Result<KeysAdapter, AwsError> {
        match &self.settings.keys {
            KeysSetting::Local { master_hex: Some(hex) } => {
                LocalKeys::from_hex(hex).map(KeysAdapter::Local).map_err(|_| AwsError::Invalid("LOCAL_MASTER_KEY"))
            }
            KeysSetting::Local { master_hex: None } => {
                LocalKeys::generate().map(KeysAdapter::Local).map_err(|_| AwsError::Invalid("LOCAL_MASTER_KEY"))
            }
            KeysSetting::Kms { key_id, mac_key_id } => Ok(KeysAdapter::Kms(KmsKeys::new(
                aws_sdk_kms::Client::new(self.sdk()?),
                key_id.clone(),
                mac_key_id.clone(),
            ))),
        }
    }

    /// The audit sink: on AWS (`KEYS=kms` with `KMS_MAC_KEY_ID`) its checkpoints are KMS `GenerateMac` over
    /// the chain head with the HMAC key; otherwise the local key (`AUDIT_MAC_KEY` or `AUDIT_MAC_KEY_FILE`), if
    /// any. Without a key records are chained but never checkpointed (`audit verify` says `unanchored`).
    pub fn audit_sink(&self) -> Result<StdoutAuditSink, AwsError> {
        let every = self.settings.audit_checkpoint_every;
        match (&self.settings.keys, &self.local_audit_mac) {
            (KeysSetting::Kms { mac_key_id: Some(mac_key_id), .. }, _) => {
                let mac = crate::kms::KmsChainMac::new(aws_sdk_kms::Client::new(self.sdk()?), mac_key_id.clone());
                Ok(StdoutAuditSink::with_mac(Arc::new(mac), every))
            }
            (_, Some(local)) => Ok(StdoutAuditSink::with_mac(local.clone(), every)),
            (_, None) => Ok(StdoutAuditSink::default()),
        }
    }

    /// Applies the HealthLake self-check (endpoint from the datastore id; refuses a datastore that is not
    /// ACTIVE or not under a customer-managed key) and per-session signing to the FHIR configuration.
    pub async fn apply_to_fhir(&self, config: &mut Config) -> Result<(), AwsError> {
        if let Some(id) = &self.settings.healthlake_datastore_id {
            let checked = check_datastore(&aws_sdk_healthlake::Client::new(self.sdk()?), id).await?;
            config.fhir_endpoint = checked.endpoint;
        }
        if let Some(source) = self.session_credentials() {
            let region = match &config.fhir_signing {
                Signing::SigV4 { region, .. } | Signing::SigV4PerSession { region, .. } => region.clone(),
                // Per-session credentials sign HealthLake requests; an unsigned store cannot take them.
                Signing::None => return Err(AwsError::Invalid("FHIR_SIGNING")),
            };
            config.fhir_signing = Signing::SigV4PerSession { region, source };
        }
        Ok(())
    }
}

/// The writer chosen by `CLINICAL_WRITER`.
#[derive(Debug)]
pub enum WriterAdapter {
    Local(LocalWriter),
    Bedrock(BedrockWriter),
}

impl ClinicalWriter for WriterAdapter {
    async fn write(&self, session: &SessionContext, request: &WritingRequest) -> Result<Narrative, WriterError> {
        match self {
            Self::Local(w) => w.write(session, request).await,
            Self::Bedrock(w) => w.write(session, request).await,
        }
    }
}

/// The knowledge base chosen by `KNOWLEDGE_BASE`: the tool's local index or Bedrock.
#[derive(Debug)]
pub enum KnowledgeAdapter<L> {
    Local(L),
    Bedrock(BedrockKnowledgeBase),
}

impl<L: KnowledgeBase> KnowledgeBase for KnowledgeAdapter<L> {
    async fn retrieve(&self, session: &SessionContext, query: &RetrievalQuery) -> Result<Vec<Passage>, KnowledgeError> {
        match self {
            Self::Local(kb) => kb.retrieve(session, query).await,
            Self::Bedrock(kb) => kb.retrieve(session, query).await,
        }
    }
}

/// The keys chosen by `KEYS`.
#[derive(Debug)]
pub enum KeysAdapter {
    Local(LocalKeys),
    Kms(KmsKeys),
}

impl KeysAdapter {
    /// Whether `pseudonym` can work: always locally, on KMS only with an HMAC key (`KMS_MAC_KEY_ID`).
    pub fn makes_pseudonyms(&self) -> bool {
        match self {
            Self::Local(_) => true,
            Self::Kms(kms) => kms.has_mac_key(),
        }
    }
}

impl Keys for KeysAdapter {
    async fn seal(
        &self,
        session: &SessionContext,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Sealed, KeyError> {
        match self {
            Self::Local(k) => k.seal(session, context, plaintext).await,
            Self::Kms(k) => k.seal(session, context, plaintext).await,
        }
    }

    async fn open(
        &self,
        session: &SessionContext,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Local(k) => k.open(session, sealed, context).await,
            Self::Kms(k) => k.open(session, sealed, context).await,
        }
    }

    async fn pseudonym(&self, session: &SessionContext, value: &str) -> Result<String, KeyError> {
        match self {
            Self::Local(k) => k.pseudonym(session, value).await,
            Self::Kms(k) => k.pseudonym(session, value).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, AwsError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_local_and_need_no_aws() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.bedrock, None);
        assert_eq!(s.keys, KeysSetting::Local { master_hex: None });
        assert!(!s.needs_aws());
    }

    #[test]
    fn spans_go_to_cloudwatch_signed_to_a_loopback_collector_unsigned_and_nowhere_else_in_clear() {
        assert_eq!(settings(&[]).unwrap().traces, TraceSetting::Off);
        let aws = settings(&[("AWS_REGION", "eu-west-1"), ("OTEL_TRACES_EXPORTER", "otlp")]).unwrap();
        let TraceSetting::Otlp { url, signed } = &aws.traces else { panic!("{:?}", aws.traces) };
        assert_eq!(url.as_str(), "https://xray.eu-west-1.amazonaws.com/v1/traces");
        assert!(*signed && aws.needs_aws(), "CloudWatch's endpoint takes SigV4 only");
        let collector = [
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"),
        ];
        let local = settings(&collector).unwrap();
        assert!(matches!(local.traces, TraceSetting::Otlp { signed: false, .. }) && !local.needs_aws());
        let key = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
        let clear = [("OTEL_TRACES_EXPORTER", "otlp"), (key, "http://collector.example.org:4318/v1/traces")];
        assert_eq!(settings(&clear), Err(AwsError::Invalid(key)));
        assert_eq!(settings(&[("OTEL_TRACES_EXPORTER", "otlp")]), Err(AwsError::Missing(key)));
        assert_eq!(settings(&[("OTEL_TRACES_EXPORTER", "file")]), Err(AwsError::Missing("OTEL_TRACES_FILE")));
        assert_eq!(settings(&[("OTEL_TRACES_EXPORTER", "jaeger")]), Err(AwsError::Invalid("OTEL_TRACES_EXPORTER")));
    }

    #[test]
    fn bedrock_cannot_be_configured_without_a_guardrail() {
        let base = [("AWS_REGION", "us-east-1"), ("CLINICAL_WRITER", "bedrock")];
        let with_model = [&base[..], &[("BEDROCK_MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0")]].concat();
        assert_eq!(settings(&with_model), Err(AwsError::Missing("BEDROCK_GUARDRAIL_ID")));
        let with_id = [&with_model[..], &[("BEDROCK_GUARDRAIL_ID", "gr1")]].concat();
        assert_eq!(settings(&with_id), Err(AwsError::Missing("BEDROCK_GUARDRAIL_VERSION")));
        let full = [&with_id[..], &[("BEDROCK_GUARDRAIL_VERSION", "2")]].concat();
        assert!(settings(&full).unwrap().bedrock.is_some());
    }

    #[test]
    fn unknown_switch_values_and_bad_values_are_refused() {
        assert_eq!(settings(&[("KEYS", "vault")]), Err(AwsError::Invalid("KEYS")));
        assert_eq!(settings(&[("KEYS", "kms")]), Err(AwsError::Missing("KMS_KEY_ID")));
        assert_eq!(
            settings(&[("SESSION_CREDENTIALS", "sts"), ("DATA_ACCESS_ROLE_ARN", "role")]),
            Err(AwsError::Invalid("DATA_ACCESS_ROLE_ARN"))
        );
        assert_eq!(
            settings(&[("MODEL_PROVIDER", "bedrock"), ("AWS_REGION", "us-east-1"), ("BEDROCK_MODEL_ID", "us.x.y")]),
            Err(AwsError::CrossRegionInferenceOff)
        );
    }

    #[test]
    fn cross_region_inference_is_off_unless_set_to_true() {
        let base = [
            ("AWS_REGION", "us-east-1"),
            ("MODEL_PROVIDER", "bedrock"),
            ("BEDROCK_MODEL_ID", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
            ("BEDROCK_GUARDRAIL_ID", "gr1"),
            ("BEDROCK_GUARDRAIL_VERSION", "2"),
        ];
        assert_eq!(settings(&base), Err(AwsError::CrossRegionInferenceOff));
        let off = [&base[..], &[("BEDROCK_CROSS_REGION_INFERENCE", "false")]].concat();
        assert_eq!(settings(&off), Err(AwsError::CrossRegionInferenceOff));
        let odd = [&base[..], &[("BEDROCK_CROSS_REGION_INFERENCE", "yes")]].concat();
        assert_eq!(settings(&odd), Err(AwsError::Invalid("BEDROCK_CROSS_REGION_INFERENCE")));
        let on = [&base[..], &[("BEDROCK_CROSS_REGION_INFERENCE", "true")]].concat();
        let (model, _) = settings(&on).unwrap().bedrock.unwrap();
        assert_eq!(model.target(), crate::bedrock::ModelTarget::GeographicProfile);
    }

    #[test]
    fn payer_policies_from_a_knowledge_base_need_the_policy_bucket() {
        let kb = [("AWS_REGION", "us-east-1"), ("KNOWLEDGE_BASE", "bedrock"), ("KNOWLEDGE_BASE_ID", "KB12345678")];
        let credentials = aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
            .build();
        let ports = Ports::with_sdk(settings(&kb).unwrap(), Some(sdk.clone()));
        assert!(matches!(ports.knowledge_base(LocalKb), Ok(KnowledgeAdapter::Bedrock(_))), "icd-10 needs no bucket");
        assert_eq!(ports.payer_policies(LocalKb).err(), Some(AwsError::Missing("PAYER_POLICY_BUCKET")));
        let bad = [&kb[..], &[("PAYER_POLICY_BUCKET", "Not_A_Bucket")]].concat();
        let ports = Ports::with_sdk(settings(&bad).unwrap(), Some(sdk));
        assert_eq!(ports.payer_policies(LocalKb).err(), Some(AwsError::Invalid("PAYER_POLICY_BUCKET")));
        let local = Ports::with_sdk(settings(&[]).unwrap(), None);
        assert!(matches!(local.payer_policies(LocalKb), Ok(KnowledgeAdapter::Local(_))));
    }

    struct LocalKb;

    impl KnowledgeBase for LocalKb {
        async fn retrieve(&self, _: &SessionContext, _: &RetrievalQuery) -> Result<Vec<Passage>, KnowledgeError> {
            Ok(Vec::new())
        }
    }

    fn local_vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let base = [
            ("FHIR_BASE_URL", "http://127.0.0.1:8103/fhir"),
            ("FHIR_SIGNING", "none"),
            ("JWKS_URL", "http://127.0.0.1:8104/jwks.json"),
            ("JWT_ISSUER", "http://127.0.0.1:8104"),
            ("JWT_AUDIENCE", "clinical-agent"),
        ];
        base.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[tokio::test]
    async fn one_reading_serves_the_shared_configuration_the_ports_and_the_tools_own_keys() {
        let deployment = Deployment::from_vars(local_vars(&[
            ("DRAFT_STORE", "file"),
            ("PAYER_POLICIES_DIR", "  "),
            ("TENANT_ORGANIZATION", "org-a"),
            ("AUDIT_CHECKPOINT_EVERY", "7"),
            ("AWS_SECRET_ACCESS_KEY", "Zq-secret"),
        ]))
        .await
        .unwrap();
        assert_eq!(deployment.config.tenant_organization, "org-a");
        assert_eq!(deployment.ports.settings.audit_checkpoint_every, 7);
        assert_eq!(deployment.var("DRAFT_STORE"), Some("file"));
        assert_eq!(deployment.var("PAYER_POLICIES_DIR"), None, "blank is unset");
        assert_eq!(deployment.var("NOT_SET"), None);
        assert!(deployment.ports.local_audit_mac.is_none());
        let printed = format!("{deployment:?}");
        assert!(!printed.contains("Zq-secret") && !printed.contains("DRAFT_STORE"), "{printed}");
    }

    #[tokio::test]
    async fn a_configured_audit_key_is_used_and_an_unusable_one_refuses_the_start() {
        let keyed = Deployment::from_vars(local_vars(&[("AUDIT_MAC_KEY", &"ab".repeat(32))])).await.unwrap();
        assert!(keyed.ports.local_audit_mac.is_some());
        let bad = Deployment::from_vars(local_vars(&[("AUDIT_MAC_KEY", "abcd")])).await;
        assert!(matches!(bad, Err(StartError::Adapter(_))), "{bad:?}");
        let missing = Deployment::from_vars(local_vars(&[("AUDIT_MAC_KEY_FILE", "/nonexistent/audit.key")])).await;
        assert!(missing.is_err());
        let no_issuer =
            Deployment::from_vars(local_vars(&[]).into_iter().filter(|(k, _)| k != "JWT_ISSUER").collect()).await;
        assert!(matches!(no_issuer, Err(StartError::Config(_))), "{no_issuer:?}");
    }
}
