"""AWS for the sandbox: moto's server as a child process, seeded with a GL-VCCI staging.

moto's server mode is a real HTTP endpoint that boto3 talks to, so the ``cloud`` target runs
against it unchanged (``endpoint_url``). The seed builds, in eu-west-1 (replicas in
eu-central-1), what sections 1.1.2-1.1.5, 1.2.2-1.2.5, 2.2.3/2.2.4, 3.1.x, 5.2.1, 6.2.1 and 8.1.x
check: encrypted, versioned, replicated, locked-down S3 buckets; a Multi-AZ PostgreSQL 15 with
two read replicas and snapshots; a three-shard Redis replication group; rotated secrets; ECR
repositories with scanned (and cosign-signed) 2.0.0 images; an HTTPS ALB; a logging CloudTrail
trail; a VPC with private subnets in three AZs and locked-down security groups; IRSA roles.

Seeding is deterministic: moto's random generator is seeded first (``/moto-api/seed``), so the
same calls in the same order give the same resource IDs. Only timestamps and generated secret
values (which never leave the sandbox) differ between runs.

What moto does and does not model (moto 5.x), found by seeding and reading back:

- ECR: ``scanOnPush`` is stored but does not scan; the seed calls StartImageScan for every image.
  moto's *default* DescribeImageScanFindings answer is one HIGH finding, ``CVE-9999-9999`` in
  package ``moto_fake`` 9.9.9 (CVSS2 7.5), ``findingSeverityCounts == {"HIGH": 1}``, and
  ``imageId.imageTag`` is the image's last pushed tag. The seed replaces it (``/moto-api/static/
  ecr/scan-finding-results``) with a clean scan (MEDIUM/LOW only) per image. moto hands each
  queued answer to one distinct ``imageId`` form (by tag, by digest, ...); the seed queues
  ``SCAN_ANSWERS_PER_IMAGE`` of them, a further distinct form gets the HIGH default again. With
  ``broken={"vulnerable-images"}`` the default HIGH finding is left in place.
  DescribeImages carries no ``imageScanStatus``/``imageScanFindingsSummary``.
- ElastiCache: replication groups (cluster mode, shards, replicas, Multi-AZ, at-rest/in-transit
  encryption, auth token, snapshot retention) and subnet groups work. Node AZs are reported as
  us-east-1a/b whatever the region; EngineVersion is not reported on the group; member clusters
  are not visible through DescribeCacheClusters; cache parameter groups (eviction policy,
  maxmemory, AOF) cannot be created, so 1.1.3's eviction/AOF/memory bullets have no AWS-side
  state here (the node type cache.r7g.xlarge implies ~26 GiB per shard).
- RDS: Multi-AZ, encryption, backups (an automated snapshot appears by itself), read replicas,
  parameter groups and manual snapshots work. Performance Insights is not reported.
- Secrets Manager: rotation needs the rotation Lambda to exist and be invocable; the seed
  switches moto's Lambda to its docker-less "simple" backend (``/moto-api/config``), creates the
  function and rotates each secret, then finishes the rotation the way a rotation Lambda does
  (PutSecretValue AWSPENDING, UpdateSecretVersionStage AWSCURRENT).
- ACM: RequestCertificate stays PENDING_VALIDATION for ``MOTO_ACM_VALIDATION_WAIT`` seconds; the
  server runs with 0, so the wildcard certificate reads back ISSUED. ``InUseBy`` stays empty.
- S3: everything seeded reads back. moto applies bucket policies to object calls, and treats
  the deny-insecure-transport statement as matching (the endpoint is plain http), so
  GetObject/PutObject on the locked-down buckets answer 403; bucket-level reads work. Each
  bucket's README.txt object is written before its policy.
- CloudTrail: trails, StartLogging and GetTrailStatus work; LookupEvents answers HTTP 500.
- EC2/ELBv2/IAM/KMS/Logs/CloudWatch alarms/STS: what the seed creates reads back as written.
"""

from __future__ import annotations

import io
import json
import secrets
import sys
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from pytest_vcci.sandbox.base import Component, SandboxError, free_port, port_open, wait_until

ACCOUNT_ID = "123456789012"  # moto's default account
ACCESS_KEY_ID = "AKIAVCCISANDBOX00001"
SECRET_ENV = "VCCI_SANDBOX_AWS_SECRET_ACCESS_KEY"
RELEASE = "2.0.0"
GIT_SHA = "4f2c9e1"
SCAN_ANSWERS_PER_IMAGE = 6

