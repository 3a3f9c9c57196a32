//! One FHIR server fake for every tool's tests, on wiremock, answering from Synthea resources the way
//! HealthLake does where it matters for safety:
//!
//! - searches by `GET [type]?…` and `POST [type]/_search` with a form body;
//! - lenient by default: a parameter HealthLake does not support for the type (e.g. `patient` on Condition,
//!   "HealthLake supported search parameters") is ignored, so a client relying on it gets every patient's
//!   resources; with `Prefer: handling=strict` it is rejected with a 400 OperationOutcome;
//! - relationship facts (`Patient.generalPractitioner`, `Encounter.participant`) come from the
//!   [`FakeBehaviour`], not from the data, so a test says who is related;
//! - paging (when [`FakeBehaviour::page_size`] is set) through an opaque `page` token made of base64 with
//!   `+` and `/` in it, and JSON that escapes `/` as `\/`, as a Java server may;
//! - per-type failures (status, `Retry-After`), a delay, truncated JSON, and foreign resources slipped into
//!   the results.
//!
//! Every request is journaled with its parameters (query string or form body) and its `x-session-id`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fhir::FhirEndpoint;

/// The shared Synthea bundles (`../shared/fhir/synthea` beside the repository).
pub const SYNTHEA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fhir/synthea");

/// A Synthea transaction bundle's resources, with `urn:uuid:` references resolved to `Type/id`. `file` is a
/// path, or a file name under [`SYNTHEA_DIR`].
pub fn load_bundle(file: impl AsRef<Path>) -> Result<Vec<Value>, String> {
    let file = file.as_ref();
    let path = if file.is_absolute() { file.to_path_buf() } else { Path::new(SYNTHEA_DIR).join(file) };
    let raw = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bundle: Value = serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut urns = HashMap::new();
    let mut resources = Vec::new();
    for entry in bundle["entry"].as_array_mut().map(std::mem::take).unwrap_or_default() {
        let mut entry = entry;
        let resource = entry["resource"].take();
        if let (Some(url), Some(t), Some(id)) =
            (entry["fullUrl"].as_str(), resource["resourceType"].as_str(), resource["id"].as_str())
        {
            urns.insert(url.to_owned(), format!("{t}/{id}"));
        }
        resources.push(resource);
    }
    for resource in &mut resources {
        resolve_urns(resource, &urns);
    }
    Ok(resources)
}

fn resolve_urns(node: &mut Value, urns: &HashMap<String, String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "reference"
                    && let Some(target) = value.as_str().and_then(|r| urns.get(r))
                {
                    *value = Value::String(target.clone());
                } else {
                    resolve_urns(value, urns);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve_urns(v, urns)),
        _ => {}
    }
}

/// How the fake answers. `Default` is a healthy, lenient server with no care relationships.
#[derive(Debug, Clone, Default)]
pub struct FakeBehaviour {
    /// `Practitioner/<id>` set as every Patient's `generalPractitioner` (none when `None`).
    pub general_practitioner: Option<String>,
    /// `Practitioner/<id>` set as the only participant of every Encounter (none when `None`).
    pub encounter_participant: Option<String>,
    /// Resource types whose searches answer with this status (and an upstream detail that must never leak).
    pub failing: HashMap<String, u16>,
    /// `Retry-After` seconds sent with a failing answer.
    pub retry_after: Option<u64>,
    /// Every answer waits this long.
    pub delay: Option<Duration>,
    /// Resource types whose searches answer with JSON cut off half-way.
    pub truncated: Vec<String>,
    /// Resources added to every search of their type, whoever they belong to.
    pub foreign: Vec<Value>,
    /// Page size; `None` answers every match on one page (and ignores `_count`).
    pub page_size: Option<usize>,
}

/// One request the fake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirRequest {
    pub method: String,
    pub resource_type: String,
    /// The query string (GET) or the form body (POST `_search`), as sent.
    pub params: String,
    pub session_id: Option<String>,
    /// The `Prefer` header.
    pub prefer: Option<String>,
    /// The `x-amz-fhir-idempotency-key` header.
    pub idempotency_key: Option<String>,
}

/// The running fake: a wiremock server answering under `/fhir/`.
pub struct FhirFake {
    pub server: MockServer,
    journal: Arc<Mutex<Vec<FhirRequest>>>,
}

impl FhirFake {
    pub async fn start(resources: Vec<Value>, behaviour: FakeBehaviour) -> Self {
        let server = MockServer::start().await;
        let journal = Arc::new(Mutex::new(Vec::new()));
        let base = format!("{}/fhir/", server.uri());
        let responder = Responder { resources: Arc::new(resources), behaviour, journal: journal.clone(), base };
        Mock::given(wiremock::matchers::path_regex("^/fhir/")).respond_with(responder).mount(&server).await;
        Self { server, journal }
    }

