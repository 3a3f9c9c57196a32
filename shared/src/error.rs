//! The errors a tool call can end in, as callers see them.
//!
//! Messages are lowercase, generic and never carry PHI, upstream bodies or stack traces; where user input
//! is named it is a field name, never its value.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the caller could not be authenticated")]
    Unauthenticated,
    #[error("the caller is not permitted to do this")]
    Denied,
    #[error("the requested record was not found")]
    NotFound,
    #[error("an upstream service is unavailable; try again later")]
    UpstreamUnavailable,
    #[error("internal error")]
    Internal,
}

/// The stable, machine-readable name of an error, used in replies, audit records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidInput,
    Unauthenticated,
    Denied,
    NotFound,
    UpstreamUnavailable,
    Internal,
}

impl ToolError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::Unauthenticated => ErrorKind::Unauthenticated,
            Self::Denied => ErrorKind::Denied,
            Self::NotFound => ErrorKind::NotFound,
            Self::UpstreamUnavailable => ErrorKind::UpstreamUnavailable,
            Self::Internal => ErrorKind::Internal,
        }
    }

    /// The HTTP status an OpenAPI action group reply carries for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidInput(_) => 400,
            Self::Unauthenticated => 401,
            Self::Denied => 403,
            Self::NotFound => 404,
            Self::UpstreamUnavailable => 503,
            Self::Internal => 500,
        }
    }

    /// Whether the agent may usefully call again with the same input.
    pub fn should_retry(&self) -> bool {
        matches!(self, Self::UpstreamUnavailable)
    }
}
