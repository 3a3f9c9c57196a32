"""Prove that each first-deploy guard rule (deploy/guard/deploy.guard) fails on a bad template.

Usage: python deploy/check_guard_rules.py <cfn-guard> <expanded template.json> <out dir>

The bad fixtures are the real template (expanded to CloudFormation by sam_to_cfn.py) with one
defect put back each - the defects issue 14 found, or the way a later edit would most likely
break the invariant. Each mutated template is written to <out dir>/<case>.json and validated with
the rules; the case passes only if its rule reports FAIL. The unmutated template must PASS every
rule (or SKIP where it has no resource of that type), and the Cognito rule, which SKIPs on the
template, must PASS on a well-configured client, so that a rule stuck on SKIP is noticed too.
Prints one line per case and exits non-zero if any rule let its defect through.
"""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parent / "guard" / "deploy.guard"


def statement(resource, sid, doc="KeyPolicy"):
    props = resource["Properties"]
    body = props[doc] if doc == "KeyPolicy" else props["PolicyDocument"]
    for stmt in body["Statement"]:
        plain = stmt.get("Fn::If", [None, None, stmt])[2] if "Fn::If" in stmt else stmt
        if isinstance(plain, dict) and plain.get("Sid") == sid:
            return plain
    raise KeyError(sid)


def statements(resource):
    return resource["Properties"]["PolicyDocument"]["Statement"]


def client(write_attributes=None):
    props = {"UserPoolId": "us-east-1_EXAMPLE", "ClientName": "front-end"}
    if write_attributes is not None:
        props["WriteAttributes"] = write_attributes
    return {"Type": "AWS::Cognito::UserPoolClient", "Properties": props}


