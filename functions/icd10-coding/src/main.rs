//! Lambda entry point: the adapters built once (AWS or local per port) around the coding action; the shell
//! does the rest.

use std::process::ExitCode;

use icd10_coding::index::LexicalIndex;
use icd10_coding::{Icd10Coding, code_data};
use shared::audit::StdoutAuditSink;
use shared::fhir::HttpFhirStore;
use shared::tool::{Shell, StartError, http_client, lambda_main};
use shared_aws::bedrock::BedrockModel;
use shared_aws::config::{Deployment, KnowledgeAdapter};

type Function = Shell<Icd10Coding<HttpFhirStore, BedrockModel, KnowledgeAdapter<LexicalIndex>>, StdoutAuditSink>;

fn main() -> ExitCode {
    lambda_main(build)
}

/// Refuses to serve unless a configured HealthLake datastore is ACTIVE and on a customer-managed key.
async fn build() -> Result<Function, StartError> {
    let deployment = Deployment::from_env().await?;
    let ports = &deployment.ports;
    let http = http_client()?;
    let action = Icd10Coding {
        store: deployment.fhir_store(&http),
        care_lookback_days: deployment.config.care_lookback_days,
        model: ports.model().map_err(StartError::adapter)?,
        knowledge: ports.knowledge_base(LexicalIndex::new()).map_err(StartError::adapter)?,
    };
    let function = Shell::new(action, &deployment.config, http, ports.audit_sink().map_err(StartError::adapter)?)?;
    // The code table and the coder's index are read beside the first poll, once the rest of the start-up
    // (policies, clients) no longer competes with them.
    code_data::warm_up();
    Ok(function)
}
