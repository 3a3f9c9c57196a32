//! HealthLake control plane: the cold-start compliance self-check.
//!
//! The FHIR endpoint is resolved from the datastore id (never typed by hand), and a function refuses to
//! serve unless the datastore is ACTIVE and encrypted with a customer-managed KMS key. What is logged is
//! the datastore id, its status and key type, never a key id or credentials.

use aws_sdk_healthlake::Client;
use aws_sdk_healthlake::types::{CmkType, DatastoreStatus};
use shared::fhir::FhirEndpoint;
use tracing::{error, info, warn};

use crate::{AwsError, classify, error_code};

/// A datastore that passed the self-check.
#[derive(Debug, Clone)]
pub struct CheckedDatastore {
    pub datastore_id: String,
    pub endpoint: FhirEndpoint,
}

/// Describes the datastore and checks it; an error means the function must not serve.
pub async fn check_datastore(client: &Client, datastore_id: &str) -> Result<CheckedDatastore, AwsError> {
    let id_ok = (1..=32).contains(&datastore_id.len()) && datastore_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !id_ok {
        return Err(AwsError::Invalid("HEALTHLAKE_DATASTORE_ID"));
    }
    let output = client.describe_fhir_datastore().datastore_id(datastore_id).send().await.map_err(|e| {
        warn!(error = error_code(&e), "describe fhir datastore failed");
        AwsError::from(classify(&e))
    })?;
    let properties = output.datastore_properties.ok_or(AwsError::Rejected)?;
    let cmk_type =
        properties.sse_configuration.as_ref().and_then(|s| s.kms_encryption_config.as_ref()).map(|k| &k.cmk_type);
    let status = properties.datastore_status.as_str().to_owned();
    let key_type = cmk_type.map_or("none", CmkType::as_str).to_owned();
    if properties.datastore_status != DatastoreStatus::Active {
        error!(datastore_id, status, "healthlake datastore is not active; refusing to serve");
        return Err(AwsError::DatastoreNotActive);
    }
    if cmk_type != Some(&CmkType::CmCmk) {
        error!(
            datastore_id,
            key_type, "healthlake datastore is not encrypted with a customer-managed key; refusing to serve"
        );
        return Err(AwsError::DatastoreNotCustomerManaged);
    }
    let endpoint = FhirEndpoint::parse(&properties.datastore_endpoint).map_err(|_| AwsError::Rejected)?;
    if endpoint.url().scheme() != "https" {
        return Err(AwsError::Rejected);
    }
    info!(datastore_id, status, key_type, "healthlake datastore checked");
    Ok(CheckedDatastore { datastore_id: datastore_id.to_owned(), endpoint })
}
