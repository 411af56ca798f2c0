"""The ``cloud`` target against a real moto server seeded with the GL-VCCI staging.

The server fixtures live here (not in a conftest): they start the sandbox's AwsComponent once
per session and stop it by PID at the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from pytest_vcci.context import RunContext
from pytest_vcci.evidence.redaction import Redactor
from pytest_vcci.sandbox.aws import (
    BUCKETS,
    DB_INSTANCE,
    DB_REPLICAS,
    LOAD_BALANCER,
    REDIS_GROUP,
    REPOSITORIES,
    SECRETS,
    SECURITY_GROUPS,
    TERRAFORM_STATE_BUCKET,
    TRAIL,
    AwsComponent,
    Seeder,
)
from pytest_vcci.settings import AwsTable, EnvironmentTable, Settings
from pytest_vcci.targets.aws import Cloud, build_cloud, is_read_operation
from pytest_vcci.targets.base import ReadOnlyViolation, TargetUnreachable

# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsComponent]:
    component = AwsComponent(workdir=tmp_path_factory.mktemp("moto"))
    try:
        component.start()
        print(
            f"\nmoto server: up in {component.startup_seconds:.2f}s, seeded in "
            f"{component.seed_seconds:.2f}s {component.seed_timings}"
        )
        yield component
    finally:
        component.stop()


def make_context(tmp_path: Path, **tables: Any) -> RunContext:
    settings = Settings(
        source="<test>", environment=EnvironmentTable.model_validate({"name": "t"}), tables=tables
    )
    return RunContext(
        settings=settings, redactor=Redactor(settings.secrets()), run_id="t", run_dir=tmp_path
    )


def aws_table(component: AwsComponent | None = None, **overrides: Any) -> AwsTable:
    values: dict[str, Any] = {"region": "eu-west-1"}
    if component is not None:
        values.update(component.env_tables()["aws"])
        values["secret_access_key"] = component.secret_access_key
    values.update(overrides)
    return AwsTable(**values)


@pytest.fixture
def cloud_target(moto_staging: AwsComponent, tmp_path: Path) -> Cloud:
    context = make_context(tmp_path, aws=aws_table(moto_staging))
    target = build_cloud(context)
    target.ensure()
    return target


def seeder(component: AwsComponent) -> Seeder:
    """An unguarded client factory, only to set up and to verify state from outside."""
    return component._seeder()


def sent_counter(client: Any) -> list[str]:
    """Operations that reached the HTTP layer (botocore ``before-send``)."""
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(request.url)

    client.meta.events.register("before-send", record)
    return sent


# --- the seeded staging reads back --------------------------------------------------------


def test_buckets_versioned_encrypted_replicated_and_locked_down(cloud_target: Cloud) -> None:
    s3 = cloud_target.client("s3")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {*BUCKETS.values(), TERRAFORM_STATE_BUCKET} <= names
    for bucket in BUCKETS.values():
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ][0]["ApplyServerSideEncryptionByDefault"]
        assert rule["SSEAlgorithm"] in {"aws:kms", "AES256"}
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        assert len(block) == 4
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
        assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert {"NoncurrentDays": 30} in [r.get("NoncurrentVersionExpiration") for r in rules]
        replication = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
        destination = replication["Rules"][0]["Destination"]["Bucket"].removeprefix("arn:aws:s3:::")
        assert destination.endswith("eu-central-1")
        replica_s3 = cloud_target.client("s3", region="eu-central-1")
        location = replica_s3.get_bucket_location(Bucket=destination)["LocationConstraint"]
        assert location == "eu-central-1"
    assert s3.get_bucket_versioning(Bucket=TERRAFORM_STATE_BUCKET)["Status"] == "Enabled"


def test_database_is_multi_az_encrypted_backed_up_with_two_replicas(cloud_target: Cloud) -> None:
    rds = cloud_target.client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier=DB_INSTANCE)["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["EngineVersion"].startswith("15.")
    assert db["MultiAZ"]
    assert db["StorageEncrypted"]
    assert not db["PubliclyAccessible"]
    assert db["BackupRetentionPeriod"] == 30
    assert db["PreferredBackupWindow"] == "02:00-03:00"
    assert sorted(db["ReadReplicaDBInstanceIdentifiers"]) == sorted(DB_REPLICAS)
    snapshots = cloud_target.paginate(
        "rds", "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=DB_INSTANCE
    )
    assert {s["SnapshotType"] for s in snapshots} == {"automated", "manual"}
    assert all(s["Encrypted"] for s in snapshots)
    newest = max(s["SnapshotCreateTime"] for s in snapshots)
    assert datetime.now(UTC) - newest < timedelta(days=1)
    group = db["DBParameterGroups"][0]["DBParameterGroupName"]
    parameters = {
        p["ParameterName"]: p.get("ParameterValue")
        for p in rds.describe_db_parameters(DBParameterGroupName=group, Source="user")["Parameters"]
    }
    assert parameters["log_min_duration_statement"] == "1000"


def test_redis_is_a_three_shard_encrypted_multi_az_cluster(cloud_target: Cloud) -> None:
    group = cloud_target.client("elasticache").describe_replication_groups(
        ReplicationGroupId=REDIS_GROUP
    )["ReplicationGroups"][0]
    assert group["ClusterEnabled"]
    assert group["MultiAZ"] == "enabled"
    assert group["AtRestEncryptionEnabled"]
    assert group["TransitEncryptionEnabled"]
    assert group["AutomaticFailover"] == "enabled"
    assert len(group["NodeGroups"]) == 3
    assert all(len(ng["NodeGroupMembers"]) == 2 for ng in group["NodeGroups"])


def test_secrets_exist_rotate_and_were_rotated_recently(cloud_target: Cloud) -> None:
    listed = cloud_target.paginate("secretsmanager", "list_secrets", "SecretList")
    assert set(SECRETS) <= {s["Name"] for s in listed}
    manager = cloud_target.client("secretsmanager")
    for name in SECRETS:
        secret = manager.describe_secret(SecretId=name)
        assert secret["RotationEnabled"], name
        assert secret["RotationLambdaARN"].endswith(":function:vcci-staging-secrets-rotation")
        assert secret["RotationRules"]["AutomaticallyAfterDays"] in {30, 90}
        assert datetime.now(UTC) - secret["LastRotatedDate"] < timedelta(days=1)
        assert any("AWSCURRENT" in stages for stages in secret["VersionIdsToStages"].values())


def test_images_are_tagged_signed_scanned_and_clean(cloud_target: Cloud) -> None:
    ecr = cloud_target.client("ecr")
    repositories = {r["repositoryName"]: r for r in ecr.describe_repositories()["repositories"]}
    for name in REPOSITORIES:
        assert repositories[name]["imageScanningConfiguration"] == {"scanOnPush": True}
        image = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "2.0.0"}])[
            "imageDetails"
        ][0]
        digest = image["imageDigest"]
        assert digest.startswith("sha256:")
        assert "git-4f2c9e1" in image["imageTags"]
        tags = {
            t
            for i in ecr.describe_images(repositoryName=name)["imageDetails"]
            for t in i.get("imageTags", [])
        }
        assert f"sha256-{digest.removeprefix('sha256:')}.sig" in tags
        scan = ecr.describe_image_scan_findings(repositoryName=name, imageId={"imageTag": "2.0.0"})
        assert scan["imageScanStatus"]["status"] == "COMPLETE"
        counts = scan["imageScanFindings"]["findingSeverityCounts"]
        assert counts.get("CRITICAL", 0) == 0, counts
        assert counts.get("HIGH", 0) == 0, counts


def test_moto_default_scan_finding_is_one_high_cve(
    moto_staging: AwsComponent, cloud_target: Cloud
) -> None:
    """What moto answers when no scan result was configured: documented, not hidden."""
    ecr_writer = seeder(moto_staging).client("ecr")
    signature = next(
        i
        for i in ecr_writer.describe_images(repositoryName="vcci-worker")["imageDetails"]
        if i["imageTags"][0].endswith(".sig")
    )
    image_id = {"imageDigest": signature["imageDigest"]}
    ecr_writer.start_image_scan(repositoryName="vcci-worker", imageId=image_id)
    scan = cloud_target.client("ecr").describe_image_scan_findings(
        repositoryName="vcci-worker", imageId=image_id
    )["imageScanFindings"]
    assert scan["findingSeverityCounts"] == {"HIGH": 1}
    finding = scan["findings"][0]
    assert (finding["name"], finding["severity"]) == ("CVE-9999-9999", "HIGH")
    assert {"key": "package_name", "value": "moto_fake"} in finding["attributes"]


def test_load_balancer_https_health_check_draining_cross_zone(cloud_target: Cloud) -> None:
    elb = cloud_target.client("elbv2")
    balancer = elb.describe_load_balancers(Names=[LOAD_BALANCER])["LoadBalancers"][0]
    assert balancer["Type"] == "application"
    arn = balancer["LoadBalancerArn"]
    attributes = {
        a["Key"]: a["Value"]
        for a in elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    }
    assert attributes["load_balancing.cross_zone.enabled"] == "true"
    listeners = {
        listener["Port"]: listener
        for listener in elb.describe_listeners(LoadBalancerArn=arn)["Listeners"]
    }
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    certificate = cloud_target.client("acm").describe_certificate(
        CertificateArn=https["Certificates"][0]["CertificateArn"]
    )["Certificate"]
    assert certificate["DomainName"] == "*.vcci.greenlang.io"
    assert certificate["Status"] == "ISSUED"
    group_arn = https["DefaultActions"][0]["TargetGroupArn"]
    group = elb.describe_target_groups(TargetGroupArns=[group_arn])["TargetGroups"][0]
    assert group["HealthCheckPath"] == "/health/ready"
    group_attributes = {
        a["Key"]: a["Value"]
        for a in elb.describe_target_group_attributes(TargetGroupArn=group_arn)["Attributes"]
    }
    assert group_attributes["deregistration_delay.timeout_seconds"] == "300"


def test_cloudtrail_trail_is_logging(cloud_target: Cloud) -> None:
    trail = cloud_target.client("cloudtrail")
    status = trail.get_trail_status(Name=TRAIL)
    assert status["IsLogging"] is True
    described = trail.describe_trails(trailNameList=[TRAIL])["trailList"][0]
    assert described["IsMultiRegionTrail"]
    assert described["LogFileValidationEnabled"]


def test_network_private_subnets_and_locked_down_security_groups(cloud_target: Cloud) -> None:
    ec2 = cloud_target.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["vcci-staging"]}])["Vpcs"][0]
    private = ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
            {"Name": "tag:Tier", "Values": ["private"]},
        ]
    )["Subnets"]
    assert {s["AvailabilityZone"] for s in private} == {"eu-west-1a", "eu-west-1b", "eu-west-1c"}
    assert not any(s["MapPublicIpOnLaunch"] for s in private)
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
        )["SecurityGroups"]
    }
    cluster = groups[SECURITY_GROUPS["cluster"]]["GroupId"]
    alb = groups[SECURITY_GROUPS["alb"]]["IpPermissions"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in alb] == [
        (443, ["0.0.0.0/0"])
    ]
    for role, port in (("db", 5432), ("redis", 6379)):
        (permission,) = groups[SECURITY_GROUPS[role]]["IpPermissions"]
        assert permission["FromPort"] == permission["ToPort"] == port
        assert permission["IpRanges"] == []
        assert [p["GroupId"] for p in permission["UserIdGroupPairs"]] == [cluster]
    nodes = [
        i
        for r in ec2.describe_instances(
            Filters=[{"Name": "tag:eks:cluster-name", "Values": ["vcci-staging"]}]
        )["Reservations"]
        for i in r["Instances"]
    ]
    assert len(nodes) == 3
    assert not any(n.get("PublicIpAddress") for n in nodes)


def test_irsa_roles_trust_only_their_service_account(cloud_target: Cloud) -> None:
    role = cloud_target.client("iam").get_role(RoleName="vcci-backend-role")["Role"]
    document = role["AssumeRolePolicyDocument"]
    statement = (json.loads(document) if isinstance(document, str) else document)["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]["StringEquals"]
    assert "system:serviceaccount:vcci-staging:vcci-backend" in conditions.values()


def test_expect_names_what_was_seeded(moto_staging: AwsComponent, cloud_target: Cloud) -> None:
    expect = moto_staging.expect()["aws"]
    assert expect["db_instance"] == DB_INSTANCE
    assert expect["trail"] == TRAIL
    names = {b["Name"] for b in cloud_target.client("s3").list_buckets()["Buckets"]}
    assert set(expect["buckets"]) <= names
    assert moto_staging.env_tables()["aws"]["secret_access_key"] == (
        "${VCCI_SANDBOX_AWS_SECRET_ACCESS_KEY}"
    )
    assert moto_staging.env_vars() == {
        "VCCI_SANDBOX_AWS_SECRET_ACCESS_KEY": moto_staging.secret_access_key
    }


# --- the read-only guard ------------------------------------------------------------------

WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("s3", "put_object", {"Bucket": BUCKETS["data"], "Key": "x.txt", "Body": b"x"}),
    (
        "s3",
        "create_bucket",
        {
            "Bucket": "vcci-intruder",
            "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"},
        },
    ),
    ("s3", "delete_bucket", {"Bucket": BUCKETS["reports"]}),
    ("s3", "delete_object", {"Bucket": BUCKETS["reports"], "Key": "README.txt"}),
    (
        "s3",
        "put_bucket_versioning",
        {"Bucket": BUCKETS["data"], "VersioningConfiguration": {"Status": "Suspended"}},
    ),
    ("secretsmanager", "get_secret_value", {"SecretId": "vcci/staging/database"}),
    ("secretsmanager", "rotate_secret", {"SecretId": "vcci/staging/database"}),
    ("ec2", "terminate_instances", {"InstanceIds": ["i-0123456789abcdef0"]}),
    ("rds", "delete_db_instance", {"DBInstanceIdentifier": DB_INSTANCE, "SkipFinalSnapshot": True}),
]


def _state(component: AwsComponent) -> dict[str, Any]:
    writer = seeder(component)
    s3 = writer.client("s3")
    return {
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "objects": {b: s3.list_objects_v2(Bucket=b).get("KeyCount") for b in BUCKETS.values()},
        "versioning": s3.get_bucket_versioning(Bucket=BUCKETS["data"])["Status"],
        "secret_versions": writer.client("secretsmanager").describe_secret(
            SecretId="vcci/staging/database"
        )["VersionIdsToStages"],
        "instances": len(writer.client("rds").describe_db_instances()["DBInstances"]),
    }


class MotoRecording:
    """moto's own request recorder: which requests reached the server."""

    def __init__(self, endpoint_url: str) -> None:
        self.base = f"{endpoint_url}/moto-api/recorder"

    def post(self, action: str) -> None:
        requests.post(f"{self.base}/{action}", timeout=5).raise_for_status()

    def reset(self) -> None:
        self.post("reset-recording")

    def urls(self) -> list[str]:
        text = requests.get(f"{self.base}/download-recording", timeout=5).text
        return [json.loads(line)["url"] for line in text.splitlines() if line.strip()]


