"""Read-only checks an ops engineer runs once after `sam deploy` (deploy/smoke.sh runs this).

Usage: python deploy/smoke.py --stack-name <stack> [--region <region>] [--only <check> ...]

Each check prints PASS or FAIL (or WARN) with what to fix; the exit code is 1 when any check
fails. Nothing is created, changed or deleted; the one model call is a single-token Converse on a
synthetic sentence (no PHI) and the FHIR call a one-resource search of ids only. The checks:

  idp        the Cognito app client cannot write custom:practitioner_id / custom:org, and the
             pool suits the JWKS path (deploy/check_idp.py)
  jwks       the functions' subnets reach the token issuer's JWKS (VPC DNS attributes, a
             cognito-idp endpoint with private DNS or a NAT route from every subnet), and the
             issuer serves keys
  datastore  the HealthLake datastore is ACTIVE on a customer-managed key, its key policy names
             the roles that read it, and a search with Prefer: handling=strict answers a Bundle
  model      one-token Converse through the Guardrail with the configured model or profile
  audit      Firehose has delivered an audit record into the Object-Locked bucket, locked and
             encrypted with LogsKey, and nothing landed under errors/ (e.g. an upload refused
             for lack of a checksum)
  trail      the data-events trail is logging, without delivery errors (when the stack has one)
  dashboard  the dashboard and every alarm of the stack exist

Permissions: read-only describe/get/list on CloudFormation, EC2, HealthLake, KMS, S3, Firehose,
CloudTrail and CloudWatch, healthlake:SearchWithGet and bedrock:InvokeModel (with the Guardrail).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

from botocore.exceptions import ClientError

CHECKS = ("idp", "jwks", "datastore", "model", "audit", "trail", "dashboard")


class Result:
    def __init__(self):
        self.lines = []

    def passed(self, name, detail):
        self.lines.append(("PASS", name, detail))

    def failed(self, name, fix):
        self.lines.append(("FAIL", name, fix))

    def warned(self, name, detail):
        self.lines.append(("WARN", name, detail))

    @property
    def ok(self):
        return all(v != "FAIL" for v, _, _ in self.lines)


class Stack:
    """Outputs and parameters of the deployed stack, plus its resources by logical id."""

    def __init__(self, cloudformation, name):
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        self.name = name
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        resources = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
        self.resources = {r["LogicalResourceId"]: r for r in resources}

    def physical(self, logical_id):
        return self.resources[logical_id]["PhysicalResourceId"]

    def of_type(self, resource_type):
        return [r["PhysicalResourceId"] for r in self.resources.values() if r["ResourceType"] == resource_type]


def fetch_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - https issuer URL
        return json.loads(response.read().decode("utf-8"))


# ---------------------------------------------------------------------------------------------
# jwks
# ---------------------------------------------------------------------------------------------
def check_jwks(result, stack, ec2, fetch=fetch_json):
    name = "JWKS reachable from the functions' subnets"
    params = stack.parameters
    vpc = params.get("VpcId", "")
    subnets = [s for s in params.get("SubnetIds", "").split(",") if s]
    issuer = params.get("JwtIssuer", "")
    region = ec2.meta.region_name

    dns = {attr: ec2.describe_vpc_attribute(VpcId=vpc, Attribute=attr)[key]["Value"]
           for attr, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames"))}
    if not all(dns.values()):
        off = ", ".join(a for a, v in dns.items() if not v)
        result.failed("VPC DNS for private endpoints",
                      f"{vpc} has {off} off: interface endpoints with private DNS need both "
                      f"(aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-support / --enable-dns-hostnames)")
    else:
        result.passed("VPC DNS for private endpoints", "enableDnsSupport and enableDnsHostnames on")

    via = None
    if issuer.startswith(f"https://cognito-idp.{region}.amazonaws.com/"):
        endpoints = ec2.describe_vpc_endpoints(Filters=[
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "service-name", "Values": [f"com.amazonaws.{region}.cognito-idp"]},
        ])["VpcEndpoints"]
        usable = [e for e in endpoints if e.get("State", "").lower() == "available" and e.get("PrivateDnsEnabled")]
        if usable:
            covered = set(usable[0].get("SubnetIds", []))
            via = f"cognito-idp endpoint {usable[0]['VpcEndpointId']}"
            if not set(subnets) <= covered:
                result.warned(name, f"{via} has no interface in {', '.join(sorted(set(subnets) - covered))} "
                                    "(traffic still reaches it across zones)")
    if via is None:
        no_route = []
        for subnet in subnets:
            tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["RouteTables"]
            if not tables:
                tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                            {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
            default = [r for t in tables for r in t.get("Routes", [])
                       if r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("State", "active") == "active"
                       and (r.get("NatGatewayId") or r.get("TransitGatewayId") or r.get("NetworkInterfaceId"))]
            if not default:
                no_route.append(subnet)
        if no_route:
            result.failed(name, f"{', '.join(no_route)} have neither a cognito-idp endpoint nor a NAT route, so every call "
                                "would be unauthenticated: redeploy with CreateVpcEndpoints=true and "
                                "IdentityProviderEndpoint=cognito-idp (pool without domain), or add a NAT gateway route")
            return
        via = "a NAT / transit route from every subnet"

    try:
        keys = fetch(f"{issuer}/.well-known/jwks.json").get("keys", [])
    except (OSError, ValueError) as error:
        result.failed(name, f"the issuer's JWKS did not answer from here ({type(error).__name__}): check JwtIssuer")
        return
    if not keys:
        result.failed(name, "the issuer's JWKS has no keys: check JwtIssuer")
        return
    result.passed(name, f"{len(keys)} signing key(s); subnets reach the issuer through {via} "
                        "(static check of the network path: a tool call that is not refused as unauthenticated proves it)")


# ---------------------------------------------------------------------------------------------
# datastore
# ---------------------------------------------------------------------------------------------
def key_policy_admits(policy, role_arn, account):
    """True when the key policy lets role_arn use the key: named directly, or delegated to IAM."""
    for stmt in policy.get("Statement", []):
        if stmt.get("Effect") != "Allow":
            continue
        actions = stmt.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("kms:*", "kms:Decrypt") for a in actions):
            continue
        principals = stmt.get("Principal", {})
        principals = principals.get("AWS", []) if isinstance(principals, dict) else [principals]
        principals = [principals] if isinstance(principals, str) else principals
        if role_arn in principals or f"arn:aws:iam::{account}:root" in principals or account in principals:
            return True
    return False


def check_datastore(result, stack, healthlake, kms, search):
    name = "HealthLake datastore"
    datastore_id = stack.outputs.get("HealthLakeDatastoreIdInUse", "")
    props = healthlake.describe_fhir_datastore(DatastoreId=datastore_id)["DatastoreProperties"]
    status = props.get("DatastoreStatus")
    kms_config = props.get("SseConfiguration", {}).get("KmsEncryptionConfig", {})
    if status != "ACTIVE":
        result.failed(name, f"{datastore_id} is {status}: wait until ACTIVE (creation takes 20-30 minutes) or fix HealthLakeDatastoreId")
        return
    if kms_config.get("CmkType") != "CUSTOMER_MANAGED_KMS_KEY":
        result.failed(name, f"{datastore_id} is encrypted with an AWS-owned key: HIPAA key custody needs a datastore "
                            "created with a customer-managed key (a new datastore; import the data)")
        return
    result.passed(name, f"{datastore_id} ACTIVE, customer-managed key")

    key = kms_config.get("KmsKeyId", "")
    readers = [a for a in stack.outputs.get("HealthLakeReaderRoleArns", "").split(",") if a]
    account = key.split(":")[4] if key.count(":") >= 5 else ""
    try:
        policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    except ClientError as error:
        result.warned("datastore key policy names the readers", f"cannot read the key policy of {key}: {error}")
        policy = None
    if policy is not None:
        missing = [r for r in readers if not key_policy_admits(policy, r, account)]
        if missing:
            result.failed("datastore key policy names the readers",
                          f"{key} does not let {', '.join(missing)} decrypt: add them (kms:Decrypt, kms:GenerateDataKey "
                          "with kms:ViaService healthlake.<region>.amazonaws.com) or every FHIR call is denied")
        else:
            result.passed("datastore key policy names the readers", f"{len(readers)} role(s) admitted")

    status_code, body = search(props["DatastoreEndpoint"].rstrip("/") + "/Patient?_count=1&_elements=id",
                               {"Prefer": "handling=strict", "Accept": "application/fhir+json"})
    if status_code == 200 and isinstance(body, dict) and body.get("resourceType") == "Bundle":
        result.passed("FHIR search with strict handling", f"Bundle with {len(body.get('entry', []))} entry (ids only)")
    else:
        result.failed("FHIR search with strict handling",
                      f"HTTP {status_code}: check healthlake:SearchWithGet for your principal and the datastore's key policy")


def signed_get(session, region):
    """A SigV4-signed GET for HealthLake's FHIR REST API (not in the SDKs)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    def get(url, headers):
        request = AWSRequest(method="GET", url=url, headers=headers)
        SigV4Auth(session.get_credentials().get_frozen_credentials(), "healthlake", region).add_auth(request)
        req = urllib.request.Request(url, headers=dict(request.headers.items()), method="GET")
        try:
            with urllib.request.urlopen(req, timeout=15) as response:  # noqa: S310 - HealthLake endpoint
                return response.status, json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            return error.code, None

    return get


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------
def check_model(result, stack, bedrock_runtime):
    name = "one-token Converse through the Guardrail"
    model = stack.parameters.get("ModelId", "")
    try:
        answer = bedrock_runtime.converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": "Reply with the single word OK."}]}],
            inferenceConfig={"maxTokens": 1},
            guardrailConfig={"guardrailIdentifier": stack.outputs["GuardrailId"],
                             "guardrailVersion": stack.outputs["GuardrailVersion"]},
        )
    except bedrock_runtime.exceptions.AccessDeniedException:
        result.failed(name, f"access denied for {model}: enable model access in the Bedrock console and check "
                            "ModelResourceArns (the profile ARN and every foundation-model ARN it routes to)")
        return
    except bedrock_runtime.exceptions.ValidationException as error:
        message = str(error)
        if "on-demand" in message or "inference profile" in message:
            result.failed(name, f"{model} is not offered on demand here: create an application inference profile "
                                "(aws bedrock create-inference-profile) and set ModelId / ModelResourceArns to it")
        elif "legacy" in message.lower() or "end of life" in message.lower():
            result.failed(name, f"{model} is a legacy model: choose a current model and redeploy")
        else:
            result.failed(name, f"Converse refused the request: {message}")
        return
    except bedrock_runtime.exceptions.ResourceNotFoundException:
        result.failed(name, f"{model} or the Guardrail was not found in this region: check ModelId")
        return
    result.passed(name, f"{model}: stopReason {answer.get('stopReason')}, "
                        f"{answer.get('usage', {}).get('outputTokens', '?')} output token(s)")


