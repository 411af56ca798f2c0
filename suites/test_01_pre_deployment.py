"""Section 1: pre-deployment preparation (infrastructure readiness, security and access).

Cluster facts come from the run's Kubernetes snapshot, database and cache facts from the servers
themselves, cloud facts from read-only AWS calls. Numbers are catalog thresholds, names come
from the environment file's [expect] table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

# Annotations that give a pod an IAM identity: EKS IRSA, GKE and Azure workload identity.
WORKLOAD_IDENTITY_ANNOTATIONS = (
    "eks.amazonaws.com/role-arn",
    "iam.gke.io/gcp-service-account",
    "azure.workload.identity/client-id",
)
WORKLOAD_KINDS = ("deployments", "statefulsets", "daemonsets", "cronjobs")
OPEN_CIDRS = ("0.0.0.0/0", "::/0")


# --- helpers ----------------------------------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...]:
    """'v1.29.6-eks-a5ec690' -> (1, 29, 6); '1.28' -> (1, 28)."""
    match = re.match(r"v?(\d+(?:\.\d+)*)", str(text).strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload.get("spec", {})
    if workload.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return dict(spec.get("template", {}).get("spec", {}))


def _containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec.get("containers") or []


def _workloads(cluster: Any, namespace: str) -> list[dict[str, Any]]:
    return [w for kind in WORKLOAD_KINDS for w in cluster.list(kind, namespace)]


def _some_workloads(cluster: Any, namespace: str, evidence: Any) -> list[dict[str, Any]]:
    """The namespace's workloads; undecided when there is none (a wrong or empty namespace)."""
    found = _workloads(cluster, namespace)
    if not found:
        kinds = ", ".join(WORKLOAD_KINDS)
        evidence.undecided(
            f"no workload ({kinds}) in the namespace", where=f"namespace {namespace}"
        )
    return found


def _client_error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _s3(cloud: Any, operation: str, bucket: str, *missing: str) -> Any:
    """An S3 bucket read; None when the answer is "this is not configured" (one of ``missing``)."""
    from botocore.exceptions import ClientError

    try:
        return cloud.call("s3", operation, Bucket=bucket)
    except ClientError as exc:
        if _client_error_code(exc) in missing:
            return None
        raise


def _cloud_or_skip(request: pytest.FixtureRequest, settings: Any, what: str) -> Any:
    """The cloud target when [aws] is configured; otherwise skip naming what needs it."""
    if settings.table("aws") is None:
        pytest.skip(f"[aws] is not configured in {settings.source}: {what} needs it")
    return request.getfixturevalue("cloud")


def _db_instance(cloud: Any, identifier: str) -> dict[str, Any]:
    found = cloud.call("rds", "describe_db_instances", DBInstanceIdentifier=identifier)
    return dict(found["DBInstances"][0])


def _replication_group(cloud: Any, group: str) -> dict[str, Any]:
    found = cloud.call("elasticache", "describe_replication_groups", ReplicationGroupId=group)
    return dict(found["ReplicationGroups"][0])


def _redis_nodes_config(cache: Any, pattern: str) -> dict[str, dict[str, str]]:
    """CONFIG GET on every cluster node, or on the standalone server when there is no cluster."""
    if cache.table.cluster_url:
        return {
            f"redis cluster node {k}": v for k, v in cache.cluster_nodes_config(pattern).items()
        }
    return {"redis standalone": cache.config_get(pattern)}


def _vpc_id(cloud: Any, vpc_name: str) -> str:
    vpcs = cloud.call("ec2", "describe_vpcs", Filters=[{"Name": "tag:Name", "Values": [vpc_name]}])
    if not vpcs["Vpcs"]:
        pytest.fail(f"vpc {vpc_name}: not found (no VPC tagged Name={vpc_name})", pytrace=False)
    return str(vpcs["Vpcs"][0]["VpcId"])


def _security_groups(cloud: Any, **filters: list[str]) -> list[dict[str, Any]]:
    flt = [{"Name": k.replace("_", "-"), "Values": v} for k, v in filters.items()]
    return cloud.paginate("ec2", "describe_security_groups", "SecurityGroups", Filters=flt)


def _ingress_sources(group: dict[str, Any]) -> list[tuple[str, str]]:
    """(ports, source) of every ingress rule: source is a CIDR or a security group ID."""
    rules = []
    for permission in group.get("IpPermissions", []):
        low, high = permission.get("FromPort"), permission.get("ToPort")
        ports = "all" if low is None else (str(low) if low == high else f"{low}-{high}")
        for cidr in permission.get("IpRanges", []):
            rules.append((ports, cidr["CidrIp"]))
        for cidr in permission.get("Ipv6Ranges", []):
            rules.append((ports, cidr["CidrIpv6"]))
        for pair in permission.get("UserIdGroupPairs", []):
            rules.append((ports, pair["GroupId"]))
    return rules


def _probe_unreachable(evidence: Any, expect: Any, name: str) -> None:
    """When the suite runs outside the cluster ([expect.network]), ``name`` must refuse TCP."""
    from pytest_vcci.targets.host import reachable
    from pytest_vcci.targets.tls import parse_endpoint

    network = expect("network", default={})
    endpoint = (network.get("private_endpoints") or {}).get(name)
    if not network.get("outside_cluster") or not endpoint:
        evidence.record(
            f"TCP probe of the {name} from where the suite runs",
            "not configured",
            "[expect.network] outside_cluster = true and private_endpoints",
        )
        return
    host, port = parse_endpoint(endpoint, default_port=0)
    is_open = reachable(host, port, timeout=3.0)
    evidence.check(
        f"{name} reachable from outside the cluster", is_open, False, not is_open, where=endpoint
    )


# --- 1.1.1 Kubernetes cluster -----------------------------------------------------------------


@pytest.mark.smoke("infrastructure", "cluster")
@pytest.mark.checklist("1.1.1")
def test_cluster_version(cluster, threshold, evidence):
    """The Kubernetes API server runs version 1.28 or later."""
    want = str(threshold("1.1.1", "min_version"))
    version = cluster.version()
    have = str(version.get("gitVersion", ""))
    evidence.check(
        "API server version",
        have,
        f">= {want}",
        _version_tuple(have)[:2] >= _version_tuple(want)[:2],
        where="cluster",
    )


@pytest.mark.checklist("1.1.1")
def test_ready_nodes_span_zones(cluster, threshold, evidence):
    """At least 3 Ready nodes, spread over at least 3 availability zones."""
    nodes = cluster.list("nodes")
    ready = [n for n in nodes if _ready(n)]
    zones = sorted(
        {n["metadata"].get("labels", {}).get("topology.kubernetes.io/zone", "") for n in ready}
        - {""}
    )
    min_nodes, min_zones = threshold("1.1.1", "min_nodes"), threshold("1.1.1", "min_zones")
    evidence.check(
        "Ready nodes",
        len(ready),
        f">= {min_nodes} (of {len(nodes)} nodes)",
        len(ready) >= min_nodes,
        where="cluster",
    )
    evidence.check(
        "zones of Ready nodes (topology.kubernetes.io/zone)",
        zones,
        f">= {min_zones} zones",
        len(zones) >= min_zones,
        where="cluster",
    )


