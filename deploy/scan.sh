#!/usr/bin/env bash
# Static security scan of template.yaml, offline and without AWS credentials.
#
#   bash deploy/scan.sh
#
# 1. sam validate --lint     (SAM CLI, cfn-lint inside)
# 2. cfn-lint                (plus the project rules in deploy/cfnlint-custom-rules.txt)
# 3. checkov                 (config and global skips in deploy/checkov.yaml)
# 4. cfn-guard               (project rules in deploy/guard/*.guard, on the SAM template expanded
#                             to plain CloudFormation by deploy/sam_to_cfn.py)
# 5. samconfig               (deploy/check_samconfig.py: samconfig.toml overrides exist in the
#                             template, satisfy its constraints, agree with the pinned region;
#                             prod is COMPLIANCE / >= 2192 days, no direct envelope)
# 6. sam-envs                (sam validate --lint --config-env prod; step 1 reads the default env)
# 7. guard-rules             (deploy/check_guard_rules.py: each first-deploy rule in
#                             deploy/guard/deploy.guard FAILs on its bad fixtures - the template
#                             with one defect put back - and PASSes on the template)
# 8. py-tests                (unit tests of deploy/check_idp.py and deploy/smoke.py, offline,
#                             AWS answers stubbed with botocore's Stubber)
#
# Each scanner runs on template.yaml (must pass) and on deploy/fixtures/bad-template.yaml (must
# fail: proves the scanner actually checks the controls). Exits non-zero if any check on the real
# template fails or if a scanner lets the bad fixture through.
#
# Tools are pinned and installed on first use, inside deploy/ (git-ignored):
#   deploy/.venv          aws-sam-cli + cfn-lint   (python venv)
#   deploy/.venv-checkov  checkov                  (own venv: it pins a boto3 that SAM CLI rejects)
#   deploy/.tools/bin     cfn-guard                (cargo install, about 4-8 minutes the first time)
set -euo pipefail

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"
CFN_GUARD_VERSION="3.2.1"

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$DEPLOY_DIR")"
TEMPLATE="$REPO_DIR/template.yaml"
BAD="$DEPLOY_DIR/fixtures/bad-template.yaml"
OUT="$DEPLOY_DIR/out"
VENV="$DEPLOY_DIR/.venv"
VENV_CHECKOV="$DEPLOY_DIR/.venv-checkov"
TOOLS="$DEPLOY_DIR/.tools"
PYTHON="${PYTHON:-python3}"

# Offline and credential-free: a region is needed by the SAM translator and cfn-lint; nothing
# here calls AWS, so no credentials are read (the shared files are pointed at nothing).
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export SAM_CLI_TELEMETRY=0
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

log() { printf '%s\n' "$*" >&2; }
now() { date +%s; }

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_venv() { # <dir> <pip requirement>...
  local dir="$1"; shift
  local stamp="$dir/.installed"
  local want="$*"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "installing into ${dir#"$REPO_DIR"/}: $want"
  [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  printf '%s' "$want" >"$stamp"
}

ensure_cfn_guard() {
  local bin="$TOOLS/bin/cfn-guard"
  if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -qx "cfn-guard $CFN_GUARD_VERSION"; then return; fi
  command -v cargo >/dev/null || { log "cargo is required to build cfn-guard $CFN_GUARD_VERSION"; exit 2; }
  log "building cfn-guard $CFN_GUARD_VERSION into ${TOOLS#"$REPO_DIR"/} (one-off, several minutes)"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TOOLS/target}" \
    cargo install cfn-guard --locked --version "$CFN_GUARD_VERSION" --root "$TOOLS" --quiet
}

t0=$(now)
ensure_venv "$VENV" "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
ensure_venv "$VENV_CHECKOV" "checkov==$CHECKOV_VERSION"
ensure_cfn_guard
t_tools=$(( $(now) - t0 ))

# ---------------------------------------------------------------------------------------------
# Scanners. Each takes a template path; its output goes to deploy/out/<scanner>.<name>.log.
# ---------------------------------------------------------------------------------------------
mkdir -p "$OUT"

scan_sam() {
  (cd "$(dirname "$1")" && "$VENV/bin/sam" validate --lint --template "$1")
}

scan_cfn_lint() {
  "$VENV/bin/cfn-lint" --custom-rules "$DEPLOY_DIR/cfnlint-custom-rules.txt" -- "$1"
}

scan_checkov() {
  "$VENV_CHECKOV/bin/checkov" --config-file "$DEPLOY_DIR/checkov.yaml" -f "$1"
}

scan_samconfig() {
  "$VENV/bin/python" "$DEPLOY_DIR/check_samconfig.py" "$TEMPLATE" "$1"
}

