#!/usr/bin/env bash
# Runs every case of ../shared/icd10/dev_cases.jsonl through the coding tool's handler (the `dev_cases` test,
# which also checks evidence invariants), then scores the predictions with the shared scorer and prints its last
# line: micro_f1=… precision=… recall=… category_f1=…  (set VERBOSE=1 for the scorer's full report).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
shared_dir="$(cd "$repo/../shared" && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
predictions="$target/icd10-dev/predictions.jsonl"
mkdir -p "$(dirname "$predictions")"
rm -f "$predictions"
(cd "$repo" && ICD10_PREDICTIONS="$predictions" cargo test --quiet -p icd10-coding --test dev_cases >/dev/null)
if [[ ! -s "$predictions" ]]; then
  echo "no predictions were written to $predictions" >&2
  exit 1
fi
if [[ "${VERBOSE:-0}" == "1" ]]; then
  python3 "$shared_dir/icd10/score_icd10.py" "$predictions" --gold "$shared_dir/icd10/dev_cases.jsonl" --verbose
else
  python3 "$shared_dir/icd10/score_icd10.py" "$predictions" --gold "$shared_dir/icd10/dev_cases.jsonl" | tail -n 1
fi

# A second set: 24 notes of our own with other conditions (tests/data/own_cases.jsonl), coded by the deterministic
# coder alone through the `code_notes` example, scored the same way.
own="$repo/functions/icd10-coding/tests/data/own_cases.jsonl"
own_predictions="$target/icd10-dev/own_predictions.jsonl"
(cd "$repo" && cargo run --quiet -p icd10-coding --example code_notes -- "$own" >"$own_predictions")
printf 'own cases: '
python3 "$shared_dir/icd10/score_icd10.py" "$own_predictions" --gold "$own" | tail -n 1