@pytest.mark.checklist("1.1.1")
def test_cluster_autoscaler_bounds(cluster, threshold, evidence):
    """The cluster autoscaler runs with node-group bounds of at least min 3 and max 50 nodes."""
    from pytest_vcci.targets.kubernetes import ALL

    min_nodes, max_nodes = threshold("1.1.1", "min_nodes"), threshold("1.1.1", "max_nodes")
    autoscalers = [
        d
        for d in cluster.list("deployments", ALL)
        if any("cluster-autoscaler" in c.get("image", "") for c in _containers(_pod_spec(d)))
    ]
    evidence.require(
        "cluster-autoscaler Deployment",
        [_name(d) for d in autoscalers],
        "one running in the cluster",
        bool(autoscalers),
        where="cluster",
    )
    for deployment in autoscalers:
        where = f"deployment {deployment['metadata'].get('namespace')}/{_name(deployment)}"
        available = deployment.get("status", {}).get("availableReplicas", 0) or 0
        evidence.check("available replicas", available, ">= 1", available >= 1, where=where)
        args = [
            a
            for c in _containers(_pod_spec(deployment))
            for a in [*(c.get("command") or []), *(c.get("args") or [])]
        ]
        groups = [
            m.groups() for a in args for m in [re.fullmatch(r"--nodes=(\d+):(\d+):(.+)", a)] if m
        ]
        evidence.record("node groups (min:max:name)", [":".join(g) for g in groups], where=where)
        low = sum(int(g[0]) for g in groups)
        high = sum(int(g[1]) for g in groups)
        evidence.check(
            "minimum nodes over all node groups",
            low,
            f">= {min_nodes}",
            bool(groups) and low >= min_nodes,
            where=where,
        )
        evidence.check(
            "maximum nodes over all node groups",
            high,
            f">= {max_nodes}",
            bool(groups) and high >= max_nodes,
            where=where,
        )


@pytest.mark.checklist("1.1.1")
def test_node_labels(cluster, expect, evidence):
    """Every node carries the expected labels (zone, instance type, node pool)."""
    wanted = expect("kubernetes", "node_labels")
    nodes = cluster.list("nodes")
    if not nodes:
        evidence.undecided("no nodes listed: no labels to judge", where="cluster")
    for label in wanted:
        missing = [_name(n) for n in nodes if label not in n["metadata"].get("labels", {})]
        evidence.check(f"nodes without label {label}", missing, [], not missing, where="cluster")


@pytest.mark.checklist("1.1.1")
def test_node_taints(cluster, expect, evidence):
    """Each expected node taint (key=value:Effect) is set on at least one Ready node."""
    nodes = [n for n in cluster.list("nodes") if _ready(n)]
    for taint in expect("kubernetes", "node_taints"):
        carriers = [
            _name(n)
            for n in nodes
            if any(
                f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" == taint
                for t in n.get("spec", {}).get("taints") or []
            )
        ]
        evidence.check(
            f"Ready nodes tainted {taint}",
            carriers,
            "at least one",
            bool(carriers),
            where="cluster",
        )


# --- 1.1.2 PostgreSQL -------------------------------------------------------------------------


@pytest.mark.smoke("database", "connectivity")
@pytest.mark.checklist("1.1.2")
def test_postgres_version(db, threshold, evidence):
    """The database server runs PostgreSQL 15 or later."""
    want = int(threshold("1.1.2", "min_version"))
    have = db.server_version()
    evidence.check(
        "server_version",
        f"{have // 10000}.{have % 10000}",
        f">= {want}",
        have >= want * 10000,
        where=db.describe(),
    )


@pytest.mark.checklist("1.1.2")
def test_streaming_read_replicas(db, threshold, evidence):
    """At least 2 read replicas stream from the primary (pg_stat_replication)."""
    want = threshold("1.1.2", "min_read_replicas")
    rows = db.rows(
        "SELECT application_name, state, sync_state FROM pg_stat_replication",
        about="pg_stat_replication.state",
        needs="pg_read_all_stats",
    )
    streaming = [r["application_name"] for r in rows if r["state"] == "streaming"]
    evidence.check(
        "streaming replicas", streaming, f">= {want}", len(streaming) >= want, where=db.describe()
    )


@pytest.mark.checklist("1.1.2")
def test_rds_read_replicas(request, settings, expect, threshold, evidence):
    """The RDS instance has at least 2 read replicas, the ones the environment names."""
    cloud = _cloud_or_skip(request, settings, "the RDS read replica check")
    name = expect("aws", "db_instance")
    want = threshold("1.1.2", "min_read_replicas")
    have = _db_instance(cloud, name).get("ReadReplicaDBInstanceIdentifiers", [])
    named = expect("aws", "db_read_replicas", default=[])
    evidence.check("read replicas", have, f">= {want}", len(have) >= want, where=f"rds {name}")
    evidence.check(
        "expected read replicas present",
        sorted(set(named) - set(have)),
        [],
        set(named) <= set(have),
        where=f"rds {name}",
    )


@pytest.mark.checklist("1.1.2")
def test_rds_multi_az(request, settings, expect, evidence):
    """The RDS instance is a Multi-AZ deployment."""
    cloud = _cloud_or_skip(request, settings, "the RDS Multi-AZ check")
    name = expect("aws", "db_instance")
    multi_az = _db_instance(cloud, name).get("MultiAZ")
    evidence.check("MultiAZ", multi_az, True, multi_az is True, where=f"rds {name}")


@pytest.mark.checklist("1.1.2")
def test_rds_backup_retention(request, settings, expect, threshold, evidence):
    """Automated RDS backups are kept for at least 30 days."""
    cloud = _cloud_or_skip(request, settings, "the RDS backup check")
    name = expect("aws", "db_instance")
    want = threshold("1.1.2", "backup_retention_days")
    instance = _db_instance(cloud, name)
    have = instance.get("BackupRetentionPeriod", 0)
    evidence.check(
        "BackupRetentionPeriod (days)", have, f">= {want}", have >= want, where=f"rds {name}"
    )
    evidence.record(
        "PreferredBackupWindow", instance.get("PreferredBackupWindow"), where=f"rds {name}"
    )