BUCKETS = MappingProxyType(
    {
        "data": "vcci-staging-data",
        "reports": "vcci-staging-reports",
        "backups": "vcci-staging-backups",
    }
)
TERRAFORM_STATE_BUCKET = "vcci-staging-terraform-state"
CLOUDTRAIL_BUCKET = "vcci-staging-cloudtrail"
DB_INSTANCE = "vcci-staging-db"
DB_REPLICAS = ("vcci-staging-db-replica-1", "vcci-staging-db-replica-2")
REDIS_GROUP = "vcci-staging-redis"
SECRETS = (
    "vcci/staging/database",
    "vcci/staging/redis",
    "vcci/staging/api-keys/ecoinvent",
    "vcci/staging/api-keys/desnz",
    "vcci/staging/api-keys/epa",
    "vcci/staging/jwt",
)
# Emission factor provider -> the secret holding its API key (4.1.3).
API_KEY_SECRETS = MappingProxyType(
    {provider: f"vcci/staging/api-keys/{provider}" for provider in ("ecoinvent", "desnz", "epa")}
)
# Provider keys expire (the provider issues them for a year); the secret's tag says when (4.1.3).
EXPIRES_TAG = "expires-at"
API_KEY_VALID_DAYS = 365
REPOSITORIES = ("vcci-backend", "vcci-frontend", "vcci-worker")
LOAD_BALANCER = "vcci-staging-alb"
TARGET_GROUP = "vcci-backend-tg"
CERTIFICATE_DOMAIN = "*.vcci.greenlang.io"
TRAIL = "vcci-staging-trail"
VPC_NAME = "vcci-staging"
NAMESPACE = "vcci-staging"
SECURITY_GROUPS = MappingProxyType(
    {
        "cluster": "vcci-staging-cluster-sg",
        "alb": "vcci-staging-alb-sg",
        "db": "vcci-staging-db-sg",
        "redis": "vcci-staging-redis-sg",
    }
)
IRSA_ROLES = MappingProxyType(
    {  # role -> Kubernetes service account it is bound to
        "vcci-backend-role": "vcci-backend",
        "vcci-worker-role": "vcci-worker",
        "vcci-frontend-role": "vcci-frontend",
        "vcci-external-secrets-role": "external-secrets",
    }
)
# The audit trail's log group: 2557 days is CloudWatch's 7-year retention (6.3.1, SOC 2).
AUDIT_LOG_GROUP = "/vcci/staging/audit"
AUDIT_RETENTION_DAYS = 2557
LOG_GROUPS = (
    "/vcci/staging/application",
    "/aws/eks/vcci-staging/cluster",
    f"/aws/rds/instance/{DB_INSTANCE}/postgresql",
)

# Named ways to seed a staging that fails a check, for demos and negative tests.
BREAKAGES: Mapping[str, str] = MappingProxyType(
    {
        "unversioned-bucket": "vcci-staging-reports without versioning (1.1.4, 8.1.2)",
        "unencrypted-bucket": "vcci-staging-backups without default encryption (1.1.4, 6.2.1)",
        "public-bucket": "vcci-staging-reports without a public access block (1.1.4)",
        "open-db-sg": "db security group open to 0.0.0.0/0 on 5432 (1.2.4)",
        "public-db": "vcci-staging-db publicly accessible, 7-day backups, single-AZ (1.1.2, 2.2.4)",
        "no-rotation": "secrets without rotation (1.2.2)",
        "vulnerable-images": "moto's default HIGH CVE left on every image scan (3.1.2)",
        "trail-stopped": "CloudTrail trail created but not logging (1.2.3)",
        "no-replicas": "no RDS read replicas (1.1.2)",
        "wildcard-iam": "vcci-backend-role allowed Action * on Resource * (1.2.3)",
    }
)


@dataclass
class AwsComponent(Component):
    """moto server on 127.0.0.1, seeded with the GL-VCCI staging (see module docstring)."""

    name: str = "aws"
    port: int = 0
    region: str = "eu-west-1"
    replica_region: str = "eu-central-1"
    broken: frozenset[str] = frozenset()
    random_seed: int = 1337
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = field(
        default_factory=lambda: secrets.token_urlsafe(30)[:40], repr=False
    )
    startup_seconds: float = 0.0
    seed_seconds: float = 0.0
    seed_timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.broken) - set(BREAKAGES))
        if unknown:
            raise SandboxError(
                f"unknown AWS breakage {unknown[0]!r} (known: {', '.join(BREAKAGES)})"
            )

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = self.port or free_port()
        began = time.monotonic()
        env = {
            "MOTO_ACM_VALIDATION_WAIT": "0",  # certificates read back ISSUED at once
            "MOTO_RECORDER_FILEPATH": str(self.workdir / "logs" / "moto-recording.jsonl"),
        }
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        proc = self.spawn(argv, "moto.log", env=env)
        wait_until(
            lambda: port_open(self.port) and self._api_ok(),
            "moto server",
            timeout=60,
            proc=proc,
            log=self.log_path("moto.log"),
        )
        self.startup_seconds = time.monotonic() - began
        began = time.monotonic()
        seeder = self._seeder()
        seed_staging(seeder)
        self.seed_timings = seeder.timings
        self.seed_seconds = time.monotonic() - began

    def _api_ok(self) -> bool:
        import requests

        return requests.get(f"{self.endpoint_url}/moto-api/data.json", timeout=2).ok

    def _seeder(self) -> Seeder:
        return Seeder(
            endpoint_url=self.endpoint_url,
            region=self.region,
            replica_region=self.replica_region,
            broken=frozenset(self.broken),
            random_seed=self.random_seed,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )

    def env_tables(self) -> dict[str, dict[str, Any]]:
        return {
            "aws": {
                "region": self.region,
                "endpoint_url": self.endpoint_url,
                "access_key_id": self.access_key_id,
                "secret_access_key": "${" + SECRET_ENV + "}",
            }
        }

    def env_vars(self) -> dict[str, str]:
        return {SECRET_ENV: self.secret_access_key}

    def expect(self) -> dict[str, Any]:
        """Resource names the suites look for, for the environment file's [expect] table."""
        return {"aws": expected_resources(self.region, self.replica_region, self.broken)}