@pytest.fixture
def moto_recording(moto_staging: AwsComponent) -> Iterator[MotoRecording]:
    recording = MotoRecording(moto_staging.endpoint_url)
    recording.reset()
    recording.post("start-recording")
    try:
        yield recording
    finally:
        recording.post("stop-recording")


@pytest.mark.parametrize(
    ("service", "method", "params"), WRITES, ids=[f"{s}.{m}" for s, m, _ in WRITES]
)
def test_guard_refuses_writes_and_secret_reads_before_any_request(
    moto_staging: AwsComponent,
    cloud_target: Cloud,
    moto_recording: MotoRecording,
    service: str,
    method: str,
    params: dict[str, Any],
) -> None:
    before = _state(moto_staging)
    client = cloud_target.client(service)
    sent = sent_counter(client)
    operation = client.meta.method_to_api_mapping[method]
    moto_recording.reset()
    with pytest.raises(ReadOnlyViolation, match=f"AWS {service} refused {operation}"):
        getattr(client, method)(**params)
    assert sent == []
    assert moto_recording.urls() == []
    assert _state(moto_staging) == before


def test_guard_covers_resources_made_from_the_session(cloud_target: Cloud) -> None:
    bucket = (
        cloud_target._boto_session()
        .resource("s3", endpoint_url=cloud_target.table.endpoint_url)
        .Bucket(BUCKETS["data"])
    )
    with pytest.raises(ReadOnlyViolation, match="PutObject"):
        bucket.put_object(Key="y.txt", Body=b"y")


