// Local stand-in for the identity provider: serves a JWKS and mints RS256
// tokens for the demo users. node:crypto only, so it works before `npm ci`.
//
//   node local/issuer.mjs serve
//   node local/issuer.mjs mint <user> [--ttl SECONDS] [--expired] [--forged] [--aud AUD]
//
// `serve` generates a fresh key pair on every start; `mint` reads the private
// key that the running issuer wrote, so tokens always verify against the JWKS
// currently being served.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(HERE, '..');
const HOST = '127.0.0.1';
const PORT = Number(process.env.ISSUER_PORT ?? 8104);
const ISSUER = `http://${HOST}:${PORT}`;
const DEFAULT_AUDIENCE = 'clinical-agent-tools';
const DEFAULT_TTL = 900;
const STATE_DIR = join(process.env.STACK_DIR ?? join(REPO_ROOT, '.local-stack'), 'issuer');
const KEY_FILE = join(STATE_DIR, 'private-key.pem');
const KID_FILE = join(STATE_DIR, 'kid');
const USERS_FILE = join(HERE, 'demo-users.json');

function fail(message) {
  process.stderr.write(`issuer: ${message}\n`);
  process.exit(1);
}

function b64url(input) {
  return Buffer.from(input).toString('base64url');
}

function newKeyPair() {
  return generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
}

function writeSecret(path, contents) {
  // Write with 0600 from the start so the key is never briefly world-readable;
  // chmod again in case the file already existed with looser bits.
  writeFileSync(path, contents, { mode: 0o600 });
  chmodSync(path, 0o600);
}

// ---------------------------------------------------------------- serve

function serve() {
  const { privateKey, publicKey } = newKeyPair();
  // A time-based kid makes a restarted issuer's tokens distinguishable from
  // stale ones in verifier logs.
  const kid = `local-${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${randomUUID().slice(0, 8)}`;
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  writeSecret(KEY_FILE, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeSecret(KID_FILE, `${kid}\n`);

  const jwk = publicKey.export({ format: 'jwk' });
  const jwks = JSON.stringify({ keys: [{ kty: 'RSA', kid, use: 'sig', alg: 'RS256', n: jwk.n, e: jwk.e }] });

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', ISSUER).pathname;
    if (req.method === 'GET' && path === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(jwks);
    } else if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ready', kid }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found' }));
    }
  });

  const shutdown = (signal) => {
    process.stdout.write(`issuer: ${signal}, shutting down\n`);
    // Remove the key so `mint` cannot produce tokens nobody can verify.
    rmSync(KEY_FILE, { force: true });
    rmSync(KID_FILE, { force: true });
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  server.on('error', (err) => fail(`cannot listen on ${HOST}:${PORT}: ${err.code ?? err.message}`));
  server.listen(PORT, HOST, () => {
    process.stdout.write(`issuer: listening ${ISSUER} kid=${kid} key=${KEY_FILE}\n`);
  });
}

// ---------------------------------------------------------------- mint

function parseMintArgs(argv) {
  const opts = { ttl: DEFAULT_TTL, expired: false, forged: false, aud: DEFAULT_AUDIENCE, user: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--ttl') {
      const v = value();
      if (!/^\d+$/.test(v)) fail(`--ttl must be a whole number of seconds, got "${v}"`);
      opts.ttl = Number(v);
    } else if (arg === '--expired') opts.expired = true;
    else if (arg === '--forged') opts.forged = true;
    else if (arg === '--aud') opts.aud = value();
    else if (arg.startsWith('--')) fail(`unknown option ${arg}`);
    else if (opts.user === undefined) opts.user = arg;
    else fail(`unexpected argument ${arg}`);
  }
  if (!opts.user) fail('usage: issuer.mjs mint <user> [--ttl SECONDS] [--expired] [--forged] [--aud AUD]');
  return opts;
}

async function liveKid() {
  try {
    const res = await fetch(`${ISSUER}/healthz`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return undefined;
    return (await res.json()).kid;
  } catch {
    return undefined;
  }
}

async function mint(argv) {
  const opts = parseMintArgs(argv);
  const users = JSON.parse(readFileSync(USERS_FILE, 'utf8'));
  const user = users[opts.user];
  if (!user) fail(`unknown user "${opts.user}" (known: ${Object.keys(users).join(', ')})`);

  let privateKey;
  let kid;
  try {
    privateKey = readFileSync(KEY_FILE, 'utf8');
    kid = readFileSync(KID_FILE, 'utf8').trim();
  } catch {
    fail(`no signing key at ${KEY_FILE}: start the issuer first (local/stack.sh up)`);
  }
  // A key file left behind by a killed issuer would mint tokens that no
  // running JWKS can verify; ask the live issuer which kid it serves.
  const live = await liveKid();
  if (live === undefined) fail(`issuer is not running at ${ISSUER}: start it first (local/stack.sh up)`);
  if (live !== kid) fail(`stale key in ${STATE_DIR} (kid ${kid}, issuer serves ${live}): restart the issuer`);
  if (opts.forged) {
    // Same kid as the real key, different key material: the header looks
    // legitimate, only the signature check can catch it.
    privateKey = newKeyPair().privateKey;
  }

  const now = Math.floor(Date.now() / 1000);
  const iat = opts.expired ? now - 3600 : now;
  const exp = opts.expired ? now - 600 : now + opts.ttl;
  const claims = {
    iss: ISSUER,
    aud: opts.aud,
    sub: opts.user,
    roles: user.roles,
    org: user.org,
    ...(user.practitioner_id ? { practitioner_id: user.practitioner_id } : {}),
    iat,
    nbf: iat,
    exp,
    jti: randomUUID(),
  };
  const header = { alg: 'RS256', typ: 'JWT', kid };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput), privateKey).toString('base64url');
  process.stdout.write(`${signingInput}.${signature}\n`);
}

// ---------------------------------------------------------------- main

const [command, ...rest] = process.argv.slice(2);
if (command === 'serve') serve();
else if (command === 'mint') await mint(rest);
else fail('usage: issuer.mjs serve | issuer.mjs mint <user> [--ttl SECONDS] [--expired] [--forged] [--aud AUD]');