# ---------------------------------------------------------------------------------------------
# audit
# ---------------------------------------------------------------------------------------------
def newest(s3, bucket, prefix, limit=5000):
    found = None
    paginator = s3.get_paginator("list_objects_v2")
    seen = 0
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            seen += 1
            if found is None or obj["LastModified"] > found["LastModified"]:
                found = obj
        if seen >= limit:
            break
    return found


def check_audit(result, stack, s3, firehose):
    name = "audit record delivered into the locked bucket"
    bucket = stack.outputs["AuditBucketName"]
    stream = firehose.describe_delivery_stream(DeliveryStreamName=stack.outputs["AuditDeliveryStreamName"])
    if stream["DeliveryStreamDescription"]["DeliveryStreamStatus"] != "ACTIVE":
        result.failed(name, "the audit delivery stream is not ACTIVE: see its CloudFormation events")
        return
    errors = newest(s3, bucket, "errors/")
    if errors is not None:
        result.failed(name, f"Firehose wrote failed deliveries under errors/ (newest {errors['Key']}): read the "
                            f"delivery log group /aws/kinesisfirehose/{stack.name}-tool-audit; an upload refused "
                            "for a missing Content-MD5 / checksum means the Object Lock default retention blocks "
                            "Firehose: report it and keep the records from errors/")
        return
    record = newest(s3, bucket, "tool-audit/")
    if record is None:
        result.failed(name, "no audit record yet: make one tool call (any outcome), wait for the Firehose buffer "
                            "(up to 5 minutes) and run the check again")
        return
    head = s3.head_object(Bucket=bucket, Key=record["Key"])
    problems = []
    if not head.get("ObjectLockMode") or not head.get("ObjectLockRetainUntilDate"):
        problems.append("it carries no Object Lock retention")
    if head.get("ServerSideEncryption") != "aws:kms" or head.get("SSEKMSKeyId") != stack.outputs.get("LogsKeyArn"):
        problems.append("it is not encrypted with LogsKey")
    if problems:
        result.failed(name, f"{record['Key']}: {' and '.join(problems)}: check the bucket's default retention and encryption")
        return
    result.passed(name, f"{record['Key']} {head['ObjectLockMode']} until {head['ObjectLockRetainUntilDate']}")