@pytest.mark.checklist("1.1.2")
def test_rds_daily_automated_backup(request, settings, expect, threshold, evidence):
    """The newest automated RDS backup is at most a day old."""
    cloud = _cloud_or_skip(request, settings, "the RDS backup check")
    name = expect("aws", "db_instance")
    hours = threshold("1.1.2", "backup_interval_hours")
    snapshots = cloud.paginate(
        "rds",
        "describe_db_snapshots",
        "DBSnapshots",
        DBInstanceIdentifier=name,
        SnapshotType="automated",
    )
    times = [s["SnapshotCreateTime"] for s in snapshots if s.get("SnapshotCreateTime")]
    newest = max(times) if times else None
    age = (dt.datetime.now(dt.UTC) - newest).total_seconds() / 3600 if newest else None
    evidence.check(
        "age of the newest automated backup (hours)",
        round(age, 2) if age is not None else "no automated backup",
        f"<= {hours}",
        age is not None and age <= hours,
        where=f"rds {name}",
    )


@pytest.mark.checklist("1.1.2")
def test_rds_point_in_time_recovery(request, settings, expect, threshold, evidence):
    """Point-in-time recovery is on: the RDS instance reports a recent latest restorable time."""
    cloud = _cloud_or_skip(request, settings, "the RDS point-in-time recovery check")
    name = expect("aws", "db_instance")
    hours = threshold("1.1.2", "backup_interval_hours")
    restorable = _db_instance(cloud, name).get("LatestRestorableTime")
    age = (dt.datetime.now(dt.UTC) - restorable).total_seconds() / 3600 if restorable else None
    evidence.check(
        "LatestRestorableTime",
        restorable or "none (PITR off)",
        f"within the last {hours} h",
        age is not None and age <= hours,
        where=f"rds {name}",
    )


@pytest.mark.checklist("1.1.2")
def test_pgbouncer_answers(db, settings, evidence):
    """PgBouncer answers a query over TLS in front of the database."""
    pooler = db.pooler()
    if pooler is None:
        pytest.skip(f"[postgres].pgbouncer_dsn is not set in {settings.source}")
    row = pooler.rows("SELECT 1 AS answer, inet_server_port() AS server_port")[0]
    where = pooler.describe()
    evidence.check("SELECT 1", row["answer"], 1, row["answer"] == 1, where=where)
    tls = pooler.session_encrypted()
    evidence.check("TLS between client and pooler", tls, True, tls is True, where=where)
    evidence.record("port the database server answered on", row["server_port"], where=where)


# --- 1.1.3 Redis ------------------------------------------------------------------------------


@pytest.mark.smoke("cache", "Redis connectivity")
@pytest.mark.checklist("1.1.3")
def test_redis_version(cache, threshold, evidence):
    """Every Redis server runs Redis 7 or later."""
    want = int(threshold("1.1.3", "min_version"))
    versions = {"redis standalone": cache.info("server")["redis_version"]}
    if cache.table.cluster_url:
        versions.update(
            {
                f"redis cluster node {k}": v["redis_version"]
                for k, v in cache.cluster_nodes_info("server").items()
            }
        )
    for where, version in versions.items():
        evidence.check(
            "redis_version",
            version,
            f">= {want}",
            _version_tuple(version)[:1] >= (want,),
            where=where,
        )


@pytest.mark.checklist("1.1.3")
def test_redis_cluster_shards(cache, threshold, evidence):
    """Cluster mode is on with at least 3 shards, each with an online replica."""
    if not cache.table.cluster_url:
        pytest.skip("[redis].cluster_url is not set: the cluster checks need it")
    want = threshold("1.1.3", "min_shards")
    info = cache.cluster_info()
    evidence.check(
        "cluster_state",
        info.get("cluster_state"),
        "ok",
        info.get("cluster_state") == "ok",
        where="redis cluster",
    )
    shards = [s for s in cache.cluster_shards() if s.get("slots")]
    evidence.check(
        "shards serving slots",
        len(shards),
        f">= {want}",
        len(shards) >= want,
        where="redis cluster",
    )
    for shard in shards:
        nodes = shard["nodes"]
        master = next(
            (
                f"{n.get('ip')}:{n.get('port') or n.get('tls-port')}"
                for n in nodes
                if n.get("role") == "master"
            ),
            "?",
        )
        replicas = [n for n in nodes if n.get("role") == "replica" and n.get("health") == "online"]
        evidence.check(
            "online replicas",
            len(replicas),
            ">= 1",
            len(replicas) >= 1,
            where=f"redis shard of master {master}",
        )


@pytest.mark.checklist("1.1.3")
def test_redis_aof_persistence(cache, evidence):
    """AOF persistence is on (appendonly yes) on every Redis node."""
    for where, config in _redis_nodes_config(cache, "appendonly").items():
        value = config.get("appendonly")
        evidence.check("appendonly", value, "yes", value == "yes", where=where)


@pytest.mark.checklist("1.1.3")
def test_redis_eviction_policy(cache, threshold, evidence):
    """The eviction policy is allkeys-lru on every Redis node."""
    want = threshold("1.1.3", "eviction_policy")
    for where, config in _redis_nodes_config(cache, "maxmemory-policy").items():
        value = config.get("maxmemory-policy")
        evidence.check("maxmemory-policy", value, want, value == want, where=where)


@pytest.mark.checklist("1.1.3")
def test_redis_max_memory(cache, threshold, evidence):
    """Each Redis shard may use at least 16 GB (maxmemory)."""
    gigabytes = threshold("1.1.3", "min_memory_gb_per_shard")
    for where, config in _redis_nodes_config(cache, "maxmemory").items():
        value = int(config.get("maxmemory") or 0)
        evidence.check(
            "maxmemory (GiB)",
            round(value / 1024**3, 2),
            f">= {gigabytes} (0 means unlimited: no bound)",
            value >= gigabytes * 1024**3,
            where=where,
        )


@pytest.mark.checklist("1.1.3")
def test_elasticache_multi_az(request, settings, expect, threshold, evidence):
    """The ElastiCache replication group is Multi-AZ with failover, 3+ shards, replicas each."""
    cloud = _cloud_or_skip(request, settings, "the ElastiCache check")
    name = expect("aws", "redis_replication_group")
    want = threshold("1.1.3", "min_shards")
    group = _replication_group(cloud, name)
    where = f"elasticache {name}"
    evidence.check(
        "MultiAZ", group.get("MultiAZ"), "enabled", group.get("MultiAZ") == "enabled", where=where
    )
    evidence.check(
        "AutomaticFailover",
        group.get("AutomaticFailover"),
        "enabled",
        group.get("AutomaticFailover") == "enabled",
        where=where,
    )
    shards = group.get("NodeGroups", [])
    evidence.check(
        "shards (node groups)", len(shards), f">= {want}", len(shards) >= want, where=where
    )
    thin = [s["NodeGroupId"] for s in shards if len(s.get("NodeGroupMembers", [])) < 2]
    evidence.check("shards without a replica", thin, [], not thin, where=where)


# --- 1.1.4 object storage ---------------------------------------------------------------------


