#!/usr/bin/env bash
# One entry point for the local stack: FHIR server, JWT issuer and the Rust
# functions under `cargo lambda watch`, all on loopback, no AWS account.
#
#   local/stack.sh install | up | down | status | demo | test
#   local/stack.sh token <user> [--ttl S] [--expired] [--forged] [--aud AUD]
#   local/stack.sh invoke <function> <event-file|-> [--as <user>] [--token-flags "..."]
set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCAL_DIR/.." && pwd)"
export STACK_DIR="${STACK_DIR:-$REPO_ROOT/.local-stack}"
LOG_DIR="$STACK_DIR/logs"
PID_DIR="$STACK_DIR/pids"
VENV="$REPO_ROOT/.venv"
CARGO_LAMBDA_VERSION="1.9.2"
CARGO_LAMBDA="$VENV/bin/cargo-lambda"
NODE="${NODE:-node}"

export FHIR_PORT="${FHIR_PORT:-8103}"
export ISSUER_PORT="${ISSUER_PORT:-8104}"
LAMBDA_PORT="${LAMBDA_PORT:-9000}"
# moto's server (KMS, Secrets Manager, STS) for the shared-aws integration tests, on loopback only.
MOTO_PORT="${MOTO_PORT:-8105}"
MOTO_VERSION="5.2.5"
# Validates the prior-auth PAS Bundles (R4B models) in the prior-auth-draft tests.
FHIR_RESOURCES_VERSION="7.1.0"
HTTPX_VERSION="0.28.1"
FHIR_BASE_URL="http://127.0.0.1:$FHIR_PORT/fhir"
ISSUER_URL="http://127.0.0.1:$ISSUER_PORT"

# Generous defaults: the emulator only has to open its port, but a cold
# `cargo build` of the functions happens on first invoke and can take minutes.
FHIR_READY_TIMEOUT="${FHIR_READY_TIMEOUT:-90}"
ISSUER_READY_TIMEOUT="${ISSUER_READY_TIMEOUT:-20}"
LAMBDA_READY_TIMEOUT="${LAMBDA_READY_TIMEOUT:-120}"
INVOKE_TIMEOUT="${INVOKE_TIMEOUT:-1800}"

COMPONENTS=(fhir issuer lambda)

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ helpers

pid_of() {
  local f="$PID_DIR/$1.pid"
  [[ -s "$f" ]] && cat "$f" || true
}

