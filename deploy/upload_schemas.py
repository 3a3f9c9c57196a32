"""Upload the tool schemas the agent wiring reads (CreateBedrockAgent / CreateAgentCoreGateway).

Usage: python deploy/upload_schemas.py --bucket <ToolSchemaBucket> [--prefix tool-schemas/] [--dry-run]

Writes <prefix><tool>.openapi.json (Bedrock Agent action groups) and <prefix><tool>.mcp.json (one
AgentCore Gateway Lambda target each: the entries of schemas/mcp-tools.json for that tool) from the
checked-in schemas/, which a test keeps in step with the Rust input types. Run it before every
deploy that changes a tool's input. The bucket should block public access and use SSE.
"""

import argparse
import json
import sys
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
TOOLS = {"patient-summary": "patient_summary", "icd10-coding": "icd10_coding", "prior-auth-draft": "prior_auth_draft"}


def documents():
    """{key suffix: bytes} for every schema object the template names."""
    mcp = json.loads((SCHEMAS / "mcp-tools.json").read_text(encoding="utf-8"))
    docs = {}
    for tool, mcp_name in TOOLS.items():
        docs[f"{tool}.openapi.json"] = (SCHEMAS / f"{tool}.openapi.json").read_bytes()
        entries = [entry for entry in mcp if entry.get("name") == mcp_name]
        if not entries:
            raise SystemExit(f"schemas/mcp-tools.json has no tool named {mcp_name}")
        docs[f"{tool}.mcp.json"] = json.dumps(entries, indent=2).encode("utf-8")
    return docs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="tool-schemas/")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    docs = documents()
    s3 = None
    if not args.dry_run:
        import boto3

        s3 = boto3.client("s3")
    for suffix, body in docs.items():
        key = f"{args.prefix}{suffix}"
        if s3 is not None:
            s3.put_object(Bucket=args.bucket, Key=key, Body=body, ContentType="application/json")
        print(f"{'would upload' if args.dry_run else 'uploaded'} s3://{args.bucket}/{key} ({len(body)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
