//! Lambda entry point: tracing, configuration, adapters built once, then the runtime loop.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use prior_auth_draft::PriorAuthTool;
use prior_auth_draft::policies::PolicyFiles;
use prior_auth_draft::store::{ConfiguredDraftStore, FhirDraftStore, FileDraftStore};
use shared::audit::StdoutAuditSink;
use shared::authz::Authorizer;
use shared::config::Config;
use shared::fhir::HttpFhirStore;
use shared::identity::JwtVerifier;
use shared::runtime;
use shared_aws::config::{KeysAdapter, KnowledgeAdapter, Ports, WriterAdapter};
use tracing::error;

/// The organisation of the local demo users (`local/demo-users.json`).
const LOCAL_TENANT: &str = "org-synthea-ma";

type Tool = PriorAuthTool<
    HttpFhirStore,
    KnowledgeAdapter<PolicyFiles>,
    WriterAdapter,
    ConfiguredDraftStore<HttpFhirStore>,
    KeysAdapter,
    StdoutAuditSink,
>;

fn main() -> ExitCode {
    shared::telemetry::init();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async {
        let client = match runtime::client_from_env() {
            Ok(client) => client,
            Err(e) => {
                error!(error = %e, "no runtime api");
                return ExitCode::FAILURE;
            }
        };
        let tool = match build().await {
            Ok(tool) => tool,
            Err(message) => {
                // Refuse to start: a function without valid policies or configuration must not serve.
                error!(error = %message, "initialisation failed");
                let _ = runtime::report_init_error(&client, "Runtime.InitError", &message).await;
                return ExitCode::FAILURE;
            }
        };
        match runtime::serve(&client, &tool, None).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!(error = %e, "runtime loop ended");
                ExitCode::FAILURE
            }
        }
    })
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

async fn build() -> Result<Tool, String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    let ports = Ports::from_env().await.map_err(|e| e.to_string())?;
    ports.apply_to_fhir(&mut config).await.map_err(|e| e.to_string())?;
    let authorizer = Authorizer::embedded().map_err(|e| e.to_string())?;
    let tenant = env("TENANT_ORGANIZATION").unwrap_or_else(|| LOCAL_TENANT.to_owned());
    // On AWS the Knowledge Base serves the policies (its configuration is checked by `knowledge_base`); without
    // one, the policy directory is the only source, and a tool with no policies must not serve: every request
    // would fail as "no policy" while the function looked healthy.
    let knowledge = match ports.payer_policies(PolicyFiles::default()).map_err(|e| e.to_string())? {
        KnowledgeAdapter::Local(_) => {
            let policy_dir = env("PAYER_POLICIES_DIR").unwrap_or_else(|| "../shared/payer-policies".to_owned());
            let policies = PolicyFiles::from_dir(&PathBuf::from(policy_dir))?;
            if policies.is_empty() {
                return Err("the payer policy directory holds no policies".to_owned());
            }
            KnowledgeAdapter::Local(policies)
        }
        configured => configured,
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(50))
        .build()
        .map_err(|_| "http client could not be built".to_owned())?;
    let verifier = JwtVerifier::from_jwks_url(&config.jwt_issuer, &config.jwt_audience, &config.jwks_url, http.clone());
    let fhir_base = config.fhir_endpoint.url().to_string();
    let store = HttpFhirStore::new(http, config.fhir_endpoint, config.fhir_signing);
    // Drafts go to the FHIR store (HealthLake) by default: /tmp is one Lambda instance's, and a draft must be
    // finalizable from any instance. The file store is for offline runs and tests.
    let drafts = match env("DRAFT_STORE").as_deref().unwrap_or("fhir") {
        "fhir" => ConfiguredDraftStore::Fhir(FhirDraftStore::new(store.clone())),
        "file" => ConfiguredDraftStore::File(FileDraftStore::new(
            env("PRIOR_AUTH_DRAFT_DIR").unwrap_or_else(|| "/tmp/prior-auth-drafts".to_owned()),
        )),
        _ => return Err("`DRAFT_STORE` must be `fhir` or `file`".to_owned()),
    };
    Ok(PriorAuthTool {
        store,
        knowledge,
        writer: ports.writer().map_err(|e| e.to_string())?,
        drafts,
        keys: ports.keys().map_err(|e| e.to_string())?,
        audit: StdoutAuditSink::default(),
        verifier,
        authorizer,
        function_name: config.function_name,
        tenant,
        care_lookback_days: config.care_lookback_days,
        fhir_base,
        as_of: None,
    })
}
