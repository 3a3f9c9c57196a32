"""check_idp.py against stubbed Cognito answers (botocore Stubber: the real client, no network)."""

import io
import unittest
from contextlib import redirect_stdout

import boto3
from botocore.stub import Stubber

import check_idp

POOL = "us-east-1_AbCdEf123"
ISSUER = f"https://cognito-idp.us-east-1.amazonaws.com/{POOL}"
SCHEMA = [{"Name": "email"}, {"Name": "custom:practitioner_id", "Mutable": False}, {"Name": "custom:org", "Mutable": False}]


def cognito(app_client, pool):
    client = boto3.client("cognito-idp", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("describe_user_pool_client",
                      {"UserPoolClient": {"UserPoolId": POOL, "ClientId": "client1", **app_client}},
                      {"UserPoolId": POOL, "ClientId": "client1"})
    stub.add_response("describe_user_pool", {"UserPool": {"Id": POOL, **pool}}, {"UserPoolId": POOL})
    stub.activate()
    return client, stub


def run(app_client, pool, *extra):
    client, stub = cognito(app_client, pool)
    out = io.StringIO()
    with redirect_stdout(out):
        code = check_idp.main(["--issuer", ISSUER, "--client-id", "client1", *extra], make_client=lambda region: client)
    stub.assert_no_pending_responses()
    return code, out.getvalue()


SAFE_POOL = {"SchemaAttributes": SCHEMA, "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True}}


class CheckIdpTest(unittest.TestCase):
    def test_read_only_custom_attributes_pass(self):
        code, out = run({"WriteAttributes": ["email", "given_name"]}, SAFE_POOL)
        self.assertEqual(code, 0, out)
        self.assertIn("PASS users cannot write custom:practitioner_id / custom:org", out)

    def test_unset_write_attributes_means_all_writable_and_fails(self):
        code, out = run({}, SAFE_POOL)
        self.assertEqual(code, 1)
        self.assertIn("FAIL app client write attributes are listed", out)

    def test_writable_practitioner_id_fails_with_the_fix(self):
        code, out = run({"WriteAttributes": ["email", "custom:practitioner_id"]}, SAFE_POOL)
        self.assertEqual(code, 1)
        self.assertIn("can write custom:practitioner_id", out)
        self.assertIn("--write-attributes", out)

    def test_missing_claims_and_unreadable_claims_fail(self):
        code, out = run({"WriteAttributes": ["email"], "ReadAttributes": ["email"]},
                        {"SchemaAttributes": [{"Name": "email"}]})
        self.assertEqual(code, 1)
        self.assertIn("FAIL pool declares the claims", out)
        self.assertIn("FAIL ID tokens carry the claims", out)

    def test_domain_breaks_private_link_jwks(self):
        code, out = run({"WriteAttributes": ["email"]}, {**SAFE_POOL, "Domain": "clinic-login"}, "--private-link")
        self.assertEqual(code, 1)
        self.assertIn("FAIL JWKS reachable through the cognito-idp endpoint", out)
        code, out = run({"WriteAttributes": ["email"]}, {**SAFE_POOL, "Domain": "clinic-login"})
        self.assertEqual(code, 0, out)

    def test_self_signup_is_a_warning(self):
        code, out = run({"WriteAttributes": ["email"]}, {"SchemaAttributes": SCHEMA})
        self.assertEqual(code, 0, out)
        self.assertIn("WARN only administrators create users", out)

    def test_issuer_parsing(self):
        self.assertEqual(check_idp.parse_issuer(ISSUER), ("us-east-1", POOL))
        self.assertIsNone(check_idp.parse_issuer("https://cognito-idp.us-east-1.amazonaws.com/eu-west-1_AbC"))
        self.assertIsNone(check_idp.parse_issuer("https://login.example.org/realms/clinic"))


if __name__ == "__main__":
    unittest.main()
