// Smoke test for the running local FHIR server (`stack.sh up` first, or just
// `node local/fhir-server.mjs`). Checks the search features the Rust tools
// rely on, so a Medplum upgrade that changes behaviour shows up here first.
// Prints only counts, ids and statuses.

const BASE = process.env.FHIR_BASE_URL ?? `http://127.0.0.1:${process.env.FHIR_PORT ?? 8103}/fhir`;
const ROOT = new URL(BASE).origin;
const PATIENT = 'c5ed5d78-5b3f-4a75-bdfb-5f318b068a20'; // largest bundle
const PRACTITIONER = 'bfa88186-6c31-4534-93b0-77674d9e5739';

let failures = 0;
function check(name, cond, detail = '') {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
  if (!cond) failures++;
}

async function get(pathOrUrl, headers = {}) {
  const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${BASE}/${pathOrUrl}`;
  const res = await fetch(url, { headers });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, type: res.headers.get('content-type') };
}

const health = await get(`${ROOT}/healthz`);
check('healthz ready', health.status === 200 && health.body.status === 'ready', `resources=${health.body?.resources}`);

await fetch(`${ROOT}/__journal`, { method: 'DELETE' });

const pat = await get(`Patient/${PATIENT}`, { 'x-session-id': 'smoke-session', 'x-request-id': 'r1' });
check('read Patient', pat.status === 200 && pat.body.id === PATIENT && pat.type.startsWith('application/fhir+json'));
check('generalPractitioner set', pat.body.generalPractitioner?.[0]?.reference === `Practitioner/${PRACTITIONER}`);

const missing = await get('Patient/does-not-exist');
check('unknown id -> 404', missing.status === 404 && missing.body.resourceType === 'OperationOutcome');
const badParam = await get('Observation?no-such-param=1');
check('unknown search param -> 400', badParam.status === 400);
const badCount = await get('Observation?_count=abc');
check('bad _count -> 400', badCount.status === 400);
const badType = await get('NotAType?x=1');
check('unknown type -> 404', badType.status === 404);

const byPatient = await get(`Observation?patient=${PATIENT}&_count=1000`);
const byPatientRef = await get(`Observation?patient=Patient/${PATIENT}&_count=1000`);
const bySubject = await get(`Observation?subject=Patient/${PATIENT}&_count=1000`);
check('patient= bare id', byPatient.body.total > 0, `total=${byPatient.body.total}`);
check('patient= Patient/id same', byPatientRef.body.total === byPatient.body.total);
check('subject= same', bySubject.body.total === byPatient.body.total);

const sorted = await get(`Observation?patient=${PATIENT}&_sort=-date&_count=50`);
const dates = sorted.body.entry.map((e) => e.resource.effectiveDateTime ?? e.resource.effectivePeriod?.start);
check('_sort=-date descending', dates.every((d, i) => i === 0 || Date.parse(dates[i - 1]) >= Date.parse(d)), `n=${dates.length}`);

// Cut at the median observation date so both sides of the filter are non-empty.
const allDates = byPatient.body.entry.map((e) => e.resource.effectiveDateTime).filter(Boolean).sort();
const cutoff = allDates[Math.floor(allDates.length / 2)].slice(0, 10);
const since = await get(`Observation?patient=${PATIENT}&date=ge${cutoff}&_count=1000`);
const allAfter = since.body.entry?.every((e) => e.resource.effectiveDateTime.slice(0, 10) >= cutoff) ?? false;
check('date=ge filters', since.body.total > 0 && since.body.total < byPatient.body.total && allAfter, `total=${since.body.total}`);

const vitals = await get(`Observation?patient=${PATIENT}&category=vital-signs&_count=1000`);
const vitalsSys = await get(`Observation?patient=${PATIENT}&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs&_count=1000`);
check('category=vital-signs', vitals.body.total > 0 && vitals.body.total < byPatient.body.total, `total=${vitals.body.total}`);
check('category system|code', vitalsSys.body.total === vitals.body.total);

const loinc = await get(`Observation?patient=${PATIENT}&code=http://loinc.org|8302-2&_count=1000`);
check('code system|code', loinc.body.total > 0 && loinc.body.entry.every((e) => e.resource.code.coding.some((c) => c.code === '8302-2')), `total=${loinc.body.total}`);
const wrongSys = await get(`Observation?patient=${PATIENT}&code=http://snomed.info/sct|8302-2`);
check('code wrong system -> 0', wrongSys.body.total === 0);

const active = await get(`Condition?patient=${PATIENT}&clinical-status=active&_count=1000`);
const allCond = await get(`Condition?patient=${PATIENT}&_count=1000`);
check('clinical-status=active', active.body.total > 0 && active.body.total <= allCond.body.total, `active=${active.body.total} all=${allCond.body.total}`);

const encs = await get(`Encounter?participant=Practitioner/${PRACTITIONER}&_count=1000`);
check('Encounter participant=', encs.body.total > 0, `total=${encs.body.total}`);
const encsSorted = await get(`Encounter?patient=${PATIENT}&_sort=-date&_count=1`);
check('latest encounter participant matches GP', encsSorted.body.entry?.[0]?.resource.participant?.[0]?.individual?.reference === `Practitioner/${PRACTITIONER}`);

const byId = await get(`Patient?_id=${PATIENT}`);
check('_id search', byId.body.total === 1 && byId.body.entry[0].resource.id === PATIENT);

const elems = await get(`Observation?patient=${PATIENT}&_elements=code,effective&_count=5`);
const keys = new Set(elems.body.entry.flatMap((e) => Object.keys(e.resource)));
check('_elements subsets', !keys.has('valueQuantity') && !keys.has('subject') && keys.has('code') && keys.has('effectiveDateTime'), [...keys].join(','));
const imm = await get(`Immunization?patient=${PATIENT}&_elements=vaccineCode&_count=1`);
const immKeys = Object.keys(imm.body.entry[0].resource);
check('_elements keeps mandatory elements', ['status', 'patient', 'occurrenceDateTime'].every((k) => immKeys.includes(k)), immKeys.join(','));

// Paging: walk `next` until exhausted and compare with a single big page.
let url = `${BASE}/Observation?patient=${PATIENT}&_count=100&_sort=-date`;
const seen = new Set();
let pages = 0;
let linksAbsolute = true;
while (url) {
  const page = await get(url);
  pages++;
  for (const e of page.body.entry ?? []) seen.add(e.resource.id);
  url = page.body.link?.find((l) => l.relation === 'next')?.url;
  if (url && !url.startsWith(`${BASE}/`)) linksAbsolute = false;
}
check('paging covers all', seen.size === byPatient.body.total, `pages=${pages} ids=${seen.size}`);
check('next links absolute to this base', linksAbsolute);
const def = await get(`Observation?patient=${PATIENT}`);
check('default page size 20 with next', def.body.entry.length === 20 && def.body.link.some((l) => l.relation === 'next'));

// Writes.
const put = await fetch(`${BASE}/Patient/smoke-put`, {
  method: 'PUT',
  headers: { 'content-type': 'application/fhir+json' },
  body: JSON.stringify({ resourceType: 'Patient', id: 'smoke-put', active: true }),
});
check('PUT upsert', put.status === 200 || put.status === 201, `status=${put.status}`);
const post = await fetch(`${BASE}/Observation`, {
  method: 'POST',
  headers: { 'content-type': 'application/fhir+json' },
  body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'smoke' } }),
});
const created = await post.json();
check('POST create 201', post.status === 201 && !!created.id && !!post.headers.get('location'));
const badJson = await fetch(`${BASE}/Observation`, { method: 'POST', body: '{nope' });
check('POST bad JSON -> 400', badJson.status === 400);

// Concurrency: many searches in flight at once.
const t0 = performance.now();
const burst = await Promise.all(Array.from({ length: 20 }, () => get(`Observation?patient=${PATIENT}&_sort=-date&_count=20`)));
check('20 concurrent searches', burst.every((r) => r.status === 200), `ms=${(performance.now() - t0).toFixed(0)}`);

const j = await get(`${ROOT}/__journal`);
const first = j.body.requests[0];
check('journal records headers', first.session_id === 'smoke-session' && first.request_id === 'r1' && first.method === 'GET');
check('journal raw query', j.body.requests.some((r) => r.query.includes('no-such-param=1')));

console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