# case name -> (rule expected to FAIL, mutation)
def cases():
    def draft_key_shared(r, p):
        stmt = statement(r["DraftKey"], "PriorAuthSealsAndOpensDrafts")
        stmt["Principal"]["AWS"] = [stmt["Principal"]["AWS"], {"Fn::GetAtt": ["PatientSummaryRole", "Arn"]}]

    def draft_key_root_decrypt(r, p):
        r["DraftKey"]["Properties"]["KeyPolicy"]["Statement"].append(
            {"Sid": "RootUse", "Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"}},
             "Action": ["kms:Decrypt"], "Resource": "*"})

    def drafts_on_data_key(r, p):
        r["PriorAuthDraftFunction"]["Properties"]["Environment"]["Variables"]["KMS_KEY_ID"] = {"Fn::GetAtt": ["DataKey", "Arn"]}

    def env_decrypt_unconditioned(r, p):
        del statement(r["DataKey"], "ToolRolesDecryptEnvironment")["Condition"]

    def firehose_unconditioned(r, p):
        del statement(r["LogsKey"], "AuditFirehoseWritesAuditBucket")["Condition"]

    def literal_concurrency(r, p):
        r["PatientSummaryFunction"]["Properties"]["ReservedConcurrentExecutions"] = 5

    def concurrency_default_on(r, p):
        p["ReservedConcurrency"]["Default"] = 20

    def key_plain_retain(r, p):
        r["DataKey"]["DeletionPolicy"] = "Retain"

    def log_group_no_policy(r, p):
        del r["PatientSummaryLogGroup"]["DeletionPolicy"]

    def invoke_without_guardrail(r, p):
        del statement(r["Icd10CodingDataPolicy"], "InvokeModelsThroughGuardrail", "PolicyDocument")["Condition"]

    def fhir_read_unconditional(r, p):
        stmts = statements(r["PatientSummaryDataPolicy"])
        for i, stmt in enumerate(stmts):
            if "Fn::If" in stmt and stmt["Fn::If"][0] == "SessionCredentials" and "Sid" in stmt["Fn::If"][2]:
                if stmt["Fn::If"][2]["Sid"] == "ReadFhirForSummaries":
                    stmts[i] = stmt["Fn::If"][2]
                    return
        raise KeyError("ReadFhirForSummaries")

    def fhir_read_in_wrong_branch(r, p):
        for stmt in statements(r["PriorAuthDraftDataPolicy"]):
            if "Fn::If" in stmt and stmt["Fn::If"][0] == "SessionCredentials" and "Sid" in stmt["Fn::If"][2]:
                if stmt["Fn::If"][2]["Sid"] == "ReadFhirAndStoreDrafts":
                    stmt["Fn::If"][0] = "CreateDatastore"
                    return
        raise KeyError("ReadFhirAndStoreDrafts")

    def guardrail_without_age(r, p):
        pii = r["ClinicalGuardrail"]["Properties"]["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]
        pii[:] = [e for e in pii if e["Type"] != "AGE"]

    def guardrail_without_dates(r, p):
        regexes = r["ClinicalGuardrail"]["Properties"]["SensitiveInformationPolicyConfig"]["RegexesConfig"]
        regexes[:] = [e for e in regexes if "date" not in e["Name"]]

    def tenant_default(r, p):
        p["TenantOrganization"]["Default"] = "org-synthea-ma"

    def tenant_missing(r, p):
        del r["Icd10CodingFunction"]["Properties"]["Environment"]["Variables"]["TENANT_ORGANIZATION"]

    def direct_by_default(r, p):
        p["AcceptedEnvelopes"]["Default"] = "bedrock_openapi,direct"

    def client_all_writable(r, p):
        r["FrontEndClient"] = client()

    def client_writes_org(r, p):
        r["FrontEndClient"] = client(["email", "custom:org"])

    def trail_unvalidated(r, p):
        r["DataEventsTrail"]["Properties"]["EnableLogFileValidation"] = False

    def trail_without_healthlake(r, p):
        sels = r["DataEventsTrail"]["Properties"]["AdvancedEventSelectors"]
        sels[:] = [s for s in sels if "HealthLake" not in json.dumps(s)]

    def no_break_glass_alarm(r, p):
        del r["BreakGlassUsesAlarm"]

    def break_glass_threshold(r, p):
        r["BreakGlassUsesAlarm"]["Properties"]["Threshold"] = 5

    def no_dashboard(r, p):
        del r["ToolsDashboard"]

    def gateway_amzn_header(r, p):
        r["PatientSummaryGatewayTarget"]["Properties"]["MetadataConfiguration"]["AllowedRequestHeaders"].append(
            "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id")

    def gateway_missing_signoff(r, p):
        hdrs = r["Icd10CodingGatewayTarget"]["Properties"]["MetadataConfiguration"]["AllowedRequestHeaders"]
        hdrs[:] = [h for h in hdrs if h != {"Ref": "GatewaySignoffHeader"}]

    def gateway_eleven_headers(r, p):
        hdrs = r["PriorAuthDraftGatewayTarget"]["Properties"]["MetadataConfiguration"]["AllowedRequestHeaders"]
        hdrs.extend(f"X-Extra-{i}" for i in range(7))

    def permission_any_agent(r, p):
        del r["PatientSummaryAgentPermission"]["Properties"]["SourceArn"]

    return {
        "draft-key-shared-with-summary-role": ("DRAFT_KEY_ONLY_PRIOR_AUTH", draft_key_shared),
        "draft-key-decrypt-for-account-root": ("DRAFT_KEY_ONLY_PRIOR_AUTH", draft_key_root_decrypt),
        "drafts-sealed-with-data-key": ("DRAFT_KEY_ONLY_PRIOR_AUTH", drafts_on_data_key),
        "env-decrypt-grant-without-condition": ("KMS_KEY_POLICY_ROLE_GRANTS_CONDITIONED", env_decrypt_unconditioned),
        "firehose-grant-without-condition": ("KMS_KEY_POLICY_ROLE_GRANTS_CONDITIONED", firehose_unconditioned),
        "literal-reserved-concurrency": ("LAMBDA_RESERVED_CONCURRENCY_OPTIONAL", literal_concurrency),
        "reserved-concurrency-on-by-default": ("LAMBDA_RESERVED_CONCURRENCY_OPTIONAL", concurrency_default_on),
        "key-with-plain-retain": ("DELETION_POLICY_RETAIN_EXCEPT_ON_CREATE", key_plain_retain),
        "log-group-without-deletion-policy": ("DELETION_POLICY_RETAIN_EXCEPT_ON_CREATE", log_group_no_policy),
        "invoke-model-without-guardrail": ("BEDROCK_INVOKE_REQUIRES_GUARDRAIL", invoke_without_guardrail),
        "fhir-read-with-session-credentials-on": ("SESSION_CREDENTIALS_EXCLUSIVE", fhir_read_unconditional),
        "fhir-write-on-wrong-condition": ("SESSION_CREDENTIALS_EXCLUSIVE", fhir_read_in_wrong_branch),
        "guardrail-without-age": ("BEDROCK_GUARDRAIL_SAFE_HARBOR_PII", guardrail_without_age),
        "guardrail-without-date-regex": ("BEDROCK_GUARDRAIL_SAFE_HARBOR_PII", guardrail_without_dates),
        "tenant-with-default": ("TENANT_ORGANIZATION_REQUIRED", tenant_default),
        "function-without-tenant": ("TENANT_ORGANIZATION_REQUIRED", tenant_missing),
        "direct-envelope-by-default": ("ACCEPTED_ENVELOPES_NO_DIRECT_BY_DEFAULT", direct_by_default),
        "client-without-write-attributes": ("COGNITO_CLIENT_CUSTOM_ATTRIBUTES_READ_ONLY", client_all_writable),
        "client-writes-custom-org": ("COGNITO_CLIENT_CUSTOM_ATTRIBUTES_READ_ONLY", client_writes_org),
        "trail-without-log-file-validation": ("CLOUDTRAIL_DATA_EVENTS_VALIDATED", trail_unvalidated),
        "trail-without-healthlake-events": ("CLOUDTRAIL_DATA_EVENTS_VALIDATED", trail_without_healthlake),
        "no-break-glass-alarm": ("BREAK_GLASS_ALARM_AND_DASHBOARD", no_break_glass_alarm),
        "break-glass-alarm-threshold-5": ("BREAK_GLASS_ALARM_AND_DASHBOARD", break_glass_threshold),
        "no-dashboard": ("BREAK_GLASS_ALARM_AND_DASHBOARD", no_dashboard),
        "gateway-header-x-amzn": ("AGENTCORE_GATEWAY_TARGET_HEADERS", gateway_amzn_header),
        "gateway-without-signoff-header": ("AGENTCORE_GATEWAY_TARGET_HEADERS", gateway_missing_signoff),
        "gateway-eleven-headers": ("AGENTCORE_GATEWAY_TARGET_HEADERS", gateway_eleven_headers),
        "agent-permission-without-source-arn": ("LAMBDA_SERVICE_PERMISSION_SCOPED", permission_any_agent),
    }


def verdicts(guard, path):
    out = subprocess.run([guard, "validate", "--rules", str(RULES), "--data", str(path), "--show-summary", "all"],
                         capture_output=True, text=True, check=False)
    found = dict(re.findall(r"deploy\.guard/([A-Z0-9_]+)\s+(PASS|FAIL|SKIP)", out.stdout))
    if not found:
        raise SystemExit(f"cfn-guard gave no verdicts for {path}:\n{out.stdout}\n{out.stderr}")
    return found


def main(guard, template_path, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = json.loads(Path(template_path).read_text(encoding="utf-8"))
    failures = 0

    good = verdicts(guard, template_path)
    rules = set(re.findall(r"^rule ([A-Z0-9_]+)", RULES.read_text(encoding="utf-8"), re.M))
    for rule in sorted(rules):
        got = good.get(rule, "missing")
        ok = got == "PASS" or (got == "SKIP" and rule == "COGNITO_CLIENT_CUSTOM_ATTRIBUTES_READ_ONLY")
        failures += not ok
        print(f"{'OK  ' if ok else 'BAD '} template                               {rule:45} {got}")

    checks = cases()
    positive = copy.deepcopy(base)
    positive["Resources"]["FrontEndClient"] = client(["email", "given_name", "family_name"])
    checks_positive = {"client-with-read-only-custom-attributes": positive}
    for name, doc in checks_positive.items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        got = verdicts(guard, path).get("COGNITO_CLIENT_CUSTOM_ATTRIBUTES_READ_ONLY", "missing")
        ok = got == "PASS"
        failures += not ok
        print(f"{'OK  ' if ok else 'BAD '} {name:38} {'COGNITO_CLIENT_CUSTOM_ATTRIBUTES_READ_ONLY':45} {got} (expected PASS)")

    covered = set()
    for name, (rule, mutate) in checks.items():
        doc = copy.deepcopy(base)
        mutate(doc["Resources"], doc["Parameters"])
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        got = verdicts(guard, path).get(rule, "missing")
        ok = got == "FAIL"
        covered.add(rule)
        failures += not ok
        print(f"{'OK  ' if ok else 'BAD '} {name:38} {rule:45} {got} (expected FAIL)")

    for rule in sorted(rules - covered):
        failures += 1
        print(f"BAD  no bad fixture for {rule}")
    print(f"{len(checks)} bad fixtures, {len(rules)} rules, {failures} unexpected")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: check_guard_rules.py <cfn-guard> <expanded template.json> <out dir>")
    sys.exit(main(*sys.argv[1:]))