is_running() {
  local pid
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

port_open() {
  # bash's /dev/tcp avoids depending on nc/ss being installed.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

http_ok() {
  curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null
}

# wait_for <name> <timeout-seconds> <check command...>
wait_for() {
  local name="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  while ! "$@"; do
    if ! is_running "$name"; then
      die "$name exited during startup (run local/stack.sh down to stop the rest); see $LOG_DIR/$name.log (last lines below)
$(tail -n 20 "$LOG_DIR/$name.log" 2>/dev/null)"
    fi
    if ((SECONDS >= deadline)); then
      die "$name not ready after ${timeout}s; see $LOG_DIR/$name.log"
    fi
    sleep 0.5
  done
}

# start <name> <command...>: detached in its own session so `down` can signal
# the whole process group (cargo lambda watch spawns cargo and the functions).
start() {
  local name="$1"
  shift
  mkdir -p "$LOG_DIR" "$PID_DIR"
  printf '\n===== %s start %s =====\n' "$name" "$(date -u +%FT%TZ)" >>"$LOG_DIR/$name.log"
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

stop() {
  local name="$1" pid
  pid="$(pid_of "$name")"
  if [[ -z "$pid" ]]; then
    return 0
  fi
  if kill -0 "$pid" 2>/dev/null; then
    # Negative pid = the process group started by setsid in start().
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name (pid $pid)"
  else
    say "$name (pid $pid) was not running"
  fi
  rm -f "$PID_DIR/$name.pid"
}

# ------------------------------------------------------------------ install

lock_hash() {
  sha256sum "$LOCAL_DIR/package-lock.json" | cut -d' ' -f1
}

cmd_install() {
  command -v "$NODE" >/dev/null || die "node not found on PATH"
  command -v curl >/dev/null || die "curl not found on PATH"
  local stamp="$LOCAL_DIR/node_modules/.stack-lock-sha256" want
  want="$(lock_hash)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "node deps: up to date"
  else
    say "node deps: running npm ci in local/"
    local t0=$SECONDS
    (cd "$LOCAL_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
    say "node deps: installed in $((SECONDS - t0))s"
  fi

  local have=""
  if [[ -x "$CARGO_LAMBDA" ]]; then
    have="$("$CARGO_LAMBDA" lambda --version 2>/dev/null | awk '{print $2}')"
  fi
  if [[ "$have" == "$CARGO_LAMBDA_VERSION" ]]; then
    say "cargo-lambda: $have present in .venv"
  else
    say "cargo-lambda: installing $CARGO_LAMBDA_VERSION into $VENV (found: ${have:-none})"
    local t0=$SECONDS
    [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
    say "cargo-lambda: installed in $((SECONDS - t0))s"
  fi

  local moto_have=""
  if [[ -x "$VENV/bin/python" ]]; then
    moto_have="$("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || true)"
  fi
  if [[ "$moto_have" == "$MOTO_VERSION" && -x "$VENV/bin/moto_server" ]]; then
    say "moto: $moto_have present in .venv"
  else
    say "moto: installing moto[server] $MOTO_VERSION into $VENV (found: ${moto_have:-none})"
    local t0=$SECONDS
    [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    say "moto: installed in $((SECONDS - t0))s"
  fi

  # httpx: the plain-Python baseline of the FHIR fan-out benchmark (local/bench_fhir_fanout.py).
  if "$VENV/bin/pip" show httpx 2>/dev/null | grep -qx "Version: $HTTPX_VERSION"; then
    say "httpx: $HTTPX_VERSION present in .venv"
  else
    [[ -x "$VENV/bin/pip" ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "httpx==$HTTPX_VERSION"
  fi

  if "$VENV/bin/pip" show fhir.resources 2>/dev/null | grep -qx "Version: $FHIR_RESOURCES_VERSION"; then
    say "fhir.resources: $FHIR_RESOURCES_VERSION present in .venv"
  else
    say "fhir.resources: installing $FHIR_RESOURCES_VERSION into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "fhir.resources==$FHIR_RESOURCES_VERSION"
  fi
}

# The shared-aws adapters (KMS, Secrets Manager, STS) against moto's server on loopback; stopped on any exit.
run_moto_tests() {
  start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  trap 'stop moto' EXIT
  wait_for moto 30 http_ok "http://127.0.0.1:$MOTO_PORT/moto-api/"
  MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT" cargo test -p shared-aws --test moto -- --ignored
  # The `audit` command's AWS paths: Logs Insights (session) and KMS VerifyMac (verify).
  MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT" cargo test -p audit --test aws -- --ignored
  trap - EXIT
  stop moto
}

# ------------------------------------------------------------------ up/down

write_lambda_env() {
  # The local audit checkpoint key (HMAC-SHA256, 64 hex); `audit verify --key-file` reads the same file.
  if [[ ! -s "$STACK_DIR/audit-mac.key" ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STACK_DIR/audit-mac.key")
  fi
  # An env file rather than --env-var flags keeps the values visible for
  # debugging and out of `ps` output.
  cat >"$STACK_DIR/lambda.env" <<EOF
FHIR_BASE_URL=$FHIR_BASE_URL
FHIR_SIGNING=none
JWKS_URL=$ISSUER_URL/.well-known/jwks.json
JWT_ISSUER=$ISSUER_URL
JWT_AUDIENCE=clinical-agent-tools
CLINICAL_WRITER=local
AUDIT_MAC_KEY_FILE=$STACK_DIR/audit-mac.key
OTEL_TRACES_EXPORTER=file
OTEL_TRACES_FILE=$LOG_DIR/spans.jsonl
RUST_LOG=info
EOF
}

cmd_up() {
  local all=1 c
  for c in "${COMPONENTS[@]}"; do is_running "$c" || all=0; done
  if ((all)); then
    say "already up (fhir pid $(pid_of fhir), issuer pid $(pid_of issuer), lambda pid $(pid_of lambda)); nothing to do"
    return 0
  fi

  cmd_install
  mkdir -p "$LOG_DIR" "$PID_DIR"
  local t0=$SECONDS

  if is_running fhir; then
    say "fhir already running (pid $(pid_of fhir))"
  else
    port_open "$FHIR_PORT" && die "port $FHIR_PORT is already in use by another process"
    say "starting fhir-server on $FHIR_BASE_URL"
    start fhir "$NODE" "$LOCAL_DIR/fhir-server.mjs"
  fi

  if is_running issuer; then
    say "issuer already running (pid $(pid_of issuer))"
  else
    port_open "$ISSUER_PORT" && die "port $ISSUER_PORT is already in use by another process"
    say "starting issuer on $ISSUER_URL"
    start issuer "$NODE" "$LOCAL_DIR/issuer.mjs" serve
  fi

  if is_running lambda; then
    say "lambda emulator already running (pid $(pid_of lambda))"
  else
    port_open "$LAMBDA_PORT" && die "port $LAMBDA_PORT is already in use by another process"
    write_lambda_env
    say "starting cargo lambda watch on 127.0.0.1:$LAMBDA_PORT"
    # cd in a subshell: watch builds the workspace of the current directory.
    local reload=()
    # Hot reload restarts the function on every source save, which aborts
    # in-flight invokes while others edit the tree; tests can opt out.
    [[ "${LAMBDA_NO_RELOAD:-0}" == "1" ]] && reload=(--ignore-changes)
    start lambda bash -c 'cd "$1" && shift && exec "$@"' _ "$REPO_ROOT" \
      "$CARGO_LAMBDA" lambda watch \
      --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" \
      --env-file "$STACK_DIR/lambda.env" "${reload[@]}"
  fi

  wait_for issuer "$ISSUER_READY_TIMEOUT" http_ok "$ISSUER_URL/healthz"
  say "issuer ready"
  wait_for fhir "$FHIR_READY_TIMEOUT" http_ok "http://127.0.0.1:$FHIR_PORT/healthz"
  say "fhir ready: $(curl -fsS "http://127.0.0.1:$FHIR_PORT/healthz")"
  wait_for lambda "$LAMBDA_READY_TIMEOUT" port_open "$LAMBDA_PORT"
  say "lambda emulator accepting connections (functions compile on first invoke)"
  say "up in $((SECONDS - t0))s; logs in $LOG_DIR"
}

cmd_down() {
  local c any=0
  for c in "${COMPONENTS[@]}"; do [[ -n "$(pid_of "$c")" ]] && any=1; done
  if ((!any)); then
    say "nothing to stop (no pid files in $PID_DIR)"
    return 0
  fi
  # Reverse order: stop the functions before the services they call.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop "${COMPONENTS[$i]}"
  done
}

cmd_status() {
  local c rc=0
  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then
      say "$c: running (pid $(pid_of "$c"))"
    else
      say "$c: stopped"
      rc=1
    fi
  done
  http_ok "http://127.0.0.1:$FHIR_PORT/healthz" &&
    say "fhir health: $(curl -fsS "http://127.0.0.1:$FHIR_PORT/healthz")" || say "fhir health: unreachable"
  http_ok "$ISSUER_URL/healthz" && say "issuer health: $(curl -fsS "$ISSUER_URL/healthz")" || say "issuer health: unreachable"
  port_open "$LAMBDA_PORT" && say "lambda emulator: listening on $LAMBDA_PORT" || say "lambda emulator: not listening"
  return $rc
}

# ------------------------------------------------------------------ token/invoke

cmd_token() {
  [[ $# -ge 1 ]] || die "usage: stack.sh token <user> [--ttl S] [--expired] [--forged] [--aud AUD]"
  exec "$NODE" "$LOCAL_DIR/issuer.mjs" mint "$@"
}

cmd_invoke() {
  local fn="${1:-}" src="${2:-}"
  [[ -n "$fn" && -n "$src" ]] || die 'usage: stack.sh invoke <function> <event-file|-> [--as <user>] [--token-flags "..."]'
  shift 2
  local as="" token_flags=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --as) as="${2:?--as needs a user}"; shift 2 ;;
      --token-flags) token_flags="${2?--token-flags needs a value}"; shift 2 ;;
      *) die "unknown invoke option: $1" ;;
    esac
  done

  local event
  if [[ "$src" == "-" ]]; then
    event="$(cat)"
  else
    [[ -f "$src" ]] || die "event file not found: $src"
    event="$(cat "$src")"
  fi

  if [[ -n "$as" ]]; then
    local token
    # token_flags is deliberately word-split: it carries several CLI flags.
    # shellcheck disable=SC2086
    token="$("$NODE" "$LOCAL_DIR/issuer.mjs" mint "$as" $token_flags)" || die "could not mint a token for $as"
    event="$(TOKEN="$token" "$NODE" -e '
      let raw = "";
      process.stdin.on("data", (c) => (raw += c)).on("end", () => {
        const ev = JSON.parse(raw);
        // Direct tool calls carry the token at top level; Bedrock Agent
        // events only pass it through sessionAttributes.
        if (Object.hasOwn(ev, "tool")) ev.identity_token = process.env.TOKEN;
        else if (Object.hasOwn(ev, "messageVersion")) {
          ev.sessionAttributes = { ...(ev.sessionAttributes ?? {}), identity_token: process.env.TOKEN };
        } else {
          process.stderr.write("event has neither \"tool\" nor \"messageVersion\"; cannot place the token\n");
          process.exit(2);
        }
        process.stdout.write(JSON.stringify(ev));
      });' <<<"$event")" || die "could not inject the token into the event"
  else
    "$NODE" -e 'JSON.parse(require("fs").readFileSync(0, "utf8"))' <<<"$event" 2>/dev/null || die "event is not valid JSON"
  fi

  port_open "$LAMBDA_PORT" || die "lambda emulator is not listening on $LAMBDA_PORT; run: local/stack.sh up"
  local url="http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/$fn/invocations"
  local out status
  out="$(mktemp)"
  status="$(curl -sS --max-time "$INVOKE_TIMEOUT" -o "$out" -w '%{http_code}' \
    -H 'content-type: application/json' --data-binary @- "$url" <<<"$event")" || {
    rm -f "$out"
    die "invoke request failed; see $LOG_DIR/lambda.log"
  }
  # Pretty-print when it is JSON, raw otherwise (emulator errors are text).
  "$NODE" -e '
    const s = require("fs").readFileSync(0, "utf8");
    try { console.log(JSON.stringify(JSON.parse(s), null, 2)); } catch { console.log(s); }' <"$out"
  rm -f "$out"
  [[ "$status" == "200" ]] || die "emulator answered HTTP $status; see $LOG_DIR/lambda.log"
}

cmd_demo() {
  cmd_up
  "$NODE" "$LOCAL_DIR/demo.mjs"
}

# The README's test command: lints, template scanners, every unit and integration test, the deployable sam build, then
# the end-to-end tests through
# the emulator against a stack started (and stopped) here.
cmd_test() {
  cmd_install
  cd "$REPO_ROOT"
  say "cargo fmt --check"
  cargo fmt --all --check
  say "cargo clippy (warnings are errors)"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  say "template scanners (sam validate --lint, cfn-lint, checkov, cfn-guard) and their known-bad fixture"
  bash "$REPO_ROOT/deploy/scan.sh"
  say "cargo test (unit, integration, policy and PHI-canary tests)"
  cargo test --workspace
  say "ICD-10 coding: dev cases through the tool, scored by ../shared/icd10/score_icd10.py"
  bash "$REPO_ROOT/functions/icd10-coding/scripts/score_dev_cases.sh"
  say "shared-aws integration tests against moto (KMS, Secrets Manager, STS)"
  run_moto_tests
  say "sam build of the three tool functions (rust-cargolambda, arm64 in SAM debug mode — or a plainly reported x86_64 fallback; release build: deploy/build.sh --release)"
  bash "$REPO_ROOT/deploy/build.sh"
  # Built before the emulator starts, so the first invoke does not compile under a timeout.
  cargo build -p patient-summary -p prior-auth-draft -p icd10-coding -p audit --quiet
  local started_here=0
  if ! is_running lambda; then
    started_here=1
    trap 'cmd_down' EXIT
    LAMBDA_NO_RELOAD=1 cmd_up
  fi
  say "the local FHIR server behaves like HealthLake (POST _search, lenient/strict handling, idempotent create, faults)"
  FHIR_URL="http://127.0.0.1:$FHIR_PORT" cargo test -p shared --test local_fhir_server -- --ignored
  say "end-to-end tests through cargo lambda watch"
  cargo test -p e2e -- --ignored --test-threads=1 --skip the_bad_input_catalogue
  say "the bad-input catalogue (tests/tests/bad_inputs.rs): every case a typed error or its documented allow, no downstream call, no echo"
  local catalogue_log="$LOG_DIR/bad_inputs.log" catalogue_status=0
  cargo test -p e2e --test bad_inputs -- --ignored --nocapture >"$catalogue_log" 2>&1 || catalogue_status=$?
  grep -E '^(ok  |FAIL|bad-input catalogue:)' "$catalogue_log" || true
  if ((catalogue_status != 0)); then
    tail -40 "$catalogue_log"
    die "the bad-input catalogue failed (full output: $catalogue_log)"
  fi
  say "scripted demo"
  "$NODE" "$LOCAL_DIR/demo.mjs"
  if ((started_here)); then
    trap - EXIT
    cmd_down
  fi
}

# ------------------------------------------------------------------ main

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  token) cmd_token "$@" ;;
  invoke) cmd_invoke "$@" ;;
  demo) cmd_demo ;;
  test) cmd_test ;;
  *)
    cat >&2 <<'EOF'
usage: local/stack.sh <command>
  install                      npm ci (local/) and cargo-lambda into .venv, if needed
  up                           start fhir-server, issuer, cargo lambda watch
  down                         stop everything started by up
  status                       show what is running
  token <user> [flags]         mint a JWT (--ttl S, --expired, --forged, --aud AUD)
  invoke <fn> <event|-> [--as <user>] [--token-flags "..."]
  demo                         scripted end-to-end demo (starts the stack)
  test                         lints, all tests, end-to-end tests and the demo (the README test command)
EOF
    exit 2
    ;;
esac