def expected_resources(
    region: str, replica_region: str, broken: frozenset[str] = frozenset()
) -> dict[str, Any]:
    return {
        "region": region,
        "replica_region": replica_region,
        "buckets": list(BUCKETS.values()),
        "terraform_state_bucket": TERRAFORM_STATE_BUCKET,
        "db_instance": DB_INSTANCE,
        "db_read_replicas": [] if "no-replicas" in broken else list(DB_REPLICAS),
        "redis_replication_group": REDIS_GROUP,
        "secrets": list(SECRETS),
        "api_key_secrets": dict(API_KEY_SECRETS),
        "expires_tag": EXPIRES_TAG,
        "ecr_repositories": list(REPOSITORIES),
        "image_tag": RELEASE,
        "load_balancer": LOAD_BALANCER,
        "target_group": TARGET_GROUP,
        "certificate_domain": CERTIFICATE_DOMAIN,
        "trail": TRAIL,
        "vpc": VPC_NAME,
        "security_groups": dict(SECURITY_GROUPS),
        "iam_roles": list(IRSA_ROLES),
        "log_groups": list(LOG_GROUPS),
        "audit_log_group": AUDIT_LOG_GROUP,
    }


# --- seeding ------------------------------------------------------------------------------


@dataclass
class Seeder:
    """Writes the staging into moto (the only place in pytest-vcci that writes to AWS APIs)."""

    endpoint_url: str
    region: str
    replica_region: str
    broken: frozenset[str]
    random_seed: int
    access_key_id: str
    secret_access_key: str = field(repr=False)
    ids: dict[str, str] = field(default_factory=dict)  # what later steps refer to
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[key] = boto3.client(
                service,
                region_name=key[1],
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                config=Config(
                    retries={"total_max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                ),
            )
        return self._clients[key]

    def moto_api(self, path: str, body: Any = None) -> None:
        import requests

        response = requests.post(f"{self.endpoint_url}/moto-api/{path}", json=body, timeout=10)
        if not response.ok:
            raise SandboxError(f"moto /moto-api/{path}: HTTP {response.status_code}")

    def arn(self, service: str, resource: str, region: str | None = None) -> str:
        region = "" if service in {"iam", "s3"} else (region or self.region)
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"

    def secret_value(self) -> str:
        return secrets.token_urlsafe(24)


def seed_staging(seed: Seeder) -> None:
    """Every step, in an order where each finds what it refers to."""
    seed.moto_api(f"seed?a={seed.random_seed}")
    seed.moto_api("config", {"lambda": {"use_docker": False}})
    for step in (
        seed_kms,
        seed_network,
        seed_iam,
        seed_s3,
        seed_rds,
        seed_elasticache,
        seed_secrets,
        seed_ecr,
        seed_load_balancer,
        seed_cloudtrail,
        seed_observability,
    ):
        began = time.monotonic()
        step(seed)
        seed.timings[step.__name__.removeprefix("seed_")] = round(time.monotonic() - began, 3)


def _tags(**tags: str) -> list[dict[str, str]]:
    base = {"Environment": "staging", "Project": "gl-vcci", "ManagedBy": "terraform", **tags}
    return [{"Key": k, "Value": v} for k, v in base.items()]


def seed_kms(seed: Seeder) -> None:
    for region in (seed.region, seed.replica_region):
        kms = seed.client("kms", region)
        key = kms.create_key(
            Description="GL-VCCI staging data key",
            Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags()],
        )["KeyMetadata"]
        kms.enable_key_rotation(KeyId=key["KeyId"])
        kms.create_alias(AliasName="alias/vcci-staging", TargetKeyId=key["KeyId"])
        seed.ids[f"kms:{region}"] = key["Arn"]


# --- network ------------------------------------------------------------------------------


def seed_network(seed: Seeder) -> None:
    ec2 = seed.client("ec2")
    vpc = ec2.create_vpc(
        CidrBlock="10.40.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags(Name=VPC_NAME)}],
    )["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    seed.ids["vpc"] = vpc
    for index, zone in enumerate("abc"):
        az = f"{seed.region}{zone}"
        seed.ids[f"private:{zone}"] = _subnet(ec2, vpc, f"10.40.{index * 16}.0/20", az, "private")
        seed.ids[f"public:{zone}"] = _subnet(ec2, vpc, f"10.40.{200 + index}.0/24", az, "public")
    _routes(seed, ec2, vpc)
    _security_groups(seed, ec2, vpc)
    _worker_nodes(seed, ec2)


def _subnet(ec2: Any, vpc: str, cidr: str, az: str, tier: str) -> str:
    role = "internal-elb" if tier == "private" else "elb"
    tags = _tags(Name=f"{VPC_NAME}-{tier}-{az}", Tier=tier, **{f"kubernetes.io/role/{role}": "1"})
    subnet: str = ec2.create_subnet(
        VpcId=vpc,
        CidrBlock=cidr,
        AvailabilityZone=az,
        TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}],
    )["Subnet"]["SubnetId"]
    if tier == "public":
        ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    return subnet


