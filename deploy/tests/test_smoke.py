"""smoke.py checks against stubbed AWS answers (botocore Stubber: real clients and request
validation, no network). Each check must fail with its fix on the broken answer, and pass on the
good one."""

import datetime
import json
import unittest

import boto3
from botocore.stub import ANY, Stubber

import smoke

REGION = "us-east-1"
ACCOUNT = "111122223333"
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
DATASTORE_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222"
READER = f"arn:aws:iam::{ACCOUNT}:role/stack-DataAccessRole-ABC"


def client(service):
    c = boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return c, Stubber(c)


class FakeStack:
    name = "stack"

    def __init__(self, **outputs):
        self.parameters = {
            "VpcId": "vpc-1", "SubnetIds": "subnet-a,subnet-b",
            "JwtIssuer": f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_Pool1",
            "ModelId": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:application-inference-profile/p1",
        }
        self.outputs = {
            "HealthLakeDatastoreIdInUse": "0" * 32, "HealthLakeReaderRoleArns": READER,
            "GuardrailId": "gr1", "GuardrailVersion": "2", "AuditBucketName": "audit-bucket",
            "AuditDeliveryStreamName": "stack-tool-audit", "LogsKeyArn": LOGS_KEY,
            "DashboardName": "stack-tools", "BreakGlassAlarmName": "stack-break-glass-used",
            **outputs,
        }
        self.alarms = ["stack-break-glass-used", "stack-PatientSummaryErrorsAlarm-X"]

    def of_type(self, resource_type):
        return self.alarms


def dns(stub, support=True, hostnames=True):
    stub.add_response("describe_vpc_attribute", {"VpcId": "vpc-1", "EnableDnsSupport": {"Value": support}},
                      {"VpcId": "vpc-1", "Attribute": "enableDnsSupport"})
    stub.add_response("describe_vpc_attribute", {"VpcId": "vpc-1", "EnableDnsHostnames": {"Value": hostnames}},
                      {"VpcId": "vpc-1", "Attribute": "enableDnsHostnames"})


def verdicts(result):
    return [(v, n) for v, n, _ in result.lines]


