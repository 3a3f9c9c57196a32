"""Check samconfig.toml against template.yaml: every environment's parameter_overrides name existing
parameters, satisfy their AllowedValues / AllowedPattern / MinValue / MaxValue, and together with the
defaults give a value to every parameter. Production must use COMPLIANCE Object Lock and >= 2192 days.

Usage: python deploy/check_samconfig.py <template.yaml> <samconfig.toml>
"""

import re
import shlex
import sys
import tomllib

from samcli.yamlhelper import yaml_parse


def overrides(value):
    items = value if isinstance(value, list) else shlex.split(value)
    return dict(item.split("=", 1) for item in items)


def main(template_path, samconfig_path):
    with open(template_path, encoding="utf-8") as fh:
        params = yaml_parse(fh.read())["Parameters"]
    with open(samconfig_path, "rb") as fh:
        config = tomllib.load(fh)
    errors = []
    for env, sections in config.items():
        if not isinstance(sections, dict) or "deploy" not in sections:
            continue
        given = overrides(sections["deploy"]["parameters"].get("parameter_overrides", []))
        for name, value in given.items():
            spec = params.get(name)
            if spec is None:
                errors.append(f"{env}: unknown parameter {name}")
                continue
            if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
                errors.append(f"{env}: {name}={value} not in {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                errors.append(f"{env}: {name}={value} does not match {spec['AllowedPattern']}")
            if spec.get("Type") == "Number":
                number = float(value)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    errors.append(f"{env}: {name}={value} below MinValue {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    errors.append(f"{env}: {name}={value} above MaxValue {spec['MaxValue']}")
        missing = [n for n, s in params.items() if "Default" not in s and n not in given]
        if missing:
            errors.append(f"{env}: no value for {', '.join(missing)}")
        if env == "prod":
            effective = {n: str(s.get("Default", "")) for n, s in params.items()} | given
            if effective.get("AuditObjectLockMode") != "COMPLIANCE":
                errors.append("prod: AuditObjectLockMode must be COMPLIANCE")
            for days in ("AuditRetentionDays", "LogRetentionDays"):
                if float(effective.get(days, 0)) < 2192:
                    errors.append(f"prod: {days} must be >= 2192")
        print(f"{env}: {len(given)} overrides checked")
    for error in errors:
        print("ERROR", error)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
