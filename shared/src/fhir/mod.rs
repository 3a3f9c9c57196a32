//! The FHIR store port: minimal, paged, typed searches against HealthLake (or the local server).

mod http;
pub mod relationship;

use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use self::http::{CredentialSource, FhirEndpoint, HttpFhirStore, RetryPolicy, Signing};
use crate::error::ToolError;
use crate::session::SessionContext;

/// A FHIR logical id, checked before it is ever put in a request: `[A-Za-z0-9\-\.]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FhirId(String);

/// A string that is not a FHIR logical id. Carries nothing of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid FHIR id")]
pub struct InvalidFhirId;

impl FhirId {
    pub fn parse(raw: &str) -> Result<Self, InvalidFhirId> {
        let ok =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidFhirId) }
    }

    /// A tool argument that must be a FHIR id: the error names the argument (`field`), never its value.
    pub fn argument(field: &str, raw: &str) -> Result<Self, ToolError> {
        Self::parse(raw).map_err(|InvalidFhirId| ToolError::invalid(format!("`{field}` is not a valid FHIR id")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FhirId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One FHIR search: a resource type and its parameters, built so that only what a tool shows is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub resource_type: &'static str,
    pub params: Vec<(String, String)>,
    /// Pages followed at most; a tool that needs "the latest N" sets this to 1.
    pub max_pages: usize,
}

impl SearchQuery {
    pub fn new(resource_type: &'static str) -> Self {
        Self { resource_type, params: Vec::new(), max_pages: 20 }
    }

    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_owned(), value.into()));
        self
    }

    pub fn patient(self, patient: &FhirId) -> Self {
        self.param("patient", format!("Patient/{patient}"))
    }

    pub fn count(self, n: u32) -> Self {
        self.param("_count", n.to_string())
    }

    pub fn sort(self, key: &str) -> Self {
        self.param("_sort", key)
    }

    /// `_elements`: the server returns only these top-level elements (plus mandatory ones).
    pub fn elements(self, elements: &[&str]) -> Self {
        self.param("_elements", elements.join(","))
    }

    /// A token parameter matching any of `codes` within `system`.
    pub fn codes(self, name: &str, system: &str, codes: &[&str]) -> Self {
        let value = codes.iter().map(|c| format!("{system}|{c}")).collect::<Vec<_>>().join(",");
        self.param(name, value)
    }

    pub fn pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }
}

/// The resources a search returned, across pages, still as raw JSON so each can be parsed into the one
/// concrete type the caller reads (deserializing fhir-sdk's whole `Resource` enum is very costly to build).
#[derive(Debug, Default)]
pub struct SearchSet {
    pub resources: Vec<Box<RawValue>>,
}

/// The typed result of a search, with the entries that did not parse kept as references.
#[derive(Debug)]
pub struct Parsed<T> {
    pub items: Vec<T>,
    /// `Type/id` of entries that failed to parse (their content is never logged).
    pub unparsed: Vec<String>,
}

#[derive(Deserialize)]
struct ResourceHead<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<&'a str>,
    #[serde(borrow)]
    id: Option<&'a str>,
}

impl SearchSet {
    pub fn parse<T: DeserializeOwned>(&self) -> Parsed<T> {
        let mut items = Vec::with_capacity(self.resources.len());
        let mut unparsed = Vec::new();
        for raw in &self.resources {
            match serde_json::from_str::<T>(raw.get()) {
                Ok(item) => items.push(item),
                Err(_) => unparsed.push(reference_of(raw)),
            }
        }
        Parsed { items, unparsed }
    }

    /// `Type/id` of every resource returned, for the audit record.
    pub fn references(&self) -> Vec<String> {
        self.resources.iter().map(|r| reference_of(r)).collect()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

fn reference_of(raw: &RawValue) -> String {
    match serde_json::from_str::<ResourceHead<'_>>(raw.get()) {
        Ok(ResourceHead { resource_type: Some(t), id: Some(id) }) => format!("{t}/{id}"),
        Ok(ResourceHead { resource_type: Some(t), id: None }) => format!("{t}/?"),
        _ => "?/?".to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    #[error("fhir resource not found")]
    NotFound,
    /// A 4xx other than 404/429: our request was wrong or not permitted. Never retried.
    #[error("fhir request rejected with status {0}")]
    Rejected(u16),
    /// 429, 5xx or a transport failure that outlived the retries or the deadline.
    #[error("fhir server unavailable")]
    Unavailable,
    #[error("fhir response could not be decoded")]
    Decode,
    /// 412 (the `If-Match` version is no longer current) or 409: someone else wrote first. Never retried.
    #[error("fhir resource was changed by another request")]
    Conflict,
}

impl FhirError {
    pub fn should_retry(&self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

impl From<FhirError> for ToolError {
    fn from(e: FhirError) -> Self {
        match e {
            FhirError::NotFound => ToolError::NotFound,
            FhirError::Unavailable => ToolError::UpstreamUnavailable,
            FhirError::Conflict => ToolError::invalid("the record was changed by another request; reload it"),
            FhirError::Rejected(_) | FhirError::Decode => ToolError::Internal,
        }
    }
}

pub trait FhirStore: Send + Sync {
    /// Runs a search, following `Bundle.link[next]` up to the query's page limit.
    fn search(
        &self,
        session: &SessionContext,
        query: &SearchQuery,
    ) -> impl Future<Output = Result<SearchSet, FhirError>> + Send;

    /// `POST [base]/{type}`: the server assigns the id. Not retried once the server may have acted on it.
    fn create(
        &self,
        session: &SessionContext,
        resource_type: &'static str,
        resource: &serde_json::Value,
    ) -> impl Future<Output = Result<Written, FhirError>> + Send;

    /// `GET [base]/{type}/{id}`: the resource and its version id (for a later `update`'s `If-Match`).
    fn read(
        &self,
        session: &SessionContext,
        resource_type: &'static str,
        id: &FhirId,
    ) -> impl Future<Output = Result<(serde_json::Value, Option<String>), FhirError>> + Send;

    /// `PUT [base]/{type}/{id}`; with `if_match`, only if the version is still current (else `Conflict`).
    fn update(
        &self,
        session: &SessionContext,
        resource_type: &'static str,
        id: &FhirId,
        resource: &serde_json::Value,
        if_match: Option<&str>,
    ) -> impl Future<Output = Result<Written, FhirError>> + Send;
}

/// What a create or update wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: FhirId,
    pub version: Option<String>,
}

/// Runs every query concurrently and returns their results in the same order; the first failure fails the
/// whole (a partial chart is not shown as if it were complete). Any number of queries: a tool that gains an
/// evidence type adds a query, not a join arm.
pub async fn search_all<S: FhirStore>(
    store: &S,
    session: &SessionContext,
    queries: &[SearchQuery],
) -> Result<Vec<SearchSet>, FhirError> {
    futures_util::future::try_join_all(queries.iter().map(|query| store.search(session, query))).await
}
