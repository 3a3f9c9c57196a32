//! Lambda entry point: tracing, configuration, adapters built once (AWS or local per port), then the runtime
//! loop.

use std::process::ExitCode;
use std::time::Duration;

use icd10_coding::CodingTool;
use icd10_coding::index::LexicalIndex;
use icd10_coding::table::CodeTable;
use shared::audit::StdoutAuditSink;
use shared::authz::Authorizer;
use shared::config::Config;
use shared::fhir::HttpFhirStore;
use shared::identity::JwtVerifier;
use shared::runtime;
use shared_aws::bedrock::BedrockModel;
use shared_aws::config::{KnowledgeAdapter, Ports};
use tracing::error;

type Tool = CodingTool<HttpFhirStore, BedrockModel, KnowledgeAdapter<LexicalIndex>, StdoutAuditSink>;

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
                // Refuse to start: a function without valid policies, code table or configuration must not serve.
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

async fn build() -> Result<Tool, String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    let ports = Ports::from_env().await.map_err(|e| e.to_string())?;
    // Refuses to serve unless a configured HealthLake datastore is ACTIVE and on a customer-managed key.
    ports.apply_to_fhir(&mut config).await.map_err(|e| e.to_string())?;
    let authorizer = Authorizer::embedded().map_err(|e| e.to_string())?;
    let table = CodeTable::embedded().map_err(|e| e.to_string())?;
    // The coder's lexical index (~0.2 s) builds beside the first poll instead of before it.
    icd10_coding::coder::warm_up();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(50))
        .build()
        .map_err(|_| "http client could not be built".to_owned())?;
    let verifier = JwtVerifier::from_jwks_url(&config.jwt_issuer, &config.jwt_audience, &config.jwks_url, http.clone());
    Ok(CodingTool {
        store: HttpFhirStore::new(http, config.fhir_endpoint, config.fhir_signing),
        model: ports.model().map_err(|e| e.to_string())?,
        knowledge: ports.knowledge_base(LexicalIndex::new(table)).map_err(|e| e.to_string())?,
        audit: StdoutAuditSink::default(),
        verifier,
        authorizer,
        table,
        function_name: config.function_name,
        tenant: config.tenant_organization,
    })
}