@pytest.mark.checklist("1.1.4")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_versioning(cloud, bucket, evidence):
    """Each bucket has versioning Enabled."""
    status = cloud.call("s3", "get_bucket_versioning", Bucket=bucket).get("Status", "never enabled")
    evidence.check("versioning", status, "Enabled", status == "Enabled", where=f"bucket {bucket}")


@pytest.mark.checklist("1.1.4")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_default_encryption(cloud, bucket, threshold, evidence):
    """Each bucket encrypts new objects by default (AES256 or aws:kms)."""
    allowed = threshold("1.1.4", "encryption_algorithms")
    found = _s3(
        cloud, "get_bucket_encryption", bucket, "ServerSideEncryptionConfigurationNotFoundError"
    )
    rules = (found or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    algorithms = [
        r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules
    ]
    evidence.check(
        "default encryption",
        algorithms or "none",
        f"one of {allowed}",
        bool(algorithms) and all(a in allowed for a in algorithms),
        where=f"bucket {bucket}",
    )


@pytest.mark.checklist("1.1.4")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_lifecycle_rules(cloud, bucket, evidence):
    """Each bucket has at least one enabled lifecycle rule."""
    found = _s3(cloud, "get_bucket_lifecycle_configuration", bucket, "NoSuchLifecycleConfiguration")
    enabled = [
        r.get("ID", "?") for r in (found or {}).get("Rules", []) if r.get("Status") == "Enabled"
    ]
    evidence.check(
        "enabled lifecycle rules",
        enabled or "none",
        "at least one",
        bool(enabled),
        where=f"bucket {bucket}",
    )


@pytest.mark.checklist("1.1.4")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_cross_region_replication(cloud, bucket, evidence):
    """Each bucket replicates to a bucket in another region."""
    found = _s3(cloud, "get_bucket_replication", bucket, "ReplicationConfigurationNotFoundError")
    rules = [
        r
        for r in (found or {}).get("ReplicationConfiguration", {}).get("Rules", [])
        if r.get("Status") == "Enabled"
    ]
    targets = [r.get("Destination", {}).get("Bucket", "").rsplit(":", 1)[-1] for r in rules]
    evidence.require(
        "enabled replication rules",
        targets or "none",
        "at least one",
        bool(targets),
        where=f"bucket {bucket}",
    )
    home = _s3(cloud, "get_bucket_location", bucket).get("LocationConstraint") or "us-east-1"
    for target in targets:
        region = _s3(cloud, "get_bucket_location", target).get("LocationConstraint") or "us-east-1"
        evidence.check(
            f"region of replica bucket {target}",
            region,
            f"not {home}",
            region != home,
            where=f"bucket {bucket}",
        )


@pytest.mark.checklist("1.1.4")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_public_access_block(cloud, bucket, evidence):
    """Each bucket blocks public access (all four public access block settings true)."""
    found = _s3(cloud, "get_public_access_block", bucket, "NoSuchPublicAccessBlockConfiguration")
    config = (found or {}).get("PublicAccessBlockConfiguration", {})
    keys = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    off = [k for k in keys if config.get(k) is not True]
    evidence.check(
        "public access block settings not true", off, [], not off, where=f"bucket {bucket}"
    )


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {}).get("Bool", {})
    value = condition.get("aws:SecureTransport")
    values = value if isinstance(value, list) else [value]
    return statement.get("Effect") == "Deny" and any(str(v).lower() == "false" for v in values)


@pytest.mark.checklist("1.1.4")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_policy_denies_plain_http(cloud, bucket, evidence):
    """Each bucket's policy denies requests that do not use TLS (aws:SecureTransport false)."""
    found = _s3(cloud, "get_bucket_policy", bucket, "NoSuchBucketPolicy")
    statements = json.loads(found["Policy"]).get("Statement", []) if found else []
    if isinstance(statements, dict):
        statements = [statements]
    denying = [s.get("Sid", "?") for s in statements if _denies_insecure_transport(s)]
    evidence.check(
        "statements denying aws:SecureTransport=false",
        denying or "none",
        "at least one",
        bool(denying),
        where=f"bucket {bucket}",
    )


# --- 1.1.5 load balancer ----------------------------------------------------------------------


def _load_balancer(cloud: Any, name: str) -> dict[str, Any]:
    found = cloud.call("elbv2", "describe_load_balancers", Names=[name])
    return dict(found["LoadBalancers"][0])


@pytest.mark.checklist("1.1.5")
def test_application_load_balancer(cloud, expect, evidence):
    """The load balancer is an internet-facing Application Load Balancer that is active."""
    name = expect("aws", "load_balancer")
    balancer = _load_balancer(cloud, name)
    where = f"load balancer {name}"
    evidence.check(
        "type",
        balancer.get("Type"),
        "application",
        balancer.get("Type") == "application",
        where=where,
    )
    state = balancer.get("State", {}).get("Code")
    evidence.check("state", state, "active", state == "active", where=where)
    evidence.record("scheme", balancer.get("Scheme"), where=where)


@pytest.mark.checklist("1.1.5")
def test_https_listener_certificate(cloud, expect, evidence):
    """The load balancer has an HTTPS listener with an issued certificate for the wildcard domain."""
    name, domain = expect("aws", "load_balancer"), expect("aws", "certificate_domain")
    arn = _load_balancer(cloud, name)["LoadBalancerArn"]
    listeners = cloud.paginate("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=arn)
    https = [x for x in listeners if x.get("Protocol") == "HTTPS"]
    evidence.require(
        "HTTPS listeners",
        [x.get("Port") for x in https],
        "at least one",
        bool(https),
        where=f"load balancer {name}",
    )
    for listener in https:
        where = f"load balancer {name} listener :{listener.get('Port')}"
        certificates = [c["CertificateArn"] for c in listener.get("Certificates") or []]
        evidence.check("certificates", len(certificates), ">= 1", bool(certificates), where=where)
        for certificate_arn in certificates:
            cert = cloud.call("acm", "describe_certificate", CertificateArn=certificate_arn)[
                "Certificate"
            ]
            names = [cert.get("DomainName"), *cert.get("SubjectAlternativeNames", [])]
            evidence.check(
                "certificate status",
                cert.get("Status"),
                "ISSUED",
                cert.get("Status") == "ISSUED",
                where=where,
            )
            evidence.check(
                "certificate names",
                sorted(set(filter(None, names))),
                f"include {domain}",
                domain in names,
                where=where,
            )


def _target_group(cloud: Any, name: str) -> dict[str, Any]:
    found = cloud.call("elbv2", "describe_target_groups", Names=[name])
    return dict(found["TargetGroups"][0])


def _attributes(found: dict[str, Any]) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in found.get("Attributes", [])}


