#!/usr/bin/env python3
"""Validates prior-auth draft Bundles with fhir.resources (R4B models; pinned in local/stack.sh install).

Usage: validate_pas.py BUNDLE.json...  Exit status 0 when every Bundle, and every resource in it, parses
into its R4B model, the Claim comes first with the PAS required elements, and every reference the Claim
makes (supportingInfo, diagnosis, patient, provider, insurer, coverage) resolves to an entry.
"""
import json
import sys

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle


def check(path):
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    problems = []
    Bundle.parse_obj(raw)
    entries = raw.get("entry", [])
    present = set()
    for entry in entries:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).parse_obj(resource)
        present.add(f'{resource["resourceType"]}/{resource["id"]}')
    if raw.get("type") != "collection" or "identifier" not in raw or "timestamp" not in raw:
        problems.append("bundle lacks type=collection, identifier or timestamp")
    claim = entries[0]["resource"] if entries else {}
    if claim.get("resourceType") != "Claim" or claim.get("use") != "preauthorization":
        problems.append("the first entry is not a Claim with use=preauthorization")
    refs = [claim.get(k, {}).get("reference") for k in ("patient", "provider", "insurer")]
    refs += [i["coverage"]["reference"] for i in claim.get("insurance", [])]
    refs += [s["valueReference"]["reference"] for s in claim.get("supportingInfo", [])]
    refs += [d["diagnosisReference"]["reference"] for d in claim.get("diagnosis", []) if "diagnosisReference" in d]
    for ref in refs:
        if ref not in present:
            problems.append(f"reference {ref} does not resolve")
    kinds = {r.split("/")[0] for r in present}
    for kind in ("Patient", "Practitioner", "Organization", "Coverage"):
        if kind not in kinds:
            problems.append(f"no {kind} entry")
    return len(entries), problems


def main():
    failed = False
    for path in sys.argv[1:]:
        try:
            count, problems = check(path)
        except Exception as error:  # a validation error names the element, never a value we print
            count, problems = 0, [f"{type(error).__name__}: {str(error).splitlines()[0]}"]
        status = "ok" if not problems else "FAILED"
        print(f"{status} {path}: {count} resources validated with fhir.resources R4B")
        for problem in problems:
            print(f"  - {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
