//! Lambda entry point: the adapters built once around the summary action; the shell does the rest.

use std::process::ExitCode;

use patient_summary::PatientSummary;
use shared::audit::StdoutAuditSink;
use shared::fhir::HttpFhirStore;
use shared::tool::{Shell, StartError, http_client, lambda_main};
use shared_aws::config::{Deployment, WriterAdapter};

type Function = Shell<PatientSummary<HttpFhirStore, WriterAdapter>, StdoutAuditSink>;

fn main() -> ExitCode {
    lambda_main(build)
}

/// `CLINICAL_WRITER=local|bedrock` picks the writer; `HEALTHLAKE_DATASTORE_ID` runs the datastore self-check and
/// `SESSION_CREDENTIALS=sts` signs FHIR requests with per-session credentials (see `shared-aws`).
async fn build() -> Result<Function, StartError> {
    let deployment = Deployment::from_env().await?;
    let http = http_client()?;
    let action = PatientSummary {
        store: deployment.fhir_store(&http),
        writer: deployment.ports.writer().map_err(StartError::adapter)?,
        care_lookback_days: deployment.config.care_lookback_days,
        as_of: None,
    };
    let audit = deployment.ports.audit_sink().map_err(StartError::adapter)?;
    Shell::new(action, &deployment.config, http, audit)
}