@pytest.mark.checklist("1.1.5")
def test_target_group_health_check(cloud, expect, evidence):
    """The backend target group is attached to the load balancer and health-checks a path."""
    name, balancer = expect("aws", "target_group"), expect("aws", "load_balancer")
    group = _target_group(cloud, name)
    where = f"target group {name}"
    attached = [a.rsplit("/", 2)[-2] for a in group.get("LoadBalancerArns", [])]
    evidence.check(
        "attached to load balancers",
        attached,
        f"include {balancer}",
        balancer in attached,
        where=where,
    )
    enabled = group.get("HealthCheckEnabled", True)
    path = group.get("HealthCheckPath")
    evidence.check("health checks enabled", enabled, True, enabled is True, where=where)
    evidence.check(
        "health check path",
        path,
        "an application health endpoint (not /)",
        bool(path) and path != "/",
        where=where,
    )


@pytest.mark.checklist("1.1.5")
def test_connection_draining(cloud, expect, threshold, evidence):
    """Connection draining (deregistration delay) is at least 300 s."""
    name = expect("aws", "target_group")
    want = threshold("1.1.5", "connection_draining_seconds")
    arn = _target_group(cloud, name)["TargetGroupArn"]
    attributes = _attributes(
        cloud.call("elbv2", "describe_target_group_attributes", TargetGroupArn=arn)
    )
    delay = int(attributes.get("deregistration_delay.timeout_seconds", 0))
    evidence.check(
        "deregistration_delay.timeout_seconds",
        delay,
        f">= {want}",
        delay >= want,
        where=f"target group {name}",
    )


@pytest.mark.checklist("1.1.5")
def test_cross_zone_load_balancing(cloud, expect, evidence):
    """Cross-zone load balancing is on for the load balancer and its target group."""
    name, group_name = expect("aws", "load_balancer"), expect("aws", "target_group")
    balancer = _load_balancer(cloud, name)
    attributes = _attributes(
        cloud.call(
            "elbv2",
            "describe_load_balancer_attributes",
            LoadBalancerArn=balancer["LoadBalancerArn"],
        )
    )
    # Application Load Balancers always balance across zones; others must switch it on.
    default = "true" if balancer.get("Type") == "application" else "false"
    value = attributes.get("load_balancing.cross_zone.enabled", default)
    evidence.check(
        "load_balancing.cross_zone.enabled",
        value,
        "true",
        value == "true",
        where=f"load balancer {name}",
    )
    group = _attributes(
        cloud.call(
            "elbv2",
            "describe_target_group_attributes",
            TargetGroupArn=_target_group(cloud, group_name)["TargetGroupArn"],
        )
    )
    value = group.get("load_balancing.cross_zone.enabled", "use_load_balancer_configuration")
    evidence.check(
        "load_balancing.cross_zone.enabled",
        value,
        "true or use_load_balancer_configuration",
        value != "false",
        where=f"target group {group_name}",
    )


@pytest.mark.checklist("1.1.5")
def test_public_endpoint_answers_over_https(api, evidence):
    """The public endpoint answers over HTTPS with a certificate the client trusts."""
    evidence.check(
        "scheme",
        api.base_url.split("://", 1)[0],
        "https",
        api.base_url.startswith("https://"),
        where=api.base_url,
    )
    response = api.anonymous().get("/")
    evidence.check(
        "HTTP status",
        response.status_code,
        "< 500",
        response.status_code < 500,
        where=f"GET {api.base_url}/",
    )


# --- 1.2.1 certificates -----------------------------------------------------------------------


def _tls_reports(tls: Any, expect: Any) -> list[Any]:
    server_name = expect("api", "server_name", default=None)
    return [tls.inspect(endpoint, server_name=server_name) for endpoint in tls.endpoints]


@pytest.mark.checklist("1.2.1")
def test_wildcard_certificate(tls, expect, threshold, evidence):
    """The served certificate carries the wildcard SAN and covers the API's host name."""
    wildcard = threshold("1.2.1", "wildcard")
    for report in _tls_reports(tls, expect):
        leaf = report.leaf
        names = list(leaf.sans) if leaf else []
        evidence.check(
            "subject alternative names",
            names,
            f"include {wildcard}",
            wildcard in names,
            where=f"tls {report.endpoint}",
        )
        evidence.check(
            f"covers {report.server_name}",
            report.covers(report.server_name),
            True,
            report.covers(report.server_name),
            where=f"tls {report.endpoint}",
        )


@pytest.mark.checklist("1.2.1")
def test_certificate_expiry(tls, expect, threshold, evidence):
    """The served certificate is valid now and expires in more than 60 days."""
    days = threshold("1.2.1", "min_days_to_expiry")
    now = dt.datetime.now(dt.UTC)
    for report in _tls_reports(tls, expect):
        where = f"tls {report.endpoint}"
        leaf = report.leaf
        evidence.require(
            "certificate",
            "none presented" if leaf is None else leaf.label,
            "a leaf certificate",
            leaf is not None,
            where=where,
        )
        assert leaf is not None
        evidence.check(
            "valid from (not before)",
            leaf.not_before.isoformat(timespec="seconds"),
            f"before now ({now.isoformat(timespec='seconds')})",
            leaf.not_before <= now,
            where=where,
        )
        evidence.check(
            "days to expiry",
            leaf.days_to_expiry,
            f"> {days}",
            leaf.days_to_expiry > days,
            where=where,
        )


@pytest.mark.smoke("security", "TLS certificates")
@pytest.mark.checklist("1.2.1")
def test_certificate_chain(tls, expect, evidence):
    """The presented chain is complete and verifies against the trusted CA bundle."""
    for report in _tls_reports(tls, expect):
        where = f"tls {report.endpoint}"
        evidence.check(
            "chain verified",
            report.verification,
            "verified (trusted chain, matching host name, within its validity)",
            report.verified,
            where=where,
        )
        evidence.check(
            "chain complete",
            report.chain_complete,
            True,
            report.chain_complete is True,
            where=where,
        )
        evidence.record("presented chain", [c.subject for c in report.chain], where=where)


@pytest.mark.checklist("1.2.1")
def test_certificate_strength(tls, expect, evidence):
    """Every presented certificate has a strong key (RSA >= 2048 bits, EC >= 256 bits, no DSA) and a SHA-256 or stronger signature (no SHA-1 or MD5; a self-signed root's own signature is not judged, CA/Browser Forum practice).

    Nobody checks a root's own signature: its trust comes from the bundle that holds it."""
    from pytest_vcci.targets.tls import KEY_EXPECTATION, SIGNATURE_EXPECTATION

    for report in _tls_reports(tls, expect):
        evidence.require(
            "presented certificates",
            len(report.chain),
            ">= 1",
            bool(report.chain),
            where=f"tls {report.endpoint}",
        )
        for position, cert in enumerate(report.chain):
            role = "leaf" if position == 0 else f"chain certificate {position}"
            where = f"tls {report.endpoint} {role} {cert.label}"
            evidence.check("key", cert.key, KEY_EXPECTATION, cert.key_strong, where=where)
            if cert.is_root:
                evidence.record(
                    "signature hash",
                    f"{cert.signature_algorithm} (not judged: a self-signed root's own "
                    "signature is checked by nobody, CA/Browser Forum practice)",
                    where=where,
                )
                continue
            evidence.check(
                "signature hash",
                cert.signature_algorithm,
                SIGNATURE_EXPECTATION,
                cert.signature_strong,
                where=where,
            )