class JwksTest(unittest.TestCase):
    def run_check(self, endpoints, routes, fetch=lambda url: {"keys": [{"kid": "k1"}]}, **dns_attrs):
        ec2, stub = client("ec2")
        dns(stub, **dns_attrs)
        stub.add_response("describe_vpc_endpoints", {"VpcEndpoints": endpoints}, {"Filters": ANY})
        for table in routes:
            stub.add_response("describe_route_tables", {"RouteTables": table}, {"Filters": ANY})
        stub.activate()
        result = smoke.Result()
        smoke.check_jwks(result, FakeStack(), ec2, fetch=fetch)
        stub.assert_no_pending_responses()
        return result

    def test_cognito_endpoint_with_private_dns_passes(self):
        endpoint = {"VpcEndpointId": "vpce-1", "State": "available", "PrivateDnsEnabled": True,
                    "SubnetIds": ["subnet-a", "subnet-b"]}
        result = self.run_check([endpoint], [])
        self.assertTrue(result.ok, result.lines)
        self.assertIn("vpce-1", result.lines[-1][2])

    def test_no_endpoint_and_no_nat_fails_with_the_fix(self):
        local_only = [{"Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}]}]
        result = self.run_check([], [local_only, local_only])
        self.assertFalse(result.ok)
        self.assertIn("IdentityProviderEndpoint=cognito-idp", result.lines[-1][2])

    def test_nat_route_from_every_subnet_passes(self):
        nat = [{"Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}]}]
        result = self.run_check([], [nat, nat])
        self.assertTrue(result.ok, result.lines)

    def test_dns_attributes_off_fail(self):
        endpoint = {"VpcEndpointId": "vpce-1", "State": "available", "PrivateDnsEnabled": True,
                    "SubnetIds": ["subnet-a", "subnet-b"]}
        result = self.run_check([endpoint], [], hostnames=False)
        self.assertIn(("FAIL", "VPC DNS for private endpoints"), verdicts(result))

    def test_issuer_without_keys_fails(self):
        endpoint = {"VpcEndpointId": "vpce-1", "State": "available", "PrivateDnsEnabled": True,
                    "SubnetIds": ["subnet-a", "subnet-b"]}
        result = self.run_check([endpoint], [], fetch=lambda url: {"keys": []})
        self.assertFalse(result.ok)


class DatastoreTest(unittest.TestCase):
    def run_check(self, props, policy, search):
        healthlake, hl_stub = client("healthlake")
        kms, kms_stub = client("kms")
        hl_stub.add_response("describe_fhir_datastore", {"DatastoreProperties": {
            "DatastoreId": "0" * 32, "DatastoreArn": f"arn:aws:healthlake:{REGION}:{ACCOUNT}:datastore/fhir/{'0' * 32}",
            "DatastoreTypeVersion": "R4",
            "DatastoreEndpoint": f"https://healthlake.{REGION}.amazonaws.com/datastore/{'0' * 32}/r4/", **props}},
            {"DatastoreId": "0" * 32})
        if policy is not None:
            kms_stub.add_response("get_key_policy", {"Policy": json.dumps(policy)},
                                  {"KeyId": DATASTORE_KEY, "PolicyName": "default"})
        hl_stub.activate()
        kms_stub.activate()
        seen = {}

        def fake_search(url, headers):
            seen.update(url=url, headers=headers)
            return search

        result = smoke.Result()
        smoke.check_datastore(result, FakeStack(), healthlake, kms, fake_search)
        return result, seen

    CMK = {"DatastoreStatus": "ACTIVE",
           "SseConfiguration": {"KmsEncryptionConfig": {"CmkType": "CUSTOMER_MANAGED_KMS_KEY", "KmsKeyId": DATASTORE_KEY}}}

    def test_active_cmk_datastore_with_readers_passes_and_searches_strictly(self):
        policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": [READER]},
                                 "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}
        result, seen = self.run_check(self.CMK, policy, (200, {"resourceType": "Bundle", "entry": []}))
        self.assertTrue(result.ok, result.lines)
        self.assertEqual(seen["headers"]["Prefer"], "handling=strict")
        self.assertIn("_elements=id", seen["url"])

    def test_key_policy_without_the_session_roles_fails(self):
        policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"},
                                 "Action": "kms:Decrypt", "Resource": "*"}]}
        result, _ = self.run_check(self.CMK, policy, (200, {"resourceType": "Bundle"}))
        self.assertIn(("FAIL", "datastore key policy names the readers"), verdicts(result))

    def test_aws_owned_key_fails(self):
        props = {"DatastoreStatus": "ACTIVE", "SseConfiguration": {"KmsEncryptionConfig": {"CmkType": "AWS_OWNED_KMS_KEY"}}}
        result, _ = self.run_check(props, None, (200, {}))
        self.assertEqual(verdicts(result), [("FAIL", "HealthLake datastore")])

    def test_search_refused_fails(self):
        policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                 "Action": "kms:*", "Resource": "*"}]}
        result, _ = self.run_check(self.CMK, policy, (403, None))
        self.assertIn(("FAIL", "FHIR search with strict handling"), verdicts(result))


class ModelTest(unittest.TestCase):
    def run_check(self, response=None, error=None):
        runtime, stub = client("bedrock-runtime")
        expected = {"modelId": ANY, "messages": ANY, "inferenceConfig": {"maxTokens": 1},
                    "guardrailConfig": {"guardrailIdentifier": "gr1", "guardrailVersion": "2"}}
        if error:
            stub.add_client_error("converse", service_error_code=error[0], service_message=error[1],
                                  expected_params=expected)
        else:
            stub.add_response("converse", response, expected)
        stub.activate()
        result = smoke.Result()
        smoke.check_model(result, FakeStack(), runtime)
        stub.assert_no_pending_responses()
        return result

    def test_one_token_through_the_guardrail_passes(self):
        result = self.run_check({"output": {"message": {"role": "assistant", "content": [{"text": "OK"}]}},
                                 "stopReason": "max_tokens",
                                 "usage": {"inputTokens": 9, "outputTokens": 1, "totalTokens": 10},
                                 "metrics": {"latencyMs": 100}})
        self.assertTrue(result.ok, result.lines)

    def test_model_needing_a_profile_fails_with_the_fix(self):
        result = self.run_check(error=("ValidationException",
                                       "Invocation of model ID x with on-demand throughput isn't supported."))
        self.assertFalse(result.ok)
        self.assertIn("create-inference-profile", result.lines[0][2])

    def test_access_denied_names_model_access(self):
        result = self.run_check(error=("AccessDeniedException", "not authorized"))
        self.assertIn("model access", result.lines[0][2])


