//! The FHIR store port: minimal, paged, typed searches against HealthLake (or the local server).

mod http;
pub mod model;
pub mod relationship;

use std::borrow::Cow;
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
    /// The patient every returned resource must belong to. Set by [`SearchQuery::patient`]; a search with a
    /// patient is sent as `POST [type]/_search` so the id stays out of URLs and request logs.
    pub patient: Option<FhirId>,
}

/// Resource types whose patient link is `subject` (search parameter and element). HealthLake does not
/// support the shared `patient` parameter on them ("HealthLake supported search parameters": clinical
/// `patient` only for AllergyIntolerance and Immunization) and, being lenient by default, would ignore it.
const SUBJECT_LINKED: &[&str] = &[
    "CarePlan",
    "CareTeam",
    "Condition",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Goal",
    "ImagingStudy",
    "MedicationAdministration",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
    "ServiceRequest",
];

/// How a resource type names its patient: the search parameter and the element that holds the reference.
/// `Patient` itself is matched by `_id` and checked by its `id`.
pub fn patient_link(resource_type: &str) -> (&'static str, &'static str) {
    match resource_type {
        "Patient" => ("_id", "id"),
        t if SUBJECT_LINKED.contains(&t) => ("subject", "subject"),
        // AllergyIntolerance, Immunization and the financial resources (Claim, Coverage's `beneficiary`
        // aside) link the patient through an element named `patient`.
        _ => ("patient", "patient"),
    }
}

impl SearchQuery {
    pub fn new(resource_type: &'static str) -> Self {
        Self { resource_type, params: Vec::new(), max_pages: 20, patient: None }
    }

    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_owned(), value.into()));
        self
    }

    /// Restricts the search to one patient with the parameter HealthLake supports for this type, and
    /// makes the client check that every returned resource names that patient.
    pub fn patient(mut self, patient: &FhirId) -> Self {
        let (parameter, _) = patient_link(self.resource_type);
        let value = if parameter == "_id" { patient.to_string() } else { format!("Patient/{patient}") };
        self.patient = Some(patient.clone());
        self.param(parameter, value)
    }

    /// The `application/x-www-form-urlencoded` body of `POST [type]/_search`.
    pub fn form_body(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.wire_params()).finish()
    }

    /// The parameters as sent: with a patient restriction, `_elements` also names the patient link, so that
    /// the ownership check has something to check (`Observation.subject` is optional, so a server may drop
    /// it from a subsetted resource).
    pub fn wire_params(&self) -> Vec<(String, String)> {
        let Some(_) = &self.patient else { return self.params.clone() };
        let (_, element) = patient_link(self.resource_type);
        self.params
            .iter()
            .map(|(name, value)| {
                if name == "_elements" && element != "id" && !value.split(',').any(|e| e.trim() == element) {
                    (name.clone(), format!("{value},{element}"))
                } else {
                    (name.clone(), value.clone())
                }
            })
            .collect()
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
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
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

/// What the ownership check reads of a returned resource. Owned strings: a reference may carry JSON escapes
/// (`Patient\/1`), which a borrowed `&str` cannot hold.
#[derive(Deserialize)]
struct Ownership {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    id: Option<String>,
    subject: Option<OwnerReference>,
    patient: Option<OwnerReference>,
}

#[derive(Deserialize)]
struct OwnerReference {
    reference: Option<String>,
}

/// Whether a resource a search returned belongs to it: of the searched type and, for a patient search,
/// naming that patient (`Patient`: its id; others: the `subject` or `patient` reference, relative, as
/// HealthLake stores them). Anything unreadable fails closed.
pub(crate) fn check_belongs(query: &SearchQuery, raw: &RawValue) -> Result<(), FhirError> {
    let foreign = || FhirError::ForeignResource { resource: reference_of(raw) };
    let head: Ownership = serde_json::from_str(raw.get()).map_err(|_| foreign())?;
    if head.resource_type.as_deref() != Some(query.resource_type) {
        return Err(foreign());
    }
    let Some(patient) = &query.patient else { return Ok(()) };
    let (_, element) = patient_link(query.resource_type);
    let named = match element {
        "id" => head.id.as_deref() == Some(patient.as_str()),
        _ => {
            let link = if element == "subject" { head.subject } else { head.patient };
            link.and_then(|l| l.reference).is_some_and(|r| names_patient(&r, patient))
        }
    };
    if named { Ok(()) } else { Err(foreign()) }
}

/// `Patient/{id}`, or that version of it (`Patient/{id}/_history/{v}`).
fn names_patient(reference: &str, patient: &FhirId) -> bool {
    let Some(rest) = reference.strip_prefix("Patient/") else { return false };
    match rest.split_once('/') {
        None => rest == patient.as_str(),
        Some((id, history)) => id == patient.as_str() && history.starts_with("_history/"),
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
    /// A search returned a resource that is not of the searched type or does not name the requested
    /// patient (a server that ignored the patient parameter, or a paging or proxy fault). The whole call
    /// fails closed: nothing of that search is shown. `resource` is the offending `Type/id` for the audit
    /// record; it is never part of the message.
    #[error("fhir search returned a resource that does not belong to the requested patient")]
    ForeignResource { resource: String },
}

impl FhirError {
    pub fn should_retry(&self) -> bool {
        matches!(self, Self::Unavailable)
    }

    /// A stable, PHI-free name of what went wrong, for the audit record and metrics (the tool's reply only
    /// ever carries the generic [`ToolError`] kind).
    pub fn audit_reason(&self) -> &'static str {
        match self {
            Self::NotFound => "fhir_not_found",
            Self::Rejected(_) => "fhir_rejected",
            Self::Unavailable => "fhir_unavailable",
            Self::Decode => "fhir_decode",
            Self::Conflict => "fhir_conflict",
            Self::ForeignResource { .. } => "fhir_foreign_resource",
        }
    }
}

impl From<FhirError> for ToolError {
    fn from(e: FhirError) -> Self {
        match e {
            FhirError::NotFound => ToolError::NotFound,
            // An upstream fault, not the caller's: reported as such, with the reason left to the audit.
            FhirError::Unavailable | FhirError::ForeignResource { .. } => ToolError::UpstreamUnavailable,
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

    /// `POST [base]/{type}`: the server assigns the id. Sent with an `x-amz-fhir-idempotency-key` (one per call,
    /// the same on every retry), so a retry after a timeout or 5xx cannot create a second resource.
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
