"""Expand the SAM template into plain CloudFormation, offline.

Usage: python deploy/sam_to_cfn.py <sam template> <output json>

Uses aws-sam-translator (the library behind `sam validate` / `sam deploy`). The managed-policy
loader is a stub: our functions name their roles explicitly, so no AWS managed policy name has
to be resolved and no AWS API is called. Local CodeUri values are replaced by a placeholder S3
URI, as `sam package` would do after uploading the build artifacts.
"""

import json
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """Stands in for ManagedPolicyLoader (which would call iam:ListPolicies)."""

    def load(self):
        return {}


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as fh:
        sam = yaml_parse(fh.read())
    for name, res in sam.get("Resources", {}).items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = f"s3://sam-package-placeholder/{name}.zip"
    cfn = transform(sam, {}, NoManagedPolicies())
    with open(dst, "w", encoding="utf-8") as fh:
        json.dump(cfn, fh, indent=1, sort_keys=False)
        fh.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sam_to_cfn.py <sam template> <output json>")
    main(sys.argv[1], sys.argv[2])
