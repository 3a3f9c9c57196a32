// Scripted end-to-end demo against a running stack (`local/stack.sh demo`).
// One agent session, four tool calls, then the audit trail of that session:
//   1. a clinician summarises one of their own patients   -> must succeed
//   2. a revenue-cycle coder asks for the same patient     -> must be denied
//   3. a forged token                                      -> must be rejected
//   4. an expired token                                    -> must be rejected
//   5. the session's timeline through `audit session` (audit records + the FHIR journal)
// Exits non-zero when any expectation fails.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const STACK_DIR = process.env.STACK_DIR ?? resolve(HERE, '..', '.local-stack');
const LAMBDA_LOG = process.env.LAMBDA_LOG ?? join(STACK_DIR, 'logs', 'lambda.log');
const LAMBDA_PORT = process.env.LAMBDA_PORT ?? 9000;
const FUNCTION = process.env.DEMO_FUNCTION ?? 'patient-summary';
const INVOKE_URL = `http://127.0.0.1:${LAMBDA_PORT}/2015-03-31/functions/${FUNCTION}/invocations`;
// First call compiles the function under cargo lambda watch.
const INVOKE_TIMEOUT_MS = Number(process.env.INVOKE_TIMEOUT ?? 1800) * 1000;

// Joie Morissette's Patient id: generalPractitioner is dr-alvarez's practitioner.
const PATIENT_ID = process.env.DEMO_PATIENT_ID ?? 'fdc61ab3-9be9-412c-b470-dfa65cb5e6e6';

// AgentCore session ids are at least 33 characters from [A-Za-z0-9._-];
// base64url gives that charset minus '.', which is still within it.
const SESSION_ID = `demo-${randomBytes(24).toString('base64url')}`;

let failures = 0;

function heading(text) {
  console.log(`\n=== ${text} ===`);
}