class AuditTest(unittest.TestCase):
    def run_check(self, errors, records, head):
        s3, s3_stub = client("s3")
        firehose, fh_stub = client("firehose")
        fh_stub.add_response("describe_delivery_stream", {"DeliveryStreamDescription": {
            "DeliveryStreamName": "stack-tool-audit", "DeliveryStreamARN": f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/x",
            "DeliveryStreamStatus": "ACTIVE", "DeliveryStreamType": "DirectPut", "VersionId": "1",
            "Destinations": [], "HasMoreDestinations": False}}, {"DeliveryStreamName": "stack-tool-audit"})
        s3_stub.add_response("list_objects_v2", {"Contents": errors, "KeyCount": len(errors)},
                             {"Bucket": "audit-bucket", "Prefix": "errors/"})
        if not errors:
            s3_stub.add_response("list_objects_v2", {"Contents": records, "KeyCount": len(records)},
                                 {"Bucket": "audit-bucket", "Prefix": "tool-audit/"})
            if records:
                s3_stub.add_response("head_object", head, {"Bucket": "audit-bucket", "Key": records[-1]["Key"]})
        s3_stub.activate()
        fh_stub.activate()
        result = smoke.Result()
        smoke.check_audit(result, FakeStack(), s3, firehose)
        s3_stub.assert_no_pending_responses()
        return result

    T0 = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)
    T1 = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)
    RECORDS = [{"Key": "tool-audit/dt=2026-12-01/a.gz", "LastModified": T0},
               {"Key": "tool-audit/dt=2026-12-01/b.gz", "LastModified": T1}]

    def test_locked_encrypted_record_passes(self):
        head = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": self.T1,
                "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": LOGS_KEY}
        result = self.run_check([], self.RECORDS, head)
        self.assertTrue(result.ok, result.lines)
        self.assertIn("b.gz", result.lines[0][2])

    def test_delivery_errors_fail_naming_the_checksum_cause(self):
        result = self.run_check([{"Key": "errors/S3Delivery/x", "LastModified": self.T0}], [], None)
        self.assertFalse(result.ok)
        self.assertIn("Content-MD5", result.lines[0][2])

    def test_no_record_yet_says_what_to_do(self):
        result = self.run_check([], [], None)
        self.assertIn("make one tool call", result.lines[0][2])

    def test_unlocked_record_fails(self):
        head = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": LOGS_KEY}
        result = self.run_check([], self.RECORDS, head)
        self.assertIn("no Object Lock retention", result.lines[0][2])


class DashboardTest(unittest.TestCase):
    def test_missing_alarm_fails(self):
        cloudwatch, stub = client("cloudwatch")
        stub.add_response("get_dashboard", {"DashboardName": "stack-tools", "DashboardBody": "{}"}, {"DashboardName": "stack-tools"})
        stub.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": "stack-PatientSummaryErrorsAlarm-X"}]}, None)
        stub.activate()
        result = smoke.Result()
        smoke.check_dashboard(result, FakeStack(), cloudwatch)
        self.assertFalse(result.ok)
        self.assertIn("stack-break-glass-used", result.lines[0][2])

    def test_present_passes(self):
        cloudwatch, stub = client("cloudwatch")
        stub.add_response("get_dashboard", {"DashboardName": "stack-tools", "DashboardBody": "{}"}, {"DashboardName": "stack-tools"})
        stub.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": a} for a in FakeStack().alarms]}, None)
        stub.activate()
        result = smoke.Result()
        smoke.check_dashboard(result, FakeStack(), cloudwatch)
        self.assertTrue(result.ok, result.lines)


if __name__ == "__main__":
    unittest.main()


class UploadSchemasTest(unittest.TestCase):
    def test_one_mcp_document_per_gateway_target(self):
        import upload_schemas

        docs = upload_schemas.documents()
        self.assertEqual(len(docs), 6)
        for tool, name in upload_schemas.TOOLS.items():
            entries = json.loads(docs[f"{tool}.mcp.json"])
            self.assertEqual([e["name"] for e in entries], [name])
            self.assertIn("inputSchema", entries[0])
            self.assertEqual(json.loads(docs[f"{tool}.openapi.json"])["openapi"][:1], "3")