@pytest.mark.checklist("1.2.1")
def test_ocsp_stapling(tls, expect, evidence):
    """The endpoint staples an OCSP response to its handshake."""
    for report in _tls_reports(tls, expect):
        evidence.check(
            "OCSP stapling",
            report.ocsp_detail,
            "a stapled OCSP response",
            report.ocsp_stapled is True,
            where=f"tls {report.endpoint}",
        )


# --- 1.2.2 secrets ----------------------------------------------------------------------------


@pytest.mark.checklist("1.2.2")
@pytest.mark.each("secret", "aws", "secrets")
def test_secret_rotation(cloud, secret, evidence):
    """Each named secret exists in Secrets Manager, rotates, and was rotated within its period."""
    from botocore.exceptions import ClientError

    where = f"secret {secret}"
    try:
        found = cloud.call("secretsmanager", "describe_secret", SecretId=secret)
    except ClientError as exc:
        evidence.require("exists", _client_error_code(exc), "found", False, where=where)
        return
    enabled = bool(found.get("RotationEnabled"))
    evidence.check("RotationEnabled", enabled, True, enabled, where=where)
    period = (found.get("RotationRules") or {}).get("AutomaticallyAfterDays")
    rotated = found.get("LastRotatedDate")
    age = (dt.datetime.now(dt.UTC) - rotated).days if rotated else None
    evidence.check(
        "days since last rotation",
        age if age is not None else "never rotated",
        f"<= {period} (its rotation period)" if period else "a rotation period",
        age is not None and period is not None and age <= period,
        where=where,
    )


@pytest.mark.checklist("1.2.2")
def test_external_api_credentials_stored(cloud, threshold, evidence):
    """Credentials for each external data provider (Ecoinvent, DESNZ, EPA) are in the secrets manager."""
    names = [s["Name"] for s in cloud.paginate("secretsmanager", "list_secrets", "SecretList")]
    for provider in threshold("1.2.2", "external_apis"):
        held = [n for n in names if provider.lower() in n.lower()]
        evidence.check(
            f"secrets for {provider}", held, "at least one", bool(held), where="secrets manager"
        )


@pytest.mark.checklist("1.2.2")
@pytest.mark.each("secret", "kubernetes", "secrets")
def test_kubernetes_secret_exists(cluster, namespace, secret, evidence):
    """Each Kubernetes Secret the workloads need exists with keys (values are never read)."""
    found = cluster.get("secrets", secret, namespace)
    where = f"secret {namespace}/{secret}"
    evidence.require("exists", found is not None, True, found is not None, where=where)
    keys = sorted((found.get("data") or {}) | (found.get("stringData") or {}))
    evidence.check("keys", keys, "at least one", bool(keys), where=where)


# --- 1.2.3 IAM ----------------------------------------------------------------------------------


@pytest.mark.checklist("1.2.3")
@pytest.mark.each("service_account", "kubernetes", "irsa_service_accounts")
def test_service_account_workload_identity(cluster, namespace, service_account, evidence):
    """Each workload service account carries a pod-level IAM role (IRSA / workload identity)."""
    found = cluster.get("serviceaccounts", service_account, namespace)
    where = f"serviceaccount {namespace}/{service_account}"
    evidence.require("exists", found is not None, True, found is not None, where=where)
    annotations = found["metadata"].get("annotations") or {}
    present = {k: v for k, v in annotations.items() if k in WORKLOAD_IDENTITY_ANNOTATIONS}
    evidence.check(
        "workload identity annotation",
        present or "none",
        f"one of {list(WORKLOAD_IDENTITY_ANNOTATIONS)}",
        bool(present),
        where=where,
    )


