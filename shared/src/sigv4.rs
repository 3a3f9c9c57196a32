//! SigV4 for the requests the tools build themselves over reqwest (HealthLake's FHIR API, CloudWatch's OTLP
//! traces endpoint): the whole request signed, headers and body included ("Signing AWS API requests").

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// The request could not be signed (no detail: it would name the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request could not be signed")]
pub struct SigningError;

/// Signs `request` in place for `service` in `region`: adds `authorization`, `x-amz-date` and, with temporary
/// credentials, `x-amz-security-token`.
pub fn sign_request(
    request: &mut http::Request<Vec<u8>>,
    region: &str,
    service: &str,
    credentials: &Credentials,
) -> Result<(), SigningError> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| SigningError)?
        .into();
    let headers = request.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)));
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(request.method().as_str(), &uri, headers, SignableBody::Bytes(request.body()))
        .map_err(|_| SigningError)?;
    let (instructions, _signature) = sign(signable, &params).map_err(|_| SigningError)?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}