    /// The FHIR base URL, ending in `/`.
    pub fn base_url(&self) -> String {
        format!("{}/fhir/", self.server.uri())
    }

    pub fn endpoint(&self) -> Result<FhirEndpoint, url::ParseError> {
        FhirEndpoint::parse(&self.base_url())
    }

    pub fn requests(&self) -> Vec<FhirRequest> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

struct Responder {
    resources: Arc<Vec<Value>>,
    behaviour: FakeBehaviour,
    journal: Arc<Mutex<Vec<FhirRequest>>>,
    base: String,
}

/// Search parameters the fake supports per type (and HealthLake supports): anything else is "unknown or
/// unsupported" — ignored when lenient, rejected when strict. `patient` is supported only where HealthLake
/// supports it (AllergyIntolerance, Immunization).
fn supported(resource_type: &str, name: &str) -> bool {
    const COMMON: &[&str] = &["_id", "_count", "_sort", "_elements", "_total", "_lastUpdated", "page"];
    let own: &[&str] = match resource_type {
        "Patient" => &["general-practitioner"],
        "Encounter" => &["subject", "participant", "date", "type", "status", "class"],
        "Condition" => &["subject", "code", "clinical-status"],
        "Observation" => &["subject", "code", "category", "date", "status"],
        "MedicationRequest" => &["subject", "code", "status", "intent"],
        "Procedure" => &["subject", "code", "status", "date"],
        "AllergyIntolerance" => &["patient", "clinical-status"],
        "Immunization" => &["patient", "date", "status"],
        _ => &[],
    };
    let base = name.split(':').next().unwrap_or(name);
    COMMON.contains(&base) || own.contains(&base)
}

fn outcome(code: &str, text: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]})
}

fn has_token(concept: &Value, tokens: &str) -> bool {
    tokens.split(',').any(|token| {
        let (system, code) = token.split_once('|').map_or((None, token), |(s, c)| (Some(s), c));
        concept["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == code && system.is_none_or(|s| c["system"] == s))
    })
}

fn reference_in(value: &Value, wanted: &str) -> bool {
    wanted.split(',').any(|w| value["reference"] == w)
}

impl Responder {
    /// The resource as this server holds it: relationship facts replaced by the behaviour's.
    fn served(&self, resource: &Value) -> Value {
        let mut r = resource.clone();
        match r["resourceType"].as_str() {
            Some("Patient") => {
                r["generalPractitioner"] = match &self.behaviour.general_practitioner {
                    Some(gp) => json!([{"reference": gp}]),
                    None => json!([]),
                };
            }
            Some("Encounter") => {
                r["participant"] = match &self.behaviour.encounter_participant {
                    Some(p) => json!([{"individual": {"reference": p}}]),
                    None => json!([]),
                };
            }
            _ => {}
        }
        r
    }

    fn matches(resource_type: &str, r: &Value, params: &[(String, String)]) -> bool {
        if r["resourceType"] != resource_type {
            return false;
        }
        params.iter().all(|(name, value)| match name.as_str() {
            "_id" => value.split(',').any(|id| r["id"] == id),
            "subject" => reference_in(&r["subject"], value),
            "patient" => reference_in(&r["patient"], value),
            "general-practitioner" => {
                r["generalPractitioner"].as_array().into_iter().flatten().any(|g| reference_in(g, value))
            }
            "participant" => {
                r["participant"].as_array().into_iter().flatten().any(|p| reference_in(&p["individual"], value))
            }
            "code" if resource_type == "MedicationRequest" => has_token(&r["medicationCodeableConcept"], value),
            "code" => has_token(&r["code"], value),
            "type" => r["type"].as_array().into_iter().flatten().any(|t| has_token(t, value)),
            "category" => r["category"].as_array().into_iter().flatten().any(|c| has_token(c, value)),
            "clinical-status" => has_token(&r["clinicalStatus"], value),
            "status" => value.split(',').any(|s| r["status"] == s),
            // Result parameters, and `date` (not filtered here: the client checks its own windows).
            _ => true,
        })
    }

    fn bundle(&self, resource_type: &str, params: &[(String, String)], offset: usize) -> Value {
        let mut matched: Vec<Value> =
            self.resources.iter().map(|r| self.served(r)).filter(|r| Self::matches(resource_type, r, params)).collect();
        matched.extend(self.behaviour.foreign.iter().filter(|r| r["resourceType"] == resource_type).cloned());
        let (page, next) = match self.behaviour.page_size {
            Some(size) => {
                let size = size.max(1);
                let page: Vec<Value> = matched.iter().skip(offset).take(size).cloned().collect();
                let next = (offset + size < matched.len()).then(|| page_token(resource_type, params, offset + size));
                (page, next)
            }
            None => (matched, None),
        };
        let entry: Vec<Value> = page.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect();
        let link: Vec<Value> = next
            .into_iter()
            .map(|token| json!({"relation": "next", "url": format!("{}{resource_type}?page={token}", self.base)}))
            .collect();
        json!({"resourceType": "Bundle", "type": "searchset", "entry": entry, "link": link})
    }
}

/// An opaque page token: base64 (standard alphabet) of a marker that always encodes as `++++////`, then the
/// search. A client that sends the `+` bare (read as a space) or mangles `/` loses its place.
fn page_token(resource_type: &str, params: &[(String, String)], offset: usize) -> String {
    let state = json!({"type": resource_type, "params": params, "offset": offset});
    let mut bytes = vec![0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff];
    bytes.extend(state.to_string().into_bytes());
    STANDARD.encode(bytes)
}

/// Where a page token points: resource type, the search's parameters, offset.
type PagePosition = (String, Vec<(String, String)>, usize);

fn read_token(token: &str) -> Option<PagePosition> {
    let bytes = STANDARD.decode(token).ok()?;
    let state: Value = serde_json::from_slice(bytes.get(6..)?).ok()?;
    let params = serde_json::from_value(state["params"].clone()).ok()?;
    Some((state["type"].as_str()?.to_owned(), params, usize::try_from(state["offset"].as_u64()?).ok()?))
}

/// JSON as a Java FHIR server may write it: `/` escaped as `\/` (valid JSON, and fatal to a borrowed-`&str`
/// parse).
fn escaped_json(status: u16, body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_raw(body.to_string().replace('/', "\\/").into_bytes(), "application/fhir+json")
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let rel = request.url.path().trim_start_matches("/fhir/");
        let mut segments = rel.split('/');
        let resource_type = segments.next().unwrap_or_default().to_owned();
        let action = segments.next();
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let is_post_search = request.method.as_str() == "POST" && action == Some("_search");
        let raw_params = if is_post_search {
            String::from_utf8_lossy(&request.body).into_owned()
        } else {
            request.url.query().unwrap_or_default().to_owned()
        };
        self.journal.lock().unwrap_or_else(PoisonError::into_inner).push(FhirRequest {
            method: request.method.to_string(),
            resource_type: resource_type.clone(),
            params: raw_params.clone(),
            session_id: header("x-session-id"),
            prefer: header("prefer"),
            idempotency_key: header("x-amz-fhir-idempotency-key"),
        });
        let template = self.answer(request, &resource_type, action, is_post_search, &raw_params, header("prefer"));
        match self.behaviour.delay {
            Some(delay) => template.set_delay(delay),
            None => template,
        }
    }
}

