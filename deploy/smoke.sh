#!/usr/bin/env bash
# Read-only smoke test of a deployed stack, run once by an ops engineer after `sam deploy`:
#
#   bash deploy/smoke.sh --stack-name clinical-agent-tools-test --region us-east-1 [--only jwks model ...]
#
# Checks the identity provider, the JWKS path from the functions' subnets, the HealthLake
# datastore (ACTIVE, CMK, key policy, strict search), a one-token Converse through the Guardrail,
# one audit record delivered by Firehose into the Object-Locked bucket, the data-events trail, the
# dashboard and the alarms. Each line is PASS / FAIL / WARN with the fix; exit 1 when any fails.
# Uses the AWS credentials of your shell (see deploy/smoke.py for the permissions it needs).
set -euo pipefail
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$DEPLOY_DIR/.venv/bin/python"   # installed by deploy/scan.sh (aws-sam-cli brings boto3)
if [[ ! -x "$PY" ]]; then
  PY="${PYTHON:-python3}"
  "$PY" -c 'import boto3' 2>/dev/null || {
    echo "deploy/smoke.sh needs boto3: run bash deploy/scan.sh once (creates deploy/.venv) or pip install boto3" >&2
    exit 2
  }
fi
cd "$DEPLOY_DIR"
exec "$PY" smoke.py "$@"