def _routes(seed: Seeder, ec2: Any, vpc: str) -> None:
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(
        SubnetId=seed.ids["public:a"],
        AllocationId=eip,
    )["NatGateway"]["NatGatewayId"]
    private = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=private, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    for zone in "abc":
        ec2.associate_route_table(RouteTableId=public, SubnetId=seed.ids[f"public:{zone}"])
        ec2.associate_route_table(RouteTableId=private, SubnetId=seed.ids[f"private:{zone}"])


def _security_groups(seed: Seeder, ec2: Any, vpc: str) -> None:
    groups = {}
    for role, name in SECURITY_GROUPS.items():
        groups[role] = ec2.create_security_group(
            GroupName=name,
            Description=f"GL-VCCI staging {role}",
            VpcId=vpc,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(Name=name)}],
        )["GroupId"]
        seed.ids[f"sg:{role}"] = groups[role]
    _ingress(ec2, groups["alb"], 443, cidr="0.0.0.0/0", why="HTTPS from the internet")
    _ingress(ec2, groups["cluster"], 8000, group=groups["alb"], why="ALB to backend pods")
    _ingress(ec2, groups["cluster"], 443, group=groups["cluster"], why="node to node")
    _ingress(ec2, groups["db"], 5432, group=groups["cluster"], why="PostgreSQL from the cluster")
    _ingress(ec2, groups["redis"], 6379, group=groups["cluster"], why="Redis from the cluster")
    if "open-db-sg" in seed.broken:
        _ingress(ec2, groups["db"], 5432, cidr="0.0.0.0/0", why="temporary debugging")


def _ingress(
    ec2: Any,
    group_id: str,
    port: int,
    *,
    cidr: str | None = None,
    group: str | None = None,
    why: str,
) -> None:
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if cidr:
        permission["IpRanges"] = [{"CidrIp": cidr, "Description": why}]
    if group:
        permission["UserIdGroupPairs"] = [{"GroupId": group, "Description": why}]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission])


def _worker_nodes(seed: Seeder, ec2: Any) -> None:
    """One EKS worker node per AZ, in private subnets, without public IPs (1.2.4)."""
    for zone in "abc":
        ec2.run_instances(
            ImageId="ami-0c1a7f89451184c8b",
            MinCount=1,
            MaxCount=1,
            InstanceType="m6i.2xlarge",
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "SubnetId": seed.ids[f"private:{zone}"],
                    "AssociatePublicIpAddress": False,
                    "Groups": [seed.ids["sg:cluster"]],
                }
            ],
            MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": _tags(
                        Name=f"vcci-staging-node-{zone}",
                        **{"eks:cluster-name": "vcci-staging", "eks:nodegroup-name": "general"},
                    ),
                }
            ],
        )


# --- IAM ----------------------------------------------------------------------------------


def seed_iam(seed: Seeder) -> None:
    iam = seed.client("iam")
    issuer = f"oidc.eks.{seed.region}.amazonaws.com/id/5C3E8F1A9B7D4E2F6A1B0C9D8E7F6A5B"
    provider = iam.create_open_id_connect_provider(
        Url=f"https://{issuer}",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
        Tags=_tags(),
    )["OpenIDConnectProviderArn"]
    for role, service_account in IRSA_ROLES.items():
        trust = _irsa_trust(provider, issuer, service_account)
        iam.create_role(
            RoleName=role,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"IRSA role for {NAMESPACE}/{service_account}",
            MaxSessionDuration=3600,
            Tags=_tags(),
        )
        iam.put_role_policy(
            RoleName=role,
            PolicyName=f"{role}-access",
            PolicyDocument=json.dumps(_role_policy(seed, role)),
        )
    _service_role(iam, "vcci-secrets-rotation-role", "lambda.amazonaws.com")
    _service_role(iam, "vcci-s3-replication-role", "s3.amazonaws.com")


