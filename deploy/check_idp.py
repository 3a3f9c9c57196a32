"""Check the Cognito user pool and app client that issue the tools' identity tokens (read-only).

Usage: python deploy/check_idp.py --issuer https://cognito-idp.<region>.amazonaws.com/<pool id>
                                  --client-id <app client id> [--private-link]

The pool is a prerequisite of the stack (the template does not create it), so what the template
cannot enforce is checked here. The tools authorise on two token claims, custom:practitioner_id
(whose patients the caller may see) and custom:org (which tenant). If the app client lets users
write them, a user could make themselves any patient's practitioner: Cognito gives an app client
write access to every writable attribute when WriteAttributes is not set ("User pool attributes",
"Attribute permissions and scopes"). Each check prints PASS, FAIL or WARN with the fix; the exit
code is 1 when any check fails. Needs cognito-idp:DescribeUserPool and DescribeUserPoolClient.
"""

import argparse
import re
import sys

GUARDED = ("custom:practitioner_id", "custom:org")


def parse_issuer(issuer):
    """(region, pool id) of a Cognito issuer URL, or None when the issuer is not Cognito."""
    match = re.fullmatch(r"https://cognito-idp\.([a-z0-9-]+)\.amazonaws\.com/(([a-z0-9-]+)_[0-9A-Za-z]+)", issuer)
    if not match or match.group(1) != match.group(3):
        return None
    return match.group(1), match.group(2)


def check(client, pool_id, client_id, private_link=False):
    """[(verdict, name, detail)] for one pool and app client."""
    results = []
    app = client.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    pool = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]

    # DescribeUserPool names custom attributes with their "custom:" prefix; accept the bare name too.
    declared = {a["Name"] for a in pool.get("SchemaAttributes", [])}
    missing = [name for name in GUARDED if name not in declared and name.split(":", 1)[1] not in declared]
    if missing:
        results.append(("FAIL", "pool declares the claims the tools read",
                        f"missing {', '.join(missing)}: add them as custom attributes (Mutable=false where the "
                        "pool is new) and set them only through admin APIs"))
    else:
        results.append(("PASS", "pool declares the claims the tools read", ", ".join(GUARDED)))

    writable = app.get("WriteAttributes")
    if not writable:
        results.append(("FAIL", "app client write attributes are listed",
                        "WriteAttributes is empty, so the client may write every writable attribute, "
                        "custom:practitioner_id and custom:org included: update-user-pool-client "
                        "--write-attributes with the user-editable ones only (e.g. email given_name family_name)"))
    else:
        bad = [a for a in GUARDED if a in writable]
        if bad:
            results.append(("FAIL", "users cannot write custom:practitioner_id / custom:org",
                            f"the app client can write {', '.join(bad)}: remove them from WriteAttributes "
                            "(update-user-pool-client --write-attributes ...)"))
        else:
            results.append(("PASS", "users cannot write custom:practitioner_id / custom:org",
                            f"write attributes: {', '.join(sorted(writable))}"))

    readable = app.get("ReadAttributes")
    if readable and any(a not in readable for a in GUARDED):
        results.append(("FAIL", "ID tokens carry the claims",
                        "ReadAttributes leaves out custom:practitioner_id or custom:org, so tokens lack them "
                        "and every call is denied: add them to ReadAttributes"))
    else:
        results.append(("PASS", "ID tokens carry the claims", "read attributes include both (or all)"))

    self_signup = not pool.get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly", False)
    if self_signup:
        results.append(("WARN", "only administrators create users",
                        "self sign-up is on: anyone can create an account; the tools still need a care "
                        "relationship, but set AllowAdminCreateUserOnly=true for a clinical pool"))
    else:
        results.append(("PASS", "only administrators create users", "self sign-up off"))

    domain = pool.get("CustomDomain") or pool.get("Domain")
    if private_link and domain:
        results.append(("FAIL", "JWKS reachable through the cognito-idp endpoint",
                        f"the pool has a domain ({domain}); AWS PrivateLink does not serve user pools with a "
                        "domain, so the functions in private subnets cannot fetch the JWKS: deploy with "
                        "IdentityProviderEndpoint=none and give the subnets a NAT (or a pool without domain)"))
    elif private_link:
        results.append(("PASS", "JWKS reachable through the cognito-idp endpoint", "pool has no domain"))
    return results


def main(argv=None, make_client=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--private-link", action="store_true",
                        help="the functions reach the JWKS through the cognito-idp endpoint (IdentityProviderEndpoint=cognito-idp)")
    args = parser.parse_args(argv)
    parsed = parse_issuer(args.issuer)
    if parsed is None:
        print(f"FAIL issuer is a Cognito user pool: {args.issuer} is not https://cognito-idp.<region>.amazonaws.com/<region>_<id>; "
              "check another identity provider's client configuration by hand")
        return 1
    region, pool_id = parsed
    if make_client is None:
        import boto3  # deploy/.venv has it (aws-sam-cli depends on boto3)

        def make_client(region_name):
            return boto3.client("cognito-idp", region_name=region_name)
    results = check(make_client(region), pool_id, args.client_id, args.private_link)
    for verdict, name, detail in results:
        print(f"{verdict} {name}: {detail}")
    return 1 if any(v == "FAIL" for v, _, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