# ---------------------------------------------------------------------------------------------
# trail, dashboard
# ---------------------------------------------------------------------------------------------
def check_trail(result, stack, cloudtrail):
    name = "data-events trail logging"
    trail = stack.outputs.get("DataEventsTrailArn")
    if not trail:
        result.warned(name, "CreateTrail=false: check that your organisation trail records HealthLake, S3 object "
                            "(audit bucket) and Lambda data events for this stack")
        return
    status = cloudtrail.get_trail_status(Name=trail)
    if not status.get("IsLogging"):
        result.failed(name, f"{trail} is not logging: aws cloudtrail start-logging --name {trail}")
    elif status.get("LatestDeliveryError"):
        result.failed(name, f"{trail} cannot deliver ({status['LatestDeliveryError']}): check the audit bucket policy "
                            "and LogsKey's CloudTrail statements")
    else:
        selectors = cloudtrail.get_event_selectors(TrailName=trail).get("AdvancedEventSelectors", [])
        result.passed(name, f"{len(selectors)} data-event selectors, no delivery error")


def check_dashboard(result, stack, cloudwatch):
    name = "dashboard and alarms present"
    dashboard = stack.outputs.get("DashboardName", "")
    try:
        cloudwatch.get_dashboard(DashboardName=dashboard)
    except cloudwatch.exceptions.ResourceNotFound:
        result.failed(name, f"dashboard {dashboard} is missing: redeploy the stack")
        return
    expected = stack.of_type("AWS::CloudWatch::Alarm")
    found = set()
    for start in range(0, len(expected), 100):
        answer = cloudwatch.describe_alarms(AlarmNames=expected[start:start + 100],
                                            AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        found |= {a["AlarmName"] for a in answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", [])}
    missing = sorted(set(expected) - found)
    if missing or stack.outputs.get("BreakGlassAlarmName") not in found:
        result.failed(name, f"alarms missing: {', '.join(missing) or stack.outputs.get('BreakGlassAlarmName')}: redeploy the stack")
        return
    result.passed(name, f"dashboard {dashboard}, {len(found)} alarms including {stack.outputs['BreakGlassAlarmName']}")


def main(argv=None, session=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region")
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    args = parser.parse_args(argv)
    if session is None:
        import boto3

        session = boto3.Session(region_name=args.region)
    region = session.region_name
    stack = Stack(session.client("cloudformation"), args.stack_name)
    result = Result()
    def idp():
        import check_idp

        parsed = check_idp.parse_issuer(stack.parameters.get("JwtIssuer", ""))
        if parsed is None:
            result.warned("identity provider", "the issuer is not a Cognito user pool: check by hand that users "
                                               "cannot change the practitioner and organisation claims")
            return
        private_link = stack.parameters.get("IdentityProviderEndpoint") == "cognito-idp"
        for verdict, name, detail in check_idp.check(session.client("cognito-idp", region_name=parsed[0]), parsed[1],
                                                     stack.parameters.get("JwtAudience", ""), private_link):
            {"PASS": result.passed, "FAIL": result.failed, "WARN": result.warned}[verdict](name, detail)

    runners = {
        "idp": idp,
        "jwks": lambda: check_jwks(result, stack, session.client("ec2")),
        "datastore": lambda: check_datastore(result, stack, session.client("healthlake"), session.client("kms"),
                                             signed_get(session, region)),
        "model": lambda: check_model(result, stack, session.client("bedrock-runtime")),
        "audit": lambda: check_audit(result, stack, session.client("s3"), session.client("firehose")),
        "trail": lambda: check_trail(result, stack, session.client("cloudtrail")),
        "dashboard": lambda: check_dashboard(result, stack, session.client("cloudwatch")),
    }
    for check in args.only:
        try:
            runners[check]()
        except Exception as error:  # noqa: BLE001 - one broken check must not hide the others
            result.failed(check, f"could not run ({type(error).__name__}: {error}): check your credentials and region")
    for verdict, name, detail in result.lines:
        print(f"{verdict} {name}: {detail}")
    print(f"{sum(v == 'PASS' for v, _, _ in result.lines)} passed, {sum(v == 'FAIL' for v, _, _ in result.lines)} failed")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