@pytest.mark.checklist("1.2.3")
@pytest.mark.each("service_account", "kubernetes", "irsa_service_accounts")
def test_irsa_role_trusts_service_account(
    request, settings, cluster, namespace, service_account, evidence
):
    """Each annotated IAM role exists and trusts that service account's web identity only."""
    cloud = _cloud_or_skip(request, settings, "the IAM role check")
    found = cluster.get("serviceaccounts", service_account, namespace) or {"metadata": {}}
    arn = (found["metadata"].get("annotations") or {}).get(WORKLOAD_IDENTITY_ANNOTATIONS[0])
    where = f"serviceaccount {namespace}/{service_account}"
    evidence.require(
        "IAM role annotation",
        arn or "none",
        "an IAM role ARN",
        bool(arn) and ":role/" in str(arn),
        where=where,
    )
    role_name = str(arn).rsplit("/", 1)[-1]
    role = cloud.call("iam", "get_role", RoleName=role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        from urllib.parse import unquote

        trust = json.loads(unquote(trust))
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    subjects = [
        v
        for s in trust.get("Statement", [])
        if s.get("Effect") == "Allow" and "AssumeRoleWithWebIdentity" in str(s.get("Action"))
        for op in ("StringEquals", "StringLike")
        for k, v in (s.get("Condition", {}).get(op) or {}).items()
        if k.endswith(":sub")
    ]
    evidence.check(
        "web identity subjects trusted",
        subjects,
        [subject],
        subjects == [subject],
        where=f"iam role {role_name}",
    )


def _cluster_admin_subjects(cluster: Any, namespace: str) -> list[str]:
    """Service accounts of ``namespace`` (or all of them) bound to cluster-admin."""
    from pytest_vcci.targets.kubernetes import ALL

    bound = []
    bindings = [*cluster.list("clusterrolebindings"), *cluster.list("rolebindings", ALL)]
    for binding in bindings:
        if binding.get("roleRef", {}).get("name") != "cluster-admin":
            continue
        for subject in binding.get("subjects") or []:
            kind, name = subject.get("kind"), subject.get("name", "")
            ns = subject.get("namespace") or binding["metadata"].get("namespace")
            if (kind == "ServiceAccount" and ns == namespace) or (
                kind == "Group"
                and name in ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
            ):
                bound.append(f"{binding['kind']} {_name(binding)}: {kind} {ns or ''}/{name}")
    return bound


@pytest.mark.checklist("1.2.3")
def test_no_workload_service_account_is_cluster_admin(cluster, namespace, evidence):
    """No service account of the application namespace is bound to cluster-admin."""
    bound = _cluster_admin_subjects(cluster, namespace)
    evidence.check(
        "bindings to cluster-admin", bound, [], not bound, where=f"namespace {namespace}"
    )


def _policy_statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


@pytest.mark.checklist("1.2.3")
@pytest.mark.each("role", "aws", "iam_roles")
def test_iam_role_least_privilege(cloud, role, evidence):
    """Each workload IAM role grants no wildcard action on every resource and no admin policy."""
    where = f"iam role {role}"
    broad = []
    for policy in cloud.paginate("iam", "list_role_policies", "PolicyNames", RoleName=role):
        document = cloud.call("iam", "get_role_policy", RoleName=role, PolicyName=policy)[
            "PolicyDocument"
        ]
        for statement in _policy_statements(document):
            actions, resources = (
                _as_list(statement.get("Action")),
                _as_list(statement.get("Resource")),
            )
            if (
                statement.get("Effect") == "Allow"
                and "*" in resources
                and any(a == "*" or a.endswith(":*") for a in actions)
            ):
                broad.append(f"{policy}: {actions} on *")
    evidence.check("wildcard grants on all resources", broad, [], not broad, where=where)
    attached = [
        p["PolicyName"]
        for p in cloud.paginate(
            "iam", "list_attached_role_policies", "AttachedPolicies", RoleName=role
        )
    ]
    admin = [p for p in attached if p in ("AdministratorAccess", "PowerUserAccess")]
    evidence.check("administrator policies attached", admin, [], not admin, where=where)


@pytest.mark.checklist("1.2.3")
def test_cloudtrail_logs_role_assumptions(cloud, expect, evidence):
    """The CloudTrail trail is logging management events in all regions, global ones included."""
    name = expect("aws", "trail")
    where = f"trail {name}"
    trails = cloud.call("cloudtrail", "describe_trails", trailNameList=[name])["trailList"]
    evidence.require("exists", bool(trails), True, bool(trails), where=where)
    trail = trails[0]
    logging = cloud.call("cloudtrail", "get_trail_status", Name=name).get("IsLogging")
    evidence.check("IsLogging", logging, True, logging is True, where=where)
    evidence.check(
        "IsMultiRegionTrail",
        trail.get("IsMultiRegionTrail"),
        True,
        trail.get("IsMultiRegionTrail") is True,
        where=where,
    )
    # STS and IAM events are global service events.
    evidence.check(
        "IncludeGlobalServiceEvents",
        trail.get("IncludeGlobalServiceEvents"),
        True,
        trail.get("IncludeGlobalServiceEvents") is True,
        where=where,
    )
    if trail.get("HasCustomEventSelectors"):
        selectors = cloud.call("cloudtrail", "get_event_selectors", TrailName=name)
        management = [
            s
            for s in selectors.get("EventSelectors", [])
            if s.get("IncludeManagementEvents") and s.get("ReadWriteType") == "All"
        ]
        evidence.check(
            "selectors with all management events",
            len(management),
            ">= 1",
            bool(management),
            where=where,
        )


# --- 1.2.4 network ----------------------------------------------------------------------------


@pytest.mark.checklist("1.2.4")
def test_database_not_publicly_accessible(cloud, expect, evidence):
    """The RDS instance is not publicly accessible."""
    name = expect("aws", "db_instance")
    public = _db_instance(cloud, name).get("PubliclyAccessible")
    evidence.check("PubliclyAccessible", public, False, public is False, where=f"rds {name}")


@pytest.mark.checklist("1.2.4")
def test_security_groups_closed_to_internet(cloud, expect, threshold, evidence):
    """No security group admits 0.0.0.0/0 except the load balancer's on port 443."""
    allowed = [str(p) for p in threshold("1.2.4", "allowed_ingress_ports")]
    balancer_group = expect("aws", "security_groups", "alb")
    vpc = _vpc_id(cloud, expect("aws", "vpc"))
    open_rules = []
    for group in _security_groups(cloud, vpc_id=[vpc]):
        for ports, source in _ingress_sources(group):
            if source in OPEN_CIDRS and not (
                group["GroupName"] == balancer_group and ports in allowed
            ):
                open_rules.append(
                    f"{group['GroupName']} ({group['GroupId']}): {ports} from {source}"
                )
    evidence.check(
        "ingress open to the internet",
        open_rules,
        f"none, except {balancer_group} on {allowed}",
        not open_rules,
        where=f"vpc {expect('aws', 'vpc')}",
    )


def _only_from_cluster(
    evidence: Any, group: dict[str, Any], cluster_group_id: str, vpc_cidr: str, what: str
) -> None:
    import ipaddress

    vpc_net = ipaddress.ip_network(vpc_cidr)
    outside = []
    for ports, source in _ingress_sources(group):
        if source.startswith("sg-"):
            if source != cluster_group_id:
                outside.append(f"{ports} from {source}")
        elif not ipaddress.ip_network(source, strict=False).subnet_of(vpc_net):  # type: ignore[arg-type]
            outside.append(f"{ports} from {source}")
    evidence.check(
        f"{what} ingress not from the cluster",
        outside,
        [],
        not outside,
        where=f"security group {group['GroupName']} ({group['GroupId']})",
    )


def _vpc_cidr(cloud: Any, vpc: str) -> str:
    return str(cloud.call("ec2", "describe_vpcs", VpcIds=[vpc])["Vpcs"][0]["CidrBlock"])


@pytest.mark.checklist("1.2.4")
def test_database_reachable_only_from_cluster(cloud, expect, evidence):
    """The database's security groups admit only the cluster (and it refuses a probe from outside)."""
    name = expect("aws", "db_instance")
    cluster_group = _security_groups(
        cloud, group_name=[expect("aws", "security_groups", "cluster")]
    )
    evidence.require(
        "cluster security group",
        [g["GroupId"] for g in cluster_group],
        "found",
        bool(cluster_group),
        where=f"vpc {expect('aws', 'vpc')}",
    )
    vpc = cluster_group[0]["VpcId"]
    ids = [g["VpcSecurityGroupId"] for g in _db_instance(cloud, name).get("VpcSecurityGroups", [])]
    evidence.require("security groups", ids, "at least one", bool(ids), where=f"rds {name}")
    for group in _security_groups(cloud, group_id=ids):
        _only_from_cluster(
            evidence, group, cluster_group[0]["GroupId"], _vpc_cidr(cloud, vpc), "database"
        )
    _probe_unreachable(evidence, expect, "database")


@pytest.mark.checklist("1.2.4")
def test_redis_reachable_only_from_cluster(cloud, expect, evidence):
    """Redis's security group admits only the cluster (and it refuses a probe from outside)."""
    cluster_group = _security_groups(
        cloud, group_name=[expect("aws", "security_groups", "cluster")]
    )
    redis_group = _security_groups(cloud, group_name=[expect("aws", "security_groups", "redis")])
    evidence.require(
        "cluster and Redis security groups",
        [g["GroupId"] for g in [*cluster_group, *redis_group]],
        "both found",
        bool(cluster_group) and bool(redis_group),
        where=f"vpc {expect('aws', 'vpc')}",
    )
    cidr = _vpc_cidr(cloud, redis_group[0]["VpcId"])
    _only_from_cluster(evidence, redis_group[0], cluster_group[0]["GroupId"], cidr, "Redis")
    _probe_unreachable(evidence, expect, "redis")


@pytest.mark.checklist("1.2.4")
def test_private_subnets(cloud, expect, threshold, evidence):
    """The VPC has private subnets (no public IPs on launch) in at least 3 zones."""
    zones_wanted = threshold("1.1.1", "min_zones")
    vpc = _vpc_id(cloud, expect("aws", "vpc"))
    subnets = cloud.paginate(
        "ec2", "describe_subnets", "Subnets", Filters=[{"Name": "vpc-id", "Values": [vpc]}]
    )
    zones = sorted({s["AvailabilityZone"] for s in subnets if not s.get("MapPublicIpOnLaunch")})
    evidence.check(
        "zones with private subnets",
        zones,
        f">= {zones_wanted}",
        len(zones) >= zones_wanted,
        where=f"vpc {expect('aws', 'vpc')}",
    )


@pytest.mark.checklist("1.2.4")
def test_nodes_have_no_external_ip(cluster, evidence):
    """No Kubernetes node has an ExternalIP address."""
    exposed = [
        f"{_name(n)}: {a.get('address')}"
        for n in cluster.list("nodes")
        for a in n.get("status", {}).get("addresses") or []
        if a.get("type") == "ExternalIP"
    ]
    evidence.check("nodes with an ExternalIP", exposed, [], not exposed, where="cluster")


@pytest.mark.checklist("1.2.4")
def test_worker_instances_have_no_public_ip(cloud, expect, evidence):
    """No EC2 instance in the VPC has a public IP address."""
    vpc = _vpc_id(cloud, expect("aws", "vpc"))
    reservations = cloud.paginate(
        "ec2", "describe_instances", "Reservations", Filters=[{"Name": "vpc-id", "Values": [vpc]}]
    )
    instances = [i for r in reservations for i in r.get("Instances", [])]
    public = [
        f"{i['InstanceId']}: {i['PublicIpAddress']}" for i in instances if i.get("PublicIpAddress")
    ]
    evidence.check(
        "instances with a public IP",
        public,
        f"none (of {len(instances)})",
        not public,
        where=f"vpc {expect('aws', 'vpc')}",
    )


# --- 1.2.5 container registry -----------------------------------------------------------------


@pytest.mark.checklist("1.2.5")
def test_images_from_configured_registry(cluster, namespace, expect, evidence):
    """Every application container image comes from the configured registry."""
    registry = expect("kubernetes", "registry").rstrip("/")
    elsewhere = [
        f"{w['kind']} {_name(w)}: {c.get('image')}"
        for w in _some_workloads(cluster, namespace, evidence)
        for c in _containers(_pod_spec(w))
        if not str(c.get("image", "")).startswith(registry + "/")
    ]
    evidence.check(
        f"images not from {registry}", elsewhere, [], not elsewhere, where=f"namespace {namespace}"
    )


@pytest.mark.checklist("1.2.5")
def test_image_pull_secrets(cluster, namespace, expect, evidence):
    """Workloads pulling from a private registry name pull secrets that exist (dockerconfigjson)."""
    registry = expect("kubernetes", "registry").rstrip("/")
    # ECR pulls are authorised by the node's IAM role; every other private registry needs one.
    needs_secret = not re.search(r"\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$", registry)
    secrets = {_name(s): s for s in cluster.list("secrets", namespace)}
    pulling = [
        w
        for w in _some_workloads(cluster, namespace, evidence)
        if any(
            str(c.get("image", "")).startswith(registry + "/") for c in _containers(_pod_spec(w))
        )
    ]
    if not pulling:
        evidence.undecided(f"no workload pulls from {registry}", where=f"namespace {namespace}")
    for workload in pulling:
        spec = _pod_spec(workload)
        where = f"{workload['kind']} {namespace}/{_name(workload)}"
        names = [s.get("name") for s in spec.get("imagePullSecrets") or []]
        if needs_secret:
            evidence.check("imagePullSecrets", names, "at least one", bool(names), where=where)
        for name in names:
            secret = secrets.get(name)
            kind = secret.get("type") if secret else "missing"
            evidence.check(
                f"pull secret {name}",
                kind,
                "kubernetes.io/dockerconfigjson",
                kind == "kubernetes.io/dockerconfigjson",
                where=where,
            )
    if not needs_secret and not evidence.observations:
        evidence.undecided(
            f"the workloads pull from {registry} (ECR) with the nodes' IAM role and name no "
            "pull secret: none to judge",
            where=f"namespace {namespace}",
        )


@pytest.mark.checklist("1.2.5")
@pytest.mark.each("repository", "aws", "ecr_repositories")
def test_registry_scan_on_push(cloud, repository, evidence):
    """Each ECR repository scans images on push."""
    found = cloud.call("ecr", "describe_repositories", repositoryNames=[repository])
    config = found["repositories"][0].get("imageScanningConfiguration", {})
    on = config.get("scanOnPush") is True
    evidence.check("scanOnPush", config.get("scanOnPush"), True, on, where=f"ecr {repository}")


@pytest.mark.checklist("1.2.5")
def test_images_pinned_by_digest(cluster, namespace, evidence):
    """Every application container image is pinned by digest (image@sha256:...)."""
    floating = [
        f"{w['kind']} {_name(w)}: {c.get('image')}"
        for w in _some_workloads(cluster, namespace, evidence)
        for c in _containers(_pod_spec(w))
        if "@sha256:" not in str(c.get("image", ""))
    ]
    evidence.check(
        "images without a digest", floating, [], not floating, where=f"namespace {namespace}"
    )


@pytest.mark.checklist("1.2.5")
@pytest.mark.each("repository", "aws", "ecr_repositories")
def test_release_image_signed(cloud, repository, expect, evidence):
    """Each repository's release image has a cosign signature (sha256-<digest>.sig tag)."""
    tag = expect("aws", "image_tag")
    images = cloud.paginate("ecr", "list_images", "imageIds", repositoryName=repository)
    digests = {i["imageDigest"] for i in images if i.get("imageTag") == tag}
    where = f"ecr {repository}:{tag}"
    evidence.require("release image", sorted(digests), "present", bool(digests), where=where)
    tags = {i.get("imageTag") for i in images}
    for digest in digests:
        signature = digest.replace(":", "-") + ".sig"
        evidence.check(
            "cosign signature tag",
            signature if signature in tags else "none",
            signature,
            signature in tags,
            where=where,
        )