# sam validate --lint with the prod samconfig environment, as `sam deploy --config-env prod` reads
# it (scan_sam above runs from the repository root, so it already uses the default environment).
scan_sam_envs() {
  (cd "$REPO_DIR" && "$VENV/bin/sam" validate --lint --config-file "$1" --config-env prod)
}

scan_guard_rules() {
  local cfn="$OUT/guard-rules.cfn.json"
  "$VENV/bin/python" "$DEPLOY_DIR/sam_to_cfn.py" "$1" "$cfn"
  "$VENV/bin/python" "$DEPLOY_DIR/check_guard_rules.py" "$TOOLS/bin/cfn-guard" "$cfn" "$OUT/guard-cases"
}

scan_py_tests() {
  (cd "$DEPLOY_DIR" && "$VENV/bin/python" -m unittest discover -s tests -t . -v)
}

scan_cfn_guard() {
  local name cfn
  name="$(basename "$1" .yaml)"
  cfn="$OUT/$name.cfn.json"
  "$VENV/bin/python" "$DEPLOY_DIR/sam_to_cfn.py" "$1" "$cfn"
  "$TOOLS/bin/cfn-guard" validate --rules "$DEPLOY_DIR/guard" --data "$cfn" --show-summary all
}

evidence() { # <scanner> <pass|fail> <exit code> <log>
  local scanner="$1" got="$2" rc="$3" log="$4"
  case "$scanner:$got" in
    sam:pass)       grep -q 'is a valid SAM Template' "$log" ;;
    sam:fail)       grep -q 'Linting failed' "$log" ;;
    cfn-lint:pass)  true ;;
    cfn-lint:fail)  (( rc & 6 )) && grep -Eq '^[EW][0-9]{4} ' "$log" ;;
    checkov:pass)   grep -Eq 'Passed checks: [1-9]' "$log" ;;
    checkov:fail)   grep -Eq 'Failed checks: [1-9]' "$log" ;;
    cfn-guard:pass) grep -q 'Status = PASS' "$log" && ! grep -q 'Status = FAIL' "$log" ;;
    cfn-guard:fail) [[ "$rc" -eq 19 ]] && grep -q 'Status = FAIL' "$log" ;;
    samconfig:pass) grep -q '^prod: ' "$log" ;;
    samconfig:fail) grep -q '^ERROR ' "$log" ;;
    sam-envs:pass)  grep -q 'is a valid SAM Template' "$log" ;;
    guard-rules:pass) grep -Eq '^[1-9][0-9]* bad fixtures, [1-9][0-9]* rules, 0 unexpected$' "$log" ;;
    py-tests:pass)  grep -Eq '^Ran [1-9][0-9]* tests?' "$log" && grep -qx 'OK' "$log" ;;
    *) return 1 ;;
  esac
}

failures=0
run() { # <scanner> <template> <expect: pass|fail>
  local scanner="$1" template="$2" expect="$3"
  local name log start rc verdict
  name="$(basename "$template")"
  name="${name%.*}"
  log="$OUT/$scanner.$name.log"
  start=$(now)
  set +e
  "scan_${scanner//-/_}" "$template" >"$log" 2>&1
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then got=pass; else got=fail; fi
  # A verdict only counts if the scanner really evaluated the template: a pass must show checks
  # that ran, a fail must come from findings (not from a crash or a parse error).
  if ! evidence "$scanner" "$got" "$rc" "$log"; then got="$got-unproven"; fi
  if [[ "$got" == "$expect" ]]; then
    verdict="OK  "
  else
    verdict="BAD "
    failures=$((failures + 1))
  fi
  printf '%s %-10s %-22s %-5s (expected %s, exit %d, %ds) log: %s\n' \
    "$verdict" "$scanner" "$(basename "$template")" "$got" "$expect" "$rc" "$(( $(now) - start ))" "${log#"$REPO_DIR"/}"
  if [[ "$verdict" == "BAD " ]]; then sed 's/^/    | /' "$log" | tail -40; fi
}

t1=$(now)
for scanner in sam cfn-lint checkov cfn-guard; do
  run "$scanner" "$TEMPLATE" pass
  run "$scanner" "$BAD" fail
done
run samconfig "$REPO_DIR/samconfig.toml" pass
run samconfig "$DEPLOY_DIR/fixtures/bad-samconfig.toml" fail
run sam-envs "$REPO_DIR/samconfig.toml" pass
run guard-rules "$TEMPLATE" pass
run py-tests "$DEPLOY_DIR/tests" pass
t_scan=$(( $(now) - t1 ))

printf 'tools: %ds, scans: %ds\n' "$t_tools" "$t_scan"
if [[ $failures -gt 0 ]]; then
  printf 'SCAN FAILED: %d unexpected result(s)\n' "$failures"
  exit 1
fi
printf 'SCAN PASSED: template.yaml passes all scanners; the bad fixture fails every scanner\n'
