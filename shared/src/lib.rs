//! What every tool needs: envelopes, verified identity, Cedar authorization, the session context, the FHIR
//! store, the clinical-writer port, audit records and the Lambda runtime loop.

pub mod audit;
pub mod authz;
pub mod config;
pub mod dates;
pub mod envelope;
pub mod error;
pub mod fhir;
pub mod identity;
pub mod keys;
pub mod knowledge;
pub mod metrics;
pub mod model;
pub mod phi;
pub mod runtime;
pub mod schema;
pub mod secrets;
pub mod session;
pub mod sigv4;
pub mod telemetry;
pub mod tool;
pub mod writer;

pub use error::ToolError;
#[cfg(feature = "test-util")]
pub mod testing;