impl Responder {
    fn answer(
        &self,
        request: &Request,
        resource_type: &str,
        action: Option<&str>,
        is_post_search: bool,
        raw_params: &str,
        prefer: Option<String>,
    ) -> ResponseTemplate {
        let is_search = is_post_search || (request.method.as_str() == "GET" && action.is_none());
        if !is_search {
            return ResponseTemplate::new(405).set_body_json(outcome("not-supported", "the fake serves searches only"));
        }
        if is_post_search && !header_is(request, "content-type", "application/x-www-form-urlencoded") {
            return ResponseTemplate::new(415).set_body_json(outcome("invalid", "form body expected"));
        }
        if let Some(status) = self.behaviour.failing.get(resource_type) {
            let mut template = ResponseTemplate::new(*status)
                .set_body_json(outcome("exception", "upstream detail: Patient Jane Doe, MRN 12345"));
            if let Some(seconds) = self.behaviour.retry_after {
                template = template.insert_header("retry-after", seconds.to_string().as_str());
            }
            return template;
        }
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw_params.as_bytes()).into_owned().collect();
        let (resource_type, params, offset) = match pairs.iter().find(|(k, _)| k == "page") {
            Some((_, token)) => match read_token(token) {
                Some(state) => state,
                None => return ResponseTemplate::new(400).set_body_json(outcome("invalid", "invalid page token")),
            },
            None => (resource_type.to_owned(), pairs, 0),
        };
        let strict = prefer.is_some_and(|p| p.split(',').any(|v| v.trim() == "handling=strict"));
        let mut honoured = Vec::new();
        for (name, value) in params {
            if supported(&resource_type, &name) {
                honoured.push((name, value));
            } else if strict {
                return ResponseTemplate::new(400)
                    .set_body_json(outcome("not-supported", &format!("unsupported search parameter: {name}")));
            }
        }
        let bundle = self.bundle(&resource_type, &honoured, offset);
        if self.behaviour.truncated.contains(&resource_type) {
            let text = bundle.to_string();
            let cut = text.len() / 2;
            return ResponseTemplate::new(200)
                .set_body_raw(text.as_bytes().get(..cut).unwrap_or_default().to_vec(), "application/fhir+json");
        }
        escaped_json(200, &bundle)
    }
}

fn header_is(request: &Request, name: &str, wanted: &str) -> bool {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(wanted)))
}
