"""The least-privilege accounts the README documents stay in step with what the checks call.

AWS: deploy/aws-readonly-policy.json allows exactly the actions the suites' AWS calls need
(read from the suites with ``ast``, named as IAM names them), each a read the AWS target's
allowlist lets through. PostgreSQL and Redis: the README shows the grants and the ACL that
tests/suites/test_postgres_unobservable.py and test_redis_least_privilege.py prove sufficient.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from pytest_vcci.targets.aws import is_read_operation

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "deploy" / "aws-readonly-policy.json"
# IAM's prefix where it differs from boto3's service name.
IAM_PREFIX = {"elbv2": "elasticloadbalancing"}
# S3 API operations whose IAM action has another name.
S3_ACTIONS = {
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "GetBucketReplication": "GetReplicationConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
}
# Clients the suites name by a variable: `ecr = cloud.client("ecr")`, then `ecr.describe_images`.
CLIENT_VARIABLES = {"ecr", "logs", "s3"}


def suite_calls() -> set[tuple[str, str]]:
    """(boto3 service, python operation name) of every AWS call in suites/."""
    calls: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "suites").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if isinstance(node.func, ast.Name) and node.func.id in ("_s3", "s3_read") and args:
                calls.add(("s3", args[0]))  # _s3(cloud, "get_bucket_policy", ...)
            if not isinstance(node.func, ast.Attribute):
                continue
            owner = ast.unparse(node.func.value)
            if node.func.attr in ("call", "paginate") and "cloud" in owner and len(args) >= 2:
                calls.add((args[0], args[1]))  # cloud.call("rds", "describe_db_instances")
            elif owner in CLIENT_VARIABLES and not node.func.attr.startswith("exceptions"):
                calls.add((owner, node.func.attr))  # ecr.describe_images(...)
    return calls


def api_name(service: str, operation: str) -> str:
    """boto3's python name -> the API operation name (DescribeDBInstances, not DescribeDbInstances)."""
    import botocore.session

    client = botocore.session.get_session().create_client(service, region_name="eu-west-1")
    mapping: dict[str, str] = client.meta.method_to_api_mapping
    return mapping[operation]


def iam_actions() -> set[str]:
    actions = set()
    for service, operation in suite_calls():
        name = api_name(service, operation)
        assert is_read_operation(name), f"{service}.{operation} is not a read the target allows"
        if service == "s3":
            name = S3_ACTIONS.get(name, name)
        actions.add(f"{IAM_PREFIX.get(service, service)}:{name}")
    return actions


def test_the_suites_calls_are_found() -> None:
    calls = suite_calls()
    # One of each way the suites reach AWS, so a change in how they call is noticed here.
    assert ("rds", "describe_db_instances") in calls  # cloud.call
    assert ("ec2", "describe_security_groups") in calls  # cloud.paginate
    assert ("ecr", "describe_images") in calls  # a named client
    assert ("s3", "get_public_access_block") in calls  # _s3(cloud, ...)
    assert ("s3", "get_bucket_replication") in calls  # s3_read(cloud, ...)


def test_policy_allows_exactly_what_the_suites_call() -> None:
    policy = json.loads(POLICY.read_text())
    statements = policy["Statement"]
    assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in statements)
    allowed = {a for s in statements for a in s["Action"]}
    assert not any("*" in a for a in allowed), "no wildcard action"
    wanted = iam_actions()
    assert allowed - wanted == set(), "allowed but never called"
    assert wanted - allowed == set(), "called but not allowed"


def test_policy_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "deploy/aws-readonly-policy.json" in readme
    for action in sorted(iam_actions()):
        assert f"`{action.split(':')[1]}`" in readme or action.split(":")[1] in readme, action


@pytest.mark.parametrize(
    "text",
    [
        "GRANT pg_read_all_settings, pg_read_all_stats TO",
        "+ping +info +config|get +scan +ttl +command +cluster|info +cluster|shards +cluster|slots",
    ],
)
def test_readme_shows_the_proven_grants(text: str) -> None:
    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    assert text in readme