def test_reads_are_allowed_and_sent(cloud_target: Cloud, moto_recording: MotoRecording) -> None:
    s3 = cloud_target.client("s3")
    s3.head_bucket(Bucket=BUCKETS["data"])
    cloud_target.client("secretsmanager").describe_secret(SecretId="vcci/staging/jwt")
    assert len(moto_recording.urls()) == 2


@pytest.mark.parametrize(
    ("operation", "params", "allowed"),
    [
        ("GetObject", {}, True),
        ("HeadObject", {}, True),
        ("ListBuckets", {}, True),
        ("DescribeSecret", {}, True),
        ("GetBucketVersioning", {}, True),
        ("LookupEvents", {}, True),
        ("BatchGetImage", {}, True),
        ("BatchCheckLayerAvailability", {}, True),
        ("GetCallerIdentity", {}, True),
        ("GetParameter", {"WithDecryption": False}, True),
        ("GetParameter", {"WithDecryption": True}, False),
        ("GetSecretValue", {}, False),
        ("BatchGetSecretValue", {}, False),
        ("GetAuthorizationToken", {}, False),
        ("PutObject", {}, False),
        ("RotateSecret", {}, False),
        ("AssumeRole", {}, False),
        ("TerminateInstances", {}, False),
        ("StartImageScan", {}, False),
    ],
)
def test_read_allowlist(operation: str, params: dict[str, Any], allowed: bool) -> None:
    assert is_read_operation(operation, params) is allowed


