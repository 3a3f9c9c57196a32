#!/usr/bin/env bash
# Scores the coder on every development set with the shared scorer and prints one line per set:
#   dev 14 (../shared/icd10/dev_cases.jsonl, through the handler: the `dev_cases` test, which also checks
#     evidence invariants), e001-e060 (../shared/icd10/dev_cases_2.jsonl, the cases the coder is built and
#     debugged on), e061-e100 (the same file's check cases: reported, never tuned on), own notes
#     (tests/data/own_cases.jsonl). Each line ends with the scorer's last line:
#     micro_f1=... precision=... recall=... category_f1=...   (VERBOSE=1 prints the scorer's full reports).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
shared_dir="$(cd "$repo/../shared" && pwd)"
scorer="$shared_dir/icd10/score_icd10.py"
target="${CARGO_TARGET_DIR:-$repo/target}"
out="$target/icd10-dev"
mkdir -p "$out"

score() { # label predictions gold
  if [[ "${VERBOSE:-0}" == "1" ]]; then
    echo "== $1"
    python3 "$scorer" "$2" --gold "$3" --verbose
  else
    printf '%-18s %s\n' "$1:" "$(python3 "$scorer" "$2" --gold "$3" | tail -n 1)"
  fi
}

predictions="$out/predictions.jsonl"
rm -f "$predictions"
(cd "$repo" && ICD10_PREDICTIONS="$predictions" cargo test --quiet -p icd10-coding --test dev_cases >/dev/null)
if [[ ! -s "$predictions" ]]; then
  echo "no predictions were written to $predictions" >&2
  exit 1
fi
score "dev 14" "$predictions" "$shared_dir/icd10/dev_cases.jsonl"

# The second development set, split by id: e001-e060 to build on, e061-e100 to check generalisation.
(cd "$repo" && cargo build --quiet -p icd10-coding --example code_notes)
code_notes="$target/debug/examples/code_notes"
"$code_notes" "$shared_dir/icd10/dev_cases_2.jsonl" >"$out/dev2_predictions.jsonl"
python3 - "$shared_dir/icd10/dev_cases_2.jsonl" "$out/dev2_predictions.jsonl" "$out" <<'PY'
import json, sys
gold, pred, out = sys.argv[1:]
def split(path, stem):
    rows = [l for l in open(path, encoding="utf-8") if l.strip()]
    build = [l for l in rows if int(json.loads(l)["id"][1:]) <= 60]
    check = [l for l in rows if int(json.loads(l)["id"][1:]) > 60]
    open(f"{out}/{stem}_build.jsonl", "w", encoding="utf-8").writelines(build)
    open(f"{out}/{stem}_check.jsonl", "w", encoding="utf-8").writelines(check)
split(gold, "dev2_gold")
split(pred, "dev2_pred")
PY
score "e001-e060" "$out/dev2_pred_build.jsonl" "$out/dev2_gold_build.jsonl"
score "e061-e100 (check)" "$out/dev2_pred_check.jsonl" "$out/dev2_gold_check.jsonl"

own="$repo/functions/icd10-coding/tests/data/own_cases.jsonl"
"$code_notes" "$own" >"$out/own_predictions.jsonl"
score "own $(grep -c . "$own")" "$out/own_predictions.jsonl" "$own"