def _irsa_trust(provider: str, issuer: str, service_account: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{NAMESPACE}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def _role_policy(seed: Seeder, role: str) -> dict[str, Any]:
    if role == "vcci-backend-role" and "wildcard-iam" in seed.broken:
        return {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
    data = [f"arn:aws:s3:::{BUCKETS['data']}/*", f"arn:aws:s3:::{BUCKETS['reports']}/*"]
    secret_arn = seed.arn("secretsmanager", "secret:vcci/staging/*")
    statements: dict[str, list[dict[str, Any]]] = {
        "vcci-backend-role": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": data},
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": seed.ids[f"kms:{seed.region}"],
            },
        ],
        "vcci-worker-role": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": data},
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": seed.ids[f"kms:{seed.region}"],
            },
        ],
        "vcci-frontend-role": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{BUCKETS['reports']}/*"],
            },
        ],
        "vcci-external-secrets-role": [
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": secret_arn,
            },
        ],
    }
    return {"Version": "2012-10-17", "Statement": statements[role]}


def _service_role(iam: Any, name: str, service: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Tags=_tags())


# --- S3 -----------------------------------------------------------------------------------


def seed_s3(seed: Seeder) -> None:
    s3 = seed.client("s3")
    for bucket in BUCKETS.values():
        replica = f"{bucket}-replica-{seed.replica_region}"
        _create_bucket(seed.client("s3", seed.replica_region), replica, seed.replica_region)
        _versioning(seed.client("s3", seed.replica_region), replica)
        _create_bucket(s3, bucket, seed.region)
        # Before the policy: moto applies the deny-insecure-transport policy to object calls.
        s3.put_object(Bucket=bucket, Key="README.txt", Body=f"GL-VCCI {bucket}\n".encode())
        _configure_bucket(seed, s3, bucket, replica)
    _create_bucket(s3, TERRAFORM_STATE_BUCKET, seed.region)
    _versioning(s3, TERRAFORM_STATE_BUCKET)
    _encryption(s3, TERRAFORM_STATE_BUCKET, "AES256", None)
    _lock_down(s3, TERRAFORM_STATE_BUCKET)
    _create_bucket(s3, CLOUDTRAIL_BUCKET, seed.region)
    _lock_down(s3, CLOUDTRAIL_BUCKET)


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags()})


def _configure_bucket(seed: Seeder, s3: Any, bucket: str, replica: str) -> None:
    broken = seed.broken
    if not (bucket == BUCKETS["reports"] and "unversioned-bucket" in broken):
        _versioning(s3, bucket)
        _replication(seed, s3, bucket, replica)
    if not (bucket == BUCKETS["backups"] and "unencrypted-bucket" in broken):
        _encryption(s3, bucket, "aws:kms", seed.ids[f"kms:{seed.region}"])
    _lifecycle(s3, bucket)
    if not (bucket == BUCKETS["reports"] and "public-bucket" in broken):
        _lock_down(s3, bucket)


def _versioning(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def _encryption(s3: Any, bucket: str, algorithm: str, key: str | None) -> None:
    default: dict[str, str] = {"SSEAlgorithm": algorithm}
    if key:
        default["KMSMasterKeyID"] = key
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bool(key)}
            ]
        },
    )


def _lifecycle(s3: Any, bucket: str) -> None:
    rules = [
        {
            "ID": "expire-noncurrent-versions-30d",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        },
        {
            "ID": "abort-incomplete-uploads-7d",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
        {
            "ID": "archive-after-90d",
            "Status": "Enabled",
            "Filter": {"Prefix": "archive/"},
            "Transitions": [
                {"Days": 90, "StorageClass": "STANDARD_IA"},
                {"Days": 365, "StorageClass": "GLACIER"},
            ],
        },
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def _replication(seed: Seeder, s3: Any, bucket: str, replica: str) -> None:
    s3.put_bucket_replication(
        Bucket=bucket,
        ReplicationConfiguration={
            "Role": seed.arn("iam", "role/vcci-s3-replication-role"),
            "Rules": [
                {
                    "ID": f"dr-to-{seed.replica_region}",
                    "Priority": 1,
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "DeleteMarkerReplication": {"Status": "Enabled"},
                    "Destination": {
                        "Bucket": f"arn:aws:s3:::{replica}",
                        "StorageClass": "STANDARD_IA",
                        "EncryptionConfiguration": {
                            "ReplicaKmsKeyID": seed.ids[f"kms:{seed.replica_region}"]
                        },
                    },
                    "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
                }
            ],
        },
    )


def _lock_down(s3: Any, bucket: str) -> None:
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


# --- RDS ----------------------------------------------------------------------------------


def seed_rds(seed: Seeder) -> None:
    rds = seed.client("rds")
    rds.create_db_subnet_group(
        DBSubnetGroupName=DB_INSTANCE,
        DBSubnetGroupDescription="GL-VCCI staging private subnets",
        SubnetIds=[seed.ids[f"private:{z}"] for z in "abc"],
        Tags=_tags(),
    )
    _parameter_group(rds)
    public = "public-db" in seed.broken
    rds.create_db_instance(
        DBInstanceIdentifier=DB_INSTANCE,
        DBInstanceClass="db.r6g.xlarge",
        Engine="postgres",
        EngineVersion="15.5",
        DBName="vcci",
        MasterUsername="vcci_admin",
        MasterUserPassword=seed.secret_value(),
        AllocatedStorage=500,
        MaxAllocatedStorage=1000,
        StorageType="gp3",
        MultiAZ=not public,
        StorageEncrypted=True,
        KmsKeyId=seed.ids[f"kms:{seed.region}"],
        BackupRetentionPeriod=7 if public else 30,
        PreferredBackupWindow="02:00-03:00",
        PreferredMaintenanceWindow="sun:04:00-sun:05:00",
        PubliclyAccessible=public,
        DBSubnetGroupName=DB_INSTANCE,
        VpcSecurityGroupIds=[seed.ids["sg:db"]],
        DBParameterGroupName="vcci-staging-postgres15",
        EnableCloudwatchLogsExports=["postgresql", "upgrade"],
        EnablePerformanceInsights=True,
        MonitoringInterval=60,
        MonitoringRoleArn=seed.arn("iam", "role/rds-monitoring-role"),
        DeletionProtection=True,
        CopyTagsToSnapshot=True,
        AutoMinorVersionUpgrade=True,
        Tags=_tags(Name=DB_INSTANCE),
    )
    if "no-replicas" not in seed.broken:
        for replica, zone in zip(DB_REPLICAS, "bc", strict=True):
            rds.create_db_instance_read_replica(
                DBInstanceIdentifier=replica,
                SourceDBInstanceIdentifier=DB_INSTANCE,
                DBInstanceClass="db.r6g.xlarge",
                AvailabilityZone=f"{seed.region}{zone}",
                PubliclyAccessible=False,
                Tags=_tags(Name=replica),
            )
    rds.create_db_snapshot(
        DBSnapshotIdentifier=f"{DB_INSTANCE}-pre-release-{RELEASE}".replace(".", "-"),
        DBInstanceIdentifier=DB_INSTANCE,
        Tags=_tags(),
    )


def _parameter_group(rds: Any) -> None:
    rds.create_db_parameter_group(
        DBParameterGroupName="vcci-staging-postgres15",
        DBParameterGroupFamily="postgres15",
        Description="GL-VCCI staging PostgreSQL 15",
        Tags=_tags(),
    )
    parameters = {  # why: 2.2.3 slow query log > 1 s; TLS only; pg_stat_statements for 7.1.2
        "log_min_duration_statement": "1000",
        "rds.force_ssl": "1",
        "shared_preload_libraries": "pg_stat_statements",
        "max_connections": "500",
        "autovacuum_vacuum_scale_factor": "0.05",
    }
    rds.modify_db_parameter_group(
        DBParameterGroupName="vcci-staging-postgres15",
        Parameters=[
            {"ParameterName": k, "ParameterValue": v, "ApplyMethod": "pending-reboot"}
            for k, v in parameters.items()
        ],
    )


# --- ElastiCache --------------------------------------------------------------------------


def seed_elasticache(seed: Seeder) -> None:
    cache = seed.client("elasticache")
    cache.create_cache_subnet_group(
        CacheSubnetGroupName=REDIS_GROUP,
        CacheSubnetGroupDescription="GL-VCCI staging Redis",
        SubnetIds=[seed.ids[f"private:{z}"] for z in "abc"],
    )
    cache.create_replication_group(
        ReplicationGroupId=REDIS_GROUP,
        ReplicationGroupDescription="GL-VCCI staging Redis 7",
        Engine="redis",
        EngineVersion="7.1",
        CacheNodeType="cache.r7g.xlarge",
        NumNodeGroups=3,
        ReplicasPerNodeGroup=1,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        ClusterMode="enabled",
        AtRestEncryptionEnabled=True,
        TransitEncryptionEnabled=True,
        AuthToken=seed.secret_value(),
        KmsKeyId=seed.ids[f"kms:{seed.region}"],
        CacheSubnetGroupName=REDIS_GROUP,
        SecurityGroupIds=[seed.ids["sg:redis"]],
        CacheParameterGroupName="default.redis7.cluster.on",
        SnapshotRetentionLimit=7,
        SnapshotWindow="03:00-04:00",
        Port=6379,
        Tags=_tags(),
    )


# --- Secrets Manager ----------------------------------------------------------------------


def seed_secrets(seed: Seeder) -> None:
    rotation = None if "no-rotation" in seed.broken else _rotation_lambda(seed)
    manager = seed.client("secretsmanager")
    expires = (datetime.now(UTC) + timedelta(days=API_KEY_VALID_DAYS)).date().isoformat()
    for name in SECRETS:
        tags = _tags(**{EXPIRES_TAG: expires}) if name in API_KEY_SECRETS.values() else _tags()
        manager.create_secret(
            Name=name,
            Description=f"GL-VCCI staging {name.rsplit('/', 1)[-1]}",
            SecretString=json.dumps({"value": seed.secret_value()}),
            KmsKeyId="alias/vcci-staging",
            Tags=tags,
        )
        if rotation:
            _rotate(seed, manager, name, rotation)


def _rotation_lambda(seed: Seeder) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rotate.py", "def handler(event, context):\n    return None\n")
    function = seed.client("lambda").create_function(
        FunctionName="vcci-staging-secrets-rotation",
        Runtime="python3.11",
        Role=seed.arn("iam", "role/vcci-secrets-rotation-role"),
        Handler="rotate.handler",
        Code={"ZipFile": archive.getvalue()},
        Timeout=30,
        Tags={"Environment": "staging"},
    )
    return str(function["FunctionArn"])


def _rotate(seed: Seeder, manager: Any, name: str, function_arn: str) -> None:
    """RotateSecret, then what the rotation Lambda's create/finish steps would do."""
    days = 30 if name.endswith(("database", "redis", "jwt")) else 90
    pending = manager.rotate_secret(
        SecretId=name,
        RotationLambdaARN=function_arn,
        RotationRules={"AutomaticallyAfterDays": days},
    )["VersionId"]
    current = next(
        v
        for v, stages in manager.describe_secret(SecretId=name)["VersionIdsToStages"].items()
        if "AWSCURRENT" in stages
    )
    manager.put_secret_value(
        SecretId=name,
        ClientRequestToken=pending,
        SecretString=json.dumps({"value": seed.secret_value()}),
        VersionStages=["AWSPENDING"],
    )
    manager.update_secret_version_stage(
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=pending,
        RemoveFromVersionId=current,
    )


# --- ECR ----------------------------------------------------------------------------------


def seed_ecr(seed: Seeder) -> None:
    ecr = seed.client("ecr")
    answers: list[dict[str, Any]] = []
    for repository in REPOSITORIES:
        ecr.create_repository(
            repositoryName=repository,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={
                "encryptionType": "KMS",
                "kmsKey": seed.ids[f"kms:{seed.region}"],
            },
            tags=_tags(),
        )
        digest = _push_image(ecr, repository)
        _push_signature(ecr, repository, digest)
        # scanOnPush is not simulated by moto: start the scan a push would have started.
        ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
        seed.ids[f"image:{repository}"] = digest
        answers.extend([_clean_scan(repository, digest)] * SCAN_ANSWERS_PER_IMAGE)
    if "vulnerable-images" not in seed.broken:
        seed.moto_api(
            "static/ecr/scan-finding-results",
            {"results": answers, "region": seed.region, "account_id": ACCOUNT_ID},
        )


def _manifest(config: str, layers: list[tuple[str, str]], media_type: str) -> str:
    from hashlib import sha256

    def blob(kind: str, text: str, size: int) -> dict[str, Any]:
        return {
            "mediaType": kind,
            "size": size,
            "digest": "sha256:" + sha256(text.encode()).hexdigest(),
        }

    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": blob("application/vnd.oci.image.config.v1+json", config, 7023),
        "layers": [blob(kind, text, 1024 * (i + 1) ** 3) for i, (kind, text) in enumerate(layers)],
    }
    return json.dumps(document, sort_keys=True)


def _push_image(ecr: Any, repository: str) -> str:
    layer = "application/vnd.oci.image.layer.v1.tar+gzip"
    manifest = _manifest(
        f"{repository}:{RELEASE}:{GIT_SHA}",
        [(layer, f"base:python:3.11-slim:{repository}"), (layer, f"app:{repository}:{GIT_SHA}")],
        "application/vnd.oci.image.manifest.v1+json",
    )
    image = ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageTag=RELEASE,
        imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
    )
    digest: str = image["image"]["imageId"]["imageDigest"]
    ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageTag=f"git-{GIT_SHA}",
        imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
    )
    return digest


def _push_signature(ecr: Any, repository: str, digest: str) -> None:
    """A cosign signature: an OCI manifest tagged ``sha256-<digest>.sig`` (1.2.5)."""
    manifest = _manifest(
        f"cosign:{digest}",
        [("application/vnd.dev.cosign.simplesigning.v1+json", f"sig:{digest}")],
        "application/vnd.oci.image.manifest.v1+json",
    )
    ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest,
        imageTag=digest.replace(":", "-") + ".sig",
        imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
    )


def _clean_scan(repository: str, digest: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    findings = [
        _finding("SANDBOX-MEDIUM-0001", "MEDIUM", "libexpat1", "2.5.0-1"),
        _finding("SANDBOX-LOW-0001", "LOW", "tar", "1.34+dfsg-1.2"),
        _finding("SANDBOX-LOW-0002", "LOW", "coreutils", "9.1-1"),
    ]
    return {
        "registryId": ACCOUNT_ID,
        "repositoryName": repository,
        "imageId": {"imageDigest": digest, "imageTag": RELEASE},
        "imageScanStatus": {
            "status": "COMPLETE",
            "description": "The scan was completed successfully.",
        },
        "imageScanFindings": {
            "imageScanCompletedAt": now,
            "vulnerabilitySourceUpdatedAt": now,
            "findings": findings,
            "findingSeverityCounts": {"MEDIUM": 1, "LOW": 2},
        },
    }


def _finding(name: str, severity: str, package: str, version: str) -> dict[str, Any]:
    return {
        "name": name,
        "severity": severity,
        "uri": "https://example.invalid/" + name,
        "attributes": [
            {"key": "package_name", "value": package},
            {"key": "package_version", "value": version},
        ],
    }


# --- load balancer ------------------------------------------------------------------------


def seed_load_balancer(seed: Seeder) -> None:
    certificate = seed.client("acm").request_certificate(
        DomainName=CERTIFICATE_DOMAIN,
        SubjectAlternativeNames=["vcci.greenlang.io"],
        ValidationMethod="DNS",
        KeyAlgorithm="EC_prime256v1",
        Tags=_tags(),
    )["CertificateArn"]
    elb = seed.client("elbv2")
    balancer = elb.create_load_balancer(
        Name=LOAD_BALANCER,
        Subnets=[seed.ids[f"public:{z}"] for z in "abc"],
        SecurityGroups=[seed.ids["sg:alb"]],
        Scheme="internet-facing",
        Type="application",
        IpAddressType="ipv4",
        Tags=_tags(),
    )["LoadBalancers"][0]["LoadBalancerArn"]
    elb.modify_load_balancer_attributes(
        LoadBalancerArn=balancer,
        Attributes=[
            {"Key": "load_balancing.cross_zone.enabled", "Value": "true"},
            {"Key": "deletion_protection.enabled", "Value": "true"},
            {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
            {"Key": "idle_timeout.timeout_seconds", "Value": "60"},
        ],
    )
    group = _target_group(seed, elb)
    elb.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTPS",
        Port=443,
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
        Certificates=[{"CertificateArn": certificate}],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    elb.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "redirect",
                "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
            }
        ],
    )


def _target_group(seed: Seeder, elb: Any) -> str:
    group: str = elb.create_target_group(
        Name=TARGET_GROUP,
        Protocol="HTTP",
        Port=8000,
        VpcId=seed.ids["vpc"],
        TargetType="ip",
        HealthCheckProtocol="HTTP",
        HealthCheckPath="/health/ready",
        HealthCheckPort="8000",
        HealthCheckIntervalSeconds=15,
        HealthCheckTimeoutSeconds=5,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=3,
        Matcher={"HttpCode": "200"},
        Tags=_tags(),
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=group,
        Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "300"},
            {"Key": "load_balancing.cross_zone.enabled", "Value": "true"},
        ],
    )
    elb.register_targets(
        TargetGroupArn=group,
        Targets=[{"Id": f"10.40.{i * 16}.{10 + i}", "Port": 8000} for i in range(3)],
    )
    return group


# --- audit and observability --------------------------------------------------------------


def seed_cloudtrail(seed: Seeder) -> None:
    trail = seed.client("cloudtrail")
    trail.create_trail(
        Name=TRAIL,
        S3BucketName=CLOUDTRAIL_BUCKET,
        IsMultiRegionTrail=True,
        IncludeGlobalServiceEvents=True,
        EnableLogFileValidation=True,
        KmsKeyId=seed.ids[f"kms:{seed.region}"],
        TagsList=_tags(),
    )
    if "trail-stopped" not in seed.broken:
        trail.start_logging(Name=TRAIL)


def seed_observability(seed: Seeder) -> None:
    logs = seed.client("logs")
    for group in LOG_GROUPS:
        logs.create_log_group(logGroupName=group, tags={"Environment": "staging"})
        logs.put_retention_policy(logGroupName=group, retentionInDays=90)
    logs.create_log_group(logGroupName=AUDIT_LOG_GROUP, tags={"Environment": "staging"})
    logs.put_retention_policy(logGroupName=AUDIT_LOG_GROUP, retentionInDays=AUDIT_RETENTION_DAYS)
    cloudwatch = seed.client("cloudwatch")
    for name, metric, threshold, operator in _db_alarms():
        cloudwatch.put_metric_alarm(
            AlarmName=f"{DB_INSTANCE}-{name}",
            Namespace="AWS/RDS",
            MetricName=metric,
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": DB_INSTANCE}],
            Statistic="Average",
            Period=60,
            EvaluationPeriods=5,
            Threshold=threshold,
            ComparisonOperator=operator,
            TreatMissingData="breaching",
            AlarmActions=[seed.arn("sns", "vcci-staging-alerts")],
            Tags=_tags(),
        )


def _db_alarms() -> list[tuple[str, str, float, str]]:
    """2.2.3 and 5.3.1 thresholds as CloudWatch alarms on the RDS instance."""
    return [
        ("cpu-high", "CPUUtilization", 80.0, "GreaterThanThreshold"),
        ("connections-high", "DatabaseConnections", 400.0, "GreaterThanThreshold"),  # 80% of 500
        ("replica-lag-high", "ReplicaLag", 5.0, "GreaterThanThreshold"),
        ("free-storage-low", "FreeStorageSpace", 100 * 1024**3, "LessThanThreshold"),  # 20% free
    ]