# --- fail fast ----------------------------------------------------------------------------


def _dead_port() -> int:
    """A loopback port nothing listens on (a stopped moto)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A socket that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _fast_table(port: int) -> AwsTable:
    return aws_table(
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="AKIAVCCITEST0000000X",
        secret_access_key="test-secret-key-that-must-never-show-0123",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )


def test_stopped_endpoint_fails_fast_once_for_the_run(tmp_path: Path) -> None:
    context = make_context(tmp_path, aws=_fast_table(_dead_port()))
    first = build_cloud(context)
    probes = sent_counter(first.client("sts", probe=True))  # the client ensure() probes with
    with pytest.raises(TargetUnreachable, match="aws unreachable: EndpointConnectionError") as down:
        first.ensure()
    assert "Timeout" not in str(down.value)  # refused at once (botocore: not ConnectTimeout)
    assert len(probes) == 1  # one request in all, no retry
    # A second Cloud in the same run (another worker, say) fails with the same cause and
    # sends nothing: fail fast is "nothing more is sent", not a wall-clock figure.
    again = build_cloud(context)
    sent = [sent_counter(again.client("sts", probe=True)), sent_counter(again.client("s3"))]
    with pytest.raises(TargetUnreachable) as second:
        again.ensure()
    with pytest.raises(TargetUnreachable) as third:
        again.client("s3").list_buckets()
    assert sent == [[], []]
    assert str(second.value) == str(third.value) == str(down.value)


def test_never_answering_endpoint_times_out_then_fails_fast(
    tmp_path: Path, silent_server: int
) -> None:
    from botocore.exceptions import ReadTimeoutError

    context = make_context(tmp_path, aws=_fast_table(silent_server))
    target = build_cloud(context)
    s3 = target.client("s3")
    sent = sent_counter(s3)
    with pytest.raises(ReadTimeoutError):
        s3.list_buckets()  # not through ensure(): the hooks still notice
    assert len(sent) == 1  # max_attempts = 1 means one request in all, no retry
    # Fail fast is "nothing more is sent", not a wall-clock figure (that is the benchmark's).
    ec2, rds = target.client("ec2"), target.client("rds")
    later = [sent_counter(ec2), sent_counter(rds)]
    with pytest.raises(TargetUnreachable, match="ReadTimeoutError"):
        ec2.describe_regions()
    with pytest.raises(TargetUnreachable, match="ReadTimeoutError"):
        target.call("rds", "describe_db_instances")
    assert later == [[], []]


def test_a_hung_endpoint_is_not_retried_whatever_max_attempts_says(
    tmp_path: Path, silent_server: int
) -> None:
    # Retries are for throttling and 5xx answers: an endpoint that timed out once is down,
    # and botocore's retry of the request is refused before it is sent (a frozen AWS stand-in
    # costs one read timeout, not max_attempts of them).
    table = _fast_table(silent_server).model_copy(update={"max_attempts": 3})
    target = build_cloud(make_context(tmp_path, aws=table))
    s3 = target.client("s3")
    sent = sent_counter(s3)
    with pytest.raises(TargetUnreachable, match="aws unreachable: ReadTimeoutError"):
        target.call("s3", "list_buckets")
    assert len(sent) == 1


def test_watched_call_turns_a_timeout_into_the_root_cause(
    tmp_path: Path, silent_server: int
) -> None:
    target = build_cloud(make_context(tmp_path, aws=_fast_table(silent_server)))
    with pytest.raises(TargetUnreachable, match="aws unreachable: ReadTimeoutError"):
        target.call("s3", "list_buckets")


def test_auth_failure_marks_the_target_down(tmp_path: Path) -> None:
    context = make_context(tmp_path, aws=_fast_table(_dead_port()))
    target = build_cloud(context)
    target._on_call(
        parsed={
            "Error": {
                "Code": "InvalidClientTokenId",
                "Message": "The security token included is invalid.",
            }
        }
    )
    with pytest.raises(TargetUnreachable, match="InvalidClientTokenId"):
        target.client("s3").list_buckets()
    # A denied single call is a check failure, not a target that is down.
    other = build_cloud(make_context(tmp_path / "other", aws=_fast_table(_dead_port())))
    other._on_call(parsed={"Error": {"Code": "AccessDenied", "Message": "no"}})
    assert other.gate is not None
    other.gate.check("aws")


def test_absent_table_skips(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"\[aws\] is not configured"):
        build_cloud(make_context(tmp_path))


# --- secrets never leave ------------------------------------------------------------------


def test_no_secret_in_repr_describe_errors_or_gate_state(
    tmp_path: Path, moto_staging: AwsComponent
) -> None:
    secret = "test-secret-key-that-must-never-show-0123"
    context = make_context(tmp_path, aws=_fast_table(_dead_port()))
    target = build_cloud(context)
    texts = [repr(target), json.dumps(target.describe()), repr(moto_staging)]
    with pytest.raises(TargetUnreachable) as down:
        target.ensure()
    texts.append(str(down.value))
    with pytest.raises(ReadOnlyViolation) as refused:
        target.client("s3").put_object(Bucket="b", Key="k", Body=b"")
    texts.append(str(refused.value))
    texts.extend(p.read_text() for p in (tmp_path / "targets").glob("*.json"))
    for text in texts:
        assert secret not in text, text
        assert moto_staging.secret_access_key not in text, text
    assert "explicit keys" in repr(target)


def test_importing_the_target_loads_no_client_library() -> None:
    code = (
        "import sys, pytest_vcci.targets.aws, pytest_vcci.targets.monitoring; "
        "print(sorted(m for m in ('boto3', 'botocore', 'requests', 'yaml') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- broken variants ----------------------------------------------------------------------


def test_broken_variant_seeds_what_the_suites_must_catch(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    broken = frozenset({"unversioned-bucket", "open-db-sg", "vulnerable-images", "trail-stopped"})
    component = AwsComponent(workdir=tmp_path_factory.mktemp("moto-broken"), broken=broken)
    try:
        component.start()
        print(
            f"\nbroken moto: up in {component.startup_seconds:.2f}s, "
            f"seeded in {component.seed_seconds:.2f}s"
        )
        target = build_cloud(make_context(tmp_path, aws=aws_table(component)))
        s3 = target.client("s3")
        assert "Status" not in s3.get_bucket_versioning(Bucket=BUCKETS["reports"])
        ec2 = target.client("ec2")
        db_sg = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [SECURITY_GROUPS["db"]]}]
        )["SecurityGroups"][0]
        open_ranges = [r["CidrIp"] for p in db_sg["IpPermissions"] for r in p["IpRanges"]]
        assert "0.0.0.0/0" in open_ranges
        scan = target.client("ecr").describe_image_scan_findings(
            repositoryName="vcci-backend", imageId={"imageTag": "2.0.0"}
        )
        assert scan["imageScanFindings"]["findingSeverityCounts"] == {"HIGH": 1}
        assert target.client("cloudtrail").get_trail_status(Name=TRAIL)["IsLogging"] is False
    finally:
        component.stop()


def test_unknown_breakage_is_refused(tmp_path: Path) -> None:
    from pytest_vcci.sandbox.base import SandboxError

    with pytest.raises(SandboxError, match="unknown AWS breakage 'no-such-thing'"):
        AwsComponent(workdir=tmp_path, broken=frozenset({"no-such-thing"}))
