"""Check samconfig.toml against template.yaml: every environment's parameter_overrides name existing
parameters, satisfy their AllowedValues / AllowedPattern / MinValue / MaxValue, and together with the
defaults give a value to every parameter. Production must use COMPLIANCE Object Lock and >= 2192 days.

Every environment pins a region, and the regional values agree with it: the JWT issuer, the KMS
key and inference-profile ARNs, and the foundation-model ARNs (other regions only with
BedrockCrossRegionInference=true, the geographic profiles routing there). Production accepts no
direct envelope and does not serve the demo tenant.

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


def regional(sections, effective):
    """Regional values of one environment that disagree with its pinned region."""
    region = None
    for command in ("global", "deploy"):
        region = sections.get(command, {}).get("parameters", {}).get("region", region)
    if not region:
        return ["no region (set region in [<env>.global.parameters]: the model ARNs and the issuer are regional)"]
    problems = []
    issuer = re.fullmatch(r"https://cognito-idp\.([a-z0-9-]+)\.amazonaws\.com/([a-z0-9-]+)_\w+", effective.get("JwtIssuer", ""))
    if issuer and (issuer.group(1) != region or issuer.group(2) != region):
        problems.append(f"JwtIssuer is in {issuer.group(1)}, the stack in {region}")
    cross_region = effective.get("BedrockCrossRegionInference") == "true"
    arns = [a for a in effective.get("ModelResourceArns", "").split(",") if a]
    arns += [effective.get(k, "") for k in ("ModelId", "DatastoreKmsKeyArn")]
    for arn in arns:
        parts = arn.split(":")
        if len(parts) < 6 or parts[0] != "arn":
            continue
        foundation = parts[5].startswith("foundation-model/")
        if parts[3] != region and not (foundation and cross_region):
            problems.append(f"{arn} is in {parts[3]}, the stack in {region}")
    model = effective.get("ModelId", "")
    if re.match(r"^(us|eu|apac|us-gov|global)\.", model) and not cross_region:
        problems.append(f"ModelId {model} is a cross-region profile; set BedrockCrossRegionInference=true or use an in-region model")
    return problems


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
        effective = {n: str(s.get("Default", "")) for n, s in params.items()} | given
        errors.extend(f"{env}: {e}" for e in regional(sections, effective))
        if env == "prod":
            if "direct" in effective.get("AcceptedEnvelopes", "").split(","):
                errors.append("prod: AcceptedEnvelopes must not include direct")
            if effective.get("TenantOrganization") == "org-synthea-ma":
                errors.append("prod: TenantOrganization is the demo tenant")
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
