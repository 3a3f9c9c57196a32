#!/usr/bin/env bash
# `sam build` of the tool functions (BuildMethod rust-cargolambda), as deployed: release profile,
# provided.al2023, arm64 (cargo-lambda cross-compiles with zig).
#
#   bash deploy/build.sh            # called by local/stack.sh test
#
# - arm64 needs the aarch64-unknown-linux-gnu standard library. It is added with rustup (a no-op
#   when present). If that fails (no network, no rustup), this script SAYS SO and builds x86_64
#   from a copy of the template with `Architectures: [x86_64]`; it never reports an arm64 build it
#   did not do. The result line names the architecture actually built.
# - Only functions whose crate has a binary (src/main.rs) are built: a tool crate that is still a
#   library is listed as skipped. Once all three have one, a single `sam build` builds the whole
#   template into .aws-sam/ (what `sam deploy` uploads).
# - SAM builds Rust in source (cwd = repo root): all functions share the workspace target dir
#   (target/<triple>/release), so dependencies common to the tools are compiled once. Set
#   CARGO_TARGET_DIR to move it; nothing here weakens [profile.release].
set -euo pipefail

# The test command checks the template builds all three functions for arm64 in SAM's debug mode
# (SAM_BUILD_MODE=debug: `cargo lambda build` without --release). The release build that `sam deploy`
# uploads takes 45-50 minutes from cold on 2 cores (thin LTO per binary), too long for every CI run:
#   bash deploy/build.sh --release     # what you deploy; same template, same architecture check
mode=debug
if [[ "${1:-}" == "--release" ]]; then
  mode=release
else
  export SAM_BUILD_MODE=debug
fi

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$DEPLOY_DIR")"
OUT="$DEPLOY_DIR/out"
VENV="$DEPLOY_DIR/.venv"
SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"

# Logical id in template.yaml <- crate directory (binary name = crate name).
declare -A FUNCTIONS=(
  [patient-summary]=PatientSummaryFunction
  [icd10-coding]=Icd10CodingFunction
  [prior-auth-draft]=PriorAuthDraftFunction
)

log() { printf '%s\n' "$*" >&2; }

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export SAM_CLI_TELEMETRY=0

# Same pinned SAM CLI as deploy/scan.sh (installs it if scan.sh has not run yet).
if [[ ! -x "$VENV/bin/sam" ]]; then
  log "installing aws-sam-cli $SAM_CLI_VERSION into deploy/.venv"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"
fi

# cargo-lambda (and its zig) come from the repo .venv that `local/stack.sh install` fills.
if [[ -x "$REPO_DIR/.venv/bin/cargo-lambda" ]]; then
  export PATH="$REPO_DIR/.venv/bin:$PATH"
fi
command -v cargo-lambda >/dev/null || { log "cargo-lambda not found: run bash local/stack.sh install"; exit 2; }

mkdir -p "$OUT"
arch=arm64
if ! rustup target add aarch64-unknown-linux-gnu >"$OUT/rustup.log" 2>&1; then
  arch=x86_64
  log "WARNING: could not install the aarch64-unknown-linux-gnu standard library (rustup target add failed:"
  sed 's/^/    | /' "$OUT/rustup.log" >&2
  log "  ), so this is an x86_64 build, NOT the arm64 build that is deployed."
fi

template="$REPO_DIR/template.yaml"
if [[ "$arch" == x86_64 ]]; then
  # Same template, other architecture; CodeUri made relative to the copy's directory.
  template="$OUT/template.x86_64.yaml"
  sed -e 's/Architectures: \[arm64\]/Architectures: [x86_64]/' -e 's|CodeUri: \.$|CodeUri: ../..|' \
    "$REPO_DIR/template.yaml" >"$template"
  grep -q 'Architectures: \[x86_64\]' "$template" || { log "could not switch the template to x86_64"; exit 2; }
fi

buildable=() skipped=()
for crate in patient-summary icd10-coding prior-auth-draft; do
  if [[ -f "$REPO_DIR/functions/$crate/src/main.rs" ]]; then
    buildable+=("${FUNCTIONS[$crate]}")
  else
    skipped+=("$crate")
  fi
done

sam_build() { # [logical id] <build dir>
  local build_dir="${*: -1}"
  (cd "$REPO_DIR" && "$VENV/bin/sam" build --beta-features --template-file "$template" \
    --build-dir "$build_dir" "${@:1:$#-1}")
}

start=$SECONDS
if [[ ${#skipped[@]} -eq 0 ]]; then
  sam_build "$REPO_DIR/.aws-sam/build"
else
  log "no binary yet (src/main.rs) in: ${skipped[*]} — skipped"
  for id in "${buildable[@]}"; do
    sam_build "$id" "$OUT/sam-build/$id"
  done
fi
elapsed=$((SECONDS - start))

# The machine code of each bootstrap is the evidence of the architecture reported below.
want_machine=$([[ "$arch" == arm64 ]] && echo aarch64 || echo x86-64)
for id in "${buildable[@]}"; do
  bootstrap=""
  for dir in "$REPO_DIR/.aws-sam/build/$id" "$OUT/sam-build/$id/$id"; do
    [[ -f "$dir/bootstrap" ]] && bootstrap="$dir/bootstrap" && break
  done
  [[ -n "$bootstrap" ]] || { log "SAM BUILD FAILED: no bootstrap for $id"; exit 1; }
  machine="$(file -b "$bootstrap" | cut -d, -f1-2)"
  printf '  %-24s %s (%s)\n' "$id" "$machine" "$(du -h "$bootstrap" | cut -f1)"
  [[ "$machine" == *"$want_machine"* ]] || { log "SAM BUILD FAILED: $id is not $want_machine"; exit 1; }
done
printf 'SAM BUILD PASSED: %s, %s mode, %d function(s) built (%s), %ds%s\n' "$arch" "$mode" "${#buildable[@]}" \
  "${buildable[*]}" "$elapsed" "${skipped[*]:+; skipped (no binary yet): ${skipped[*]}}"