function mint(user, ...flags) {
  return execFileSync(process.execPath, [join(HERE, 'issuer.mjs'), 'mint', user, ...flags], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

function logSize() {
  try {
    return statSync(LAMBDA_LOG).size;
  } catch {
    return 0;
  }
}

function readLogFrom(offset) {
  try {
    return readFileSync(LAMBDA_LOG).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

// node:http rather than fetch: fetch gives up after 300 s without response
// headers, shorter than a cold compile of the function.
function post(url, body, signal) {
  return new Promise((resolvePost, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, signal }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolvePost({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A function that already exited stays dead under the emulator (with
// --ignore-changes, or until the next source change): its last lifecycle
// line in the log is an exit rather than a `Running` line.
function deadAtStart() {
  const log = readLogFrom(0);
  const lastRun = log.lastIndexOf('Running `');
  const lastExit = Math.max(log.lastIndexOf('ERROR command exited'), log.lastIndexOf('ERROR command killed'));
  return lastExit > lastRun;
}

let functionDead = deadAtStart();
if (functionDead) console.log(`the function process has exited (see ${LAMBDA_LOG}); restart with: local/stack.sh down && local/stack.sh up`);

async function invoke(token) {
  if (functionDead) {
    return { status: 0, reply: undefined, raw: `skipped: the function process exited earlier; see ${LAMBDA_LOG}` };
  }
  const event = {
    tool: 'patient_summary',
    session_id: SESSION_ID,
    identity_token: token,
    arguments: { patient_id: PATIENT_ID },
  };
  // The emulator keeps an invoke pending forever when the function process
  // dies, and the long timeout exists only for the first compile; so watch
  // the log for a function exit and give up early with a pointer to it.
  const controller = new AbortController();
  const logStart = logSize();
  const watcher = setInterval(() => {
    if (/ERROR command (exited|killed)|runtime loop ended/.test(readLogFrom(logStart))) {
      functionDead = true;
      controller.abort();
    }
  }, 1000);
  let res;
  try {
    res = await post(INVOKE_URL, JSON.stringify(event), AbortSignal.any([controller.signal, AbortSignal.timeout(INVOKE_TIMEOUT_MS)]));
  } catch (err) {
    const why = functionDead ? 'the function process exited;' : `invoke failed (${err.code ?? err.name}); is the stack up?`;
    return { status: 0, reply: undefined, raw: `${why} see ${LAMBDA_LOG}` };
  } finally {
    clearInterval(watcher);
  }
  try {
    return { status: res.status, reply: JSON.parse(res.text) };
  } catch {
    return { status: res.status, reply: undefined, raw: res.text };
  }
}

function expect(cond, what) {
  console.log(cond ? `-> as expected: ${what}` : `-> UNEXPECTED: ${what}`);
  if (!cond) failures++;
}

function showError(reply) {
  console.log(`error.kind=${reply?.error?.kind ?? '-'} message=${reply?.error?.message ?? '-'}`);
}

// Only `ok: false` is a hard requirement; a different error kind than the
// one expected is reported but tolerated, since the Rust side owns the
// classification.
async function expectRejected(label, token, kind) {
  const { status, reply, raw } = await invoke(token);
  if (!reply) {
    console.log(`HTTP ${status}, non-JSON reply: ${raw?.slice(0, 500)}`);
    expect(false, `${label} is rejected with a JSON reply`);
    return;
  }
  showError(reply);
  expect(reply.ok === false, `${label} is rejected (ok=false)`);
  if (reply.ok === false && reply.error?.kind !== kind) console.log(`note: expected error.kind=${kind}`);
}

console.log(`session_id=${SESSION_ID}`);
console.log(`patient_id=${PATIENT_ID} function=${FUNCTION}`);

heading('1. dr-alvarez asks for a summary of their own patient');
{
  console.log('(the first invoke may compile the function; this can take minutes)');
  const started = Date.now();
  const { status, reply, raw } = await invoke(mint('dr-alvarez'));
  console.log(`HTTP ${status} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  if (!reply) console.log(raw?.slice(0, 2000));
  else if (typeof reply.text === 'string') console.log(reply.text);
  else console.log(JSON.stringify(reply, null, 2));
  expect(reply?.ok === true, 'summary allowed (ok=true)');
}

heading('2. coder-lee asks for the same patient');
await expectRejected('rcm_coder asking for a clinical summary', mint('coder-lee'), 'denied');

heading('3. forged token (right kid, wrong key)');
await expectRejected('forged token', mint('dr-alvarez', '--forged'), 'unauthenticated');

heading('4. expired token');
await expectRejected('expired token', mint('dr-alvarez', '--expired'), 'unauthenticated');

heading('5. the session timeline (audit session)');
{
  // Give the function's stdout a moment to reach the log file.
  await new Promise((r) => setTimeout(r, 500));
  const journalUrl = `http://127.0.0.1:${process.env.FHIR_PORT ?? 8103}/__journal`;
  const auditArgs = ['session', SESSION_ID, '--log', LAMBDA_LOG, '--journal', journalUrl];
  const audit = (extra) =>
    execFileSync('cargo', ['run', '-q', '-p', 'audit', '--', ...auditArgs, ...extra], {
      cwd: resolve(HERE, '..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  try {
    console.log(audit([]));
    const timeline = JSON.parse(audit(['--json']));
    const shown = [...timeline.calls.flatMap((c) => c.fhir_requests), ...timeline.unattributed_fhir_requests];
    const journal = await new Promise((resolveGet, reject) => {
      request(journalUrl, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolveGet(JSON.parse(text)));
      })
        .on('error', reject)
        .end();
    });
    const expected = journal.requests.filter((r) => r.session_id === SESSION_ID);
    expect(timeline.calls.length >= 2, `the timeline has the session's calls (${timeline.calls.length})`);
    expect(
      shown.length === expected.length && shown.every((r) => r.session_id === SESSION_ID),
      `every FHIR request journaled for the session is shown, nothing else (${shown.length} of ${expected.length})`,
    );
    // Spans (OTEL_TRACES_EXPORTER=file) carry the session id and name the trace the audit record names.
    const traced = timeline.calls.filter(
      (c) => c.spans.length > 0 && c.trace_id && c.spans.every((s) => s.trace_id === c.trace_id),
    );
    expect(
      traced.length === timeline.calls.length,
      `every call's spans are in the trace its audit record names (${traced.length} of ${timeline.calls.length})`,
    );
  } catch (err) {
    console.log(`audit session failed: ${err.message}`);
    expect(false, 'audit session prints the timeline');
  }
}

console.log(failures ? `\nDEMO FAILED: ${failures} expectation(s) not met` : '\nDEMO OK');
process.exit(failures ? 1 : 0);
