//! Lambda entry point: the adapters built once around the summary action; the shell does the rest.

use std::process::ExitCode;

use patient_summary::PatientSummary;
use shared::audit::StdoutAuditSink;
use shared::config::Config;
use shared::fhir::HttpFhirStore;
use shared::tool::{Shell, StartError, http_client, lambda_main};
use shared_aws::config::{Ports, WriterAdapter};

type Function = Shell<PatientSummary<HttpFhirStore, WriterAdapter>, StdoutAuditSink>;

fn main() -> ExitCode {
    lambda_main(build)
}

/// `CLINICAL_WRITER=local|bedrock` picks the writer; `HEALTHLAKE_DATASTORE_ID` runs the datastore self-check and
/// `SESSION_CREDENTIALS=sts` signs FHIR requests with per-session credentials (see `shared-aws`).
async fn build() -> Result<Function, StartError> {
    let mut config = Config::from_env()?;
    let ports = Ports::from_env().await.map_err(StartError::adapter)?;
    ports.apply_to_fhir(&mut config).await.map_err(StartError::adapter)?;
    let http = http_client()?;
    let action = PatientSummary {
        store: HttpFhirStore::new(http.clone(), config.fhir_endpoint.clone(), config.fhir_signing.clone()),
        writer: ports.writer().map_err(StartError::adapter)?,
        care_lookback_days: config.care_lookback_days,
        as_of: None,
    };
    Shell::new(action, &config, http, ports.audit_sink().map_err(StartError::adapter)?)
}
