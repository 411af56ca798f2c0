"""Checklist section 8: disaster recovery.

What is read, and from where:

- AWS (``cloud``, read-only): the RDS instance's snapshots, encryption and point-in-time
  recovery window (``[expect.aws].db_instance``); each bucket's replication, versioning and
  lifecycle rules (``[expect.aws].buckets``); the Terraform state bucket's versioning.
- The manifests repository (``[docs].manifests_repository``): a git checkout, read with
  ``git --no-optional-locks`` so not even the index is refreshed.
- Kubernetes (``cluster``): each deployment of ``[expect.kubernetes].deployments``, its
  revision history and ReplicaSets.
- The DR runbook at ``[docs].directory`` + the catalog's ``runbook_path``.

Drills and tests people ran (restore, migration rollback, DR drill) are attested; the restore
test's record must also be recent (8.2.1).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Objects the API server creates by itself: not expected in a repository of manifests.
GENERATED_CONFIGMAPS = frozenset({"kube-root-ca.crt"})
_DURATION = r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m)\b"
_MINUTES = {"h": 60, "hr": 60, "hrs": 60, "hour": 60, "hours": 60}


# --- helpers ------------------------------------------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def s3_read(cloud: Any, operation: str, bucket: str, absent: str) -> dict[str, Any] | None:
    """An S3 bucket read; None when AWS answers that the configuration ``absent`` is not set."""
    from botocore.exceptions import ClientError

    try:
        with cloud.watch():
            result: dict[str, Any] = getattr(cloud.client("s3"), operation)(Bucket=bucket)
            return result
    except ClientError as exc:
        if error_code(exc) == absent:
            return None
        raise


def check_versioning(cloud: Any, bucket: str, evidence: Any) -> None:
    """Record whether ``bucket`` has versioning Enabled (8.1.2 buckets, 8.1.3 Terraform state)."""
    status = (s3_read(cloud, "get_bucket_versioning", bucket, "") or {}).get("Status")
    evidence.check(
        "versioning",
        status or "never enabled",
        "Enabled",
        status == "Enabled",
        where=f"bucket {bucket}",
    )


def docs_table(settings: Any, key: str) -> str:
    docs = settings.table("docs")
    value = getattr(docs, key, None) if docs else None
    if not value:
        pytest.skip(f"[docs].{key} is not set in {settings.source}")
    return str(value)


# --- 8.1.1 Database backup procedure --------------------------------------------------------


@pytest.fixture(scope="module")
def snapshots(cloud: Any, expect: Callable[..., Any]) -> list[dict[str, Any]]:
    instance = expect("aws", "db_instance")
    return cloud.paginate(
        "rds", "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=instance
    )


@pytest.mark.checklist("8.1.1")
def test_recent_full_backup(
    snapshots: list[dict[str, Any]],
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """The database's newest available snapshot is less than 24 hours old."""
    where = f"rds {expect('aws', 'db_instance')}: snapshots"
    done = [s for s in snapshots if s.get("Status") == "available" and s.get("SnapshotCreateTime")]
    evidence.require("available snapshots", len(done), ">= 1", bool(done), where=where)
    newest = max(done, key=lambda s: aware(s["SnapshotCreateTime"]))
    age = (utcnow() - aware(newest["SnapshotCreateTime"])).total_seconds() / 3600
    most = threshold("8.1.1", "max_snapshot_age_hours")
    evidence.check(
        "newest snapshot age (h)",
        round(age, 2),
        f"< {most}",
        age < most,
        where=f"{where}: {newest['DBSnapshotIdentifier']} ({newest.get('SnapshotType')})",
    )


@pytest.mark.checklist("8.1.1")
def test_backups_encrypted(
    cloud: Any, snapshots: list[dict[str, Any]], expect: Callable[..., Any], evidence: Any
) -> None:
    """The database's storage and every snapshot of it are encrypted."""
    instance = expect("aws", "db_instance")
    found = cloud.call("rds", "describe_db_instances", DBInstanceIdentifier=instance)
    storage = found["DBInstances"][0].get("StorageEncrypted")
    evidence.check("storage encrypted", storage, True, storage is True, where=f"rds {instance}")
    evidence.require(
        "snapshots", len(snapshots), ">= 1", bool(snapshots), where=f"rds {instance}: snapshots"
    )
    for snapshot in snapshots:
        evidence.check(
            "snapshot encrypted",
            snapshot.get("Encrypted"),
            True,
            snapshot.get("Encrypted") is True,
            where=f"rds snapshot {snapshot['DBSnapshotIdentifier']}",
        )


@pytest.mark.checklist("8.1.1")
def test_point_in_time_recovery_within_rpo(
    cloud: Any, expect: Callable[..., Any], threshold: Callable[..., Any], evidence: Any
) -> None:
    """Incremental backups run: the latest restorable time is within the 15-minute RPO."""
    instance = expect("aws", "db_instance")
    found = cloud.call("rds", "describe_db_instances", DBInstanceIdentifier=instance)
    db = found["DBInstances"][0]
    where = f"rds {instance}"
    retention = db.get("BackupRetentionPeriod", 0)
    evidence.check(
        "automated backup retention (days)", retention, "> 0", retention > 0, where=where
    )
    latest = db.get("LatestRestorableTime")
    rpo = threshold("8.1.1", "rpo_minutes")
    lag = (utcnow() - aware(latest)).total_seconds() / 60 if latest else None
    evidence.check(
        "latest restorable time behind now (min)",
        "none" if lag is None else round(lag, 1),
        f"<= {rpo}",
        lag is not None and lag <= rpo,
        where=where,
    )


@pytest.mark.checklist("8.1.1")
def test_restore_drill(attest: Any) -> None:
    """A restore from backup took under 1 hour and its checksums matched (attested)."""
    attest("8.1.1")


# --- 8.1.2 Object storage backup ------------------------------------------------------------


@pytest.mark.checklist("8.1.2")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_replicated_cross_region(cloud: Any, bucket: str, evidence: Any) -> None:
    """Each bucket replicates to a bucket in another region (an enabled replication rule)."""
    where = f"bucket {bucket}"
    found = s3_read(
        cloud, "get_bucket_replication", bucket, "ReplicationConfigurationNotFoundError"
    )
    rules = (found or {}).get("ReplicationConfiguration", {}).get("Rules", [])
    enabled = [r for r in rules if r.get("Status") == "Enabled"]
    evidence.require("enabled replication rules", len(enabled), ">= 1", bool(enabled), where=where)
    home = s3_read(cloud, "get_bucket_location", bucket, "")
    region = (home or {}).get("LocationConstraint") or "us-east-1"
    for rule in enabled:
        target = rule["Destination"]["Bucket"].removeprefix("arn:aws:s3:::")
        location = s3_read(cloud, "get_bucket_location", target, "NoSuchBucket")
        other = (location or {}).get("LocationConstraint") or "us-east-1"
        seen = f"{target} in {other}" if location is not None else f"{target} (no such bucket)"
        evidence.check(
            "replica bucket",
            seen,
            f"a bucket outside {region}",
            location is not None and other != region,
            where=f"{where}: rule {rule.get('ID', '?')}",
        )


@pytest.mark.checklist("8.1.2")
@pytest.mark.each("bucket", "aws", "buckets")
def test_bucket_versioned(cloud: Any, bucket: str, evidence: Any) -> None:
    """Each bucket has versioning Enabled."""
    check_versioning(cloud, bucket, evidence)


@pytest.mark.checklist("8.1.2")
@pytest.mark.each("bucket", "aws", "buckets")
def test_noncurrent_versions_expire(
    cloud: Any, bucket: str, threshold: Callable[..., Any], evidence: Any
) -> None:
    """Each bucket has an enabled lifecycle rule expiring noncurrent versions after 30 days."""
    found = s3_read(
        cloud, "get_bucket_lifecycle_configuration", bucket, "NoSuchLifecycleConfiguration"
    )
    rules = (found or {}).get("Rules", [])
    days = threshold("8.1.2", "version_retention_days")
    expiring = [
        (r.get("ID", "?"), r["NoncurrentVersionExpiration"].get("NoncurrentDays"))
        for r in rules
        if r.get("Status") == "Enabled"
        and "NoncurrentVersionExpiration" in r
        and not (r.get("Filter") or {}).get("Prefix")
        and not r.get("Prefix")
    ]
    where = f"bucket {bucket}: lifecycle"
    evidence.require(
        "whole-bucket noncurrent-version expiry",
        ", ".join(f"{rid}: {d} days" for rid, d in expiring) or "none",
        f"after {days} days",
        bool(expiring),
        where=where,
    )
    for rule_id, after in expiring:
        evidence.check(
            "noncurrent versions kept (days)",
            after,
            f">= {days}",
            isinstance(after, int) and after >= days,
            where=f"{where}: rule {rule_id}",
        )


# --- 8.1.3 Configuration backup -------------------------------------------------------------


def git(repository: Path, *args: str) -> str:
    """A read-only git command in the repository (no optional locks: the index is not refreshed)."""
    done = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(repository), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@pytest.fixture(scope="module")
def manifests_repository(settings: Any) -> Path:
    return settings.resolve_path(docs_table(settings, "manifests_repository"))


@pytest.mark.checklist("8.1.3")
def test_manifests_committed(manifests_repository: Path, evidence: Any) -> None:
    """The manifests repository is a git checkout with nothing uncommitted."""
    where = f"repository {manifests_repository}"
    try:
        head = git(manifests_repository, "rev-parse", "HEAD").strip()
    except RuntimeError as exc:
        evidence.require(
            "git checkout", str(exc), "a git work tree with a commit", False, where=where
        )
    changes = git(manifests_repository, "status", "--porcelain", "--untracked-files=all")
    changed = [line[3:] for line in changes.splitlines() if line.strip()]
    evidence.check(
        "uncommitted changes", changed[:20] or 0, 0, not changed, where=f"{where} @ {head[:12]}"
    )


@pytest.mark.checklist("8.1.3")
def test_manifests_recently_committed(
    manifests_repository: Path, threshold: Callable[..., Any], evidence: Any
) -> None:
    """The manifests repository's last commit is less than 90 days old."""
    where = f"repository {manifests_repository}"
    try:
        line = git(manifests_repository, "log", "-1", "--format=%cI %h %s").strip()
    except RuntimeError as exc:
        evidence.require("last commit", str(exc), "a commit", False, where=where)
    stamp, _, subject = line.partition(" ")
    age = (utcnow() - dt.datetime.fromisoformat(stamp)).total_seconds() / 86400
    most = threshold("8.1.3", "max_commit_age_days")
    evidence.check(
        "last commit age (days)",
        round(age, 1),
        f"< {most}",
        age < most,
        where=f"{where}: {subject}",
    )


def repository_objects(repository: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, object) for every YAML object in the repository (templates that do not parse as
    YAML, e.g. Helm's, are left out)."""
    import yaml

    for path in sorted([*repository.rglob("*.yaml"), *repository.rglob("*.yml")]):
        if ".git" in path.relative_to(repository).parts:
            continue
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for obj in documents:
            if isinstance(obj, dict) and "kind" in obj:
                yield path, obj


@pytest.mark.checklist("8.1.3")
def test_manifests_cover_the_cluster(
    manifests_repository: Path, cluster: Any, namespace: str, evidence: Any
) -> None:
    """Every Deployment and ConfigMap of the namespace is in the repository; no Secret values are."""
    found: set[tuple[str, str]] = set()
    exported: list[str] = []
    for path, obj in repository_objects(manifests_repository):
        meta = obj.get("metadata") or {}
        if meta.get("namespace", namespace) == namespace:
            found.add((obj["kind"], str(meta.get("name"))))
        if obj["kind"] == "Secret" and (obj.get("data") or obj.get("stringData")):
            exported.append(f"{path.relative_to(manifests_repository)}: {meta.get('name')}")
    where = f"repository {manifests_repository}"
    for kind, plural in (("Deployment", "deployments"), ("ConfigMap", "configmaps")):
        names = [
            o["metadata"]["name"]
            for o in cluster.list(plural, namespace)
            if o["metadata"]["name"] not in GENERATED_CONFIGMAPS
        ]
        missing = sorted(n for n in names if (kind, n) not in found)
        evidence.check(
            f"{kind}s of {namespace} not in the repository",
            missing or 0,
            0,
            not missing,
            where=f"{where} ({len(names)} in the cluster)",
        )
    evidence.check(
        "Secrets with values in the repository", exported or 0, 0, not exported, where=where
    )


@pytest.mark.checklist("8.1.3")
def test_terraform_state_versioned(cloud: Any, expect: Callable[..., Any], evidence: Any) -> None:
    """The Terraform state bucket has versioning Enabled."""
    bucket = expect("aws", "terraform_state_bucket")
    check_versioning(cloud, bucket, evidence)


@pytest.mark.checklist("8.1.3")
def test_configuration_backup(attest: Any) -> None:
    """ConfigMaps are exported and Secrets documented, not exported (attested)."""
    attest("8.1.3")


# --- 8.2.1 Database restore procedure -------------------------------------------------------


@pytest.mark.checklist("8.2.1")
def test_restore_test_recent(attest: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """A point-in-time restore was tested (attested) within the last 90 days."""
    record = attest("8.2.1")
    age = (utcnow().date() - record.date).days
    most = threshold("8.2.1", "max_restore_test_age_days")
    evidence.check(
        "restore test age (days)",
        age,
        f"<= {most}",
        age <= most,
        where=f"attestation {record.reference} of {record.date}",
    )


# --- 8.2.2 Application rollback -------------------------------------------------------------


def revision(obj: dict[str, Any]) -> int:
    value = (obj["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    return int(value) if value and str(value).isdigit() else 0


@pytest.mark.checklist("8.2.2")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_deployment_keeps_revisions(
    cluster: Any,
    namespace: str,
    role: str,
    expect: Callable[..., Any],
    threshold: Callable[..., Any],
    evidence: Any,
) -> None:
    """Each deployment keeps at least 2 old revisions (revisionHistoryLimit) to roll back to."""
    name = expect("kubernetes", "deployments", role)
    deployment = cluster.get("deployments", name, namespace)
    where = f"deployment {namespace}/{name}"
    evidence.require(
        "deployment",
        "present" if deployment else "missing",
        "present",
        deployment is not None,
        where=where,
    )
    kept = deployment["spec"].get("revisionHistoryLimit", 10)
    least = threshold("8.2.2", "min_revisions")
    evidence.check("revisionHistoryLimit", kept, f">= {least}", kept >= least, where=where)


@pytest.mark.checklist("8.2.2")
@pytest.mark.each("role", "kubernetes", "deployments")
def test_previous_revision_exists(
    cluster: Any, namespace: str, role: str, expect: Callable[..., Any], evidence: Any
) -> None:
    """Each deployment's previous ReplicaSet still exists, so `rollout undo` can deploy it."""
    name = expect("kubernetes", "deployments", role)
    deployment = cluster.get("deployments", name, namespace)
    where = f"deployment {namespace}/{name}"
    evidence.require(
        "deployment",
        "present" if deployment else "missing",
        "present",
        deployment is not None,
        where=where,
    )
    current = revision(deployment)
    owned = [
        rs
        for rs in cluster.list("replicasets", namespace)
        if any(
            o.get("kind") == "Deployment" and o.get("name") == name
            for o in rs["metadata"].get("ownerReferences", [])
        )
    ]
    older = sorted((rs for rs in owned if 0 < revision(rs) < current), key=revision)
    evidence.record(
        "revisions", {revision(rs): rs["metadata"]["name"] for rs in owned}, where=where
    )
    if older:
        previous = older[-1]
        images = [c["image"] for c in previous["spec"]["template"]["spec"]["containers"]]
        evidence.record(
            "previous revision images",
            images,
            where=f"replicaset {namespace}/{previous['metadata']['name']}",
        )
    evidence.check(
        "previous ReplicaSet",
        older[-1]["metadata"]["name"] if older else "none",
        f"a ReplicaSet of a revision before {current}",
        bool(older),
        where=where,
    )


@pytest.mark.checklist("8.2.2")
def test_migration_rollback(attest: Any) -> None:
    """A database migration rollback and a zero-downtime rollback were tested (attested)."""
    attest("8.2.2")


# --- 8.2.3 Disaster recovery plan -----------------------------------------------------------


def runbook(settings: Any, threshold: Callable[..., Any]) -> Path:
    directory = settings.resolve_path(docs_table(settings, "directory"))
    return directory / threshold("8.2.3", "runbook_path")


def stated_minutes(text: str, objective: str) -> float | None:
    """The first duration stated for ``objective`` (RTO/RPO) in the runbook, in minutes."""
    match = re.search(rf"\b{objective}\b[^\n\d]{{0,60}}?{_DURATION}", text, re.IGNORECASE)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2).lower()
    return number * _MINUTES.get(unit, 1)


@pytest.mark.checklist("8.2.3")
def test_dr_runbook_exists(settings: Any, threshold: Callable[..., Any], evidence: Any) -> None:
    """The DR runbook (docs/runbooks/DATA_RECOVERY.md under [docs].directory) exists."""
    path = runbook(settings, threshold)
    size = path.stat().st_size if path.is_file() else None
    evidence.check(
        "runbook",
        "missing" if size is None else f"{size} bytes",
        "a non-empty file",
        bool(size),
        where=str(path),
    )


@pytest.mark.checklist("8.2.3")
def test_dr_runbook_states_objectives(
    settings: Any, threshold: Callable[..., Any], evidence: Any
) -> None:
    """The DR runbook states RTO 1 hour, RPO 15 minutes and a quarterly DR drill."""
    path = runbook(settings, threshold)
    evidence.require(
        "runbook",
        "present" if path.is_file() else "missing",
        "present",
        path.is_file(),
        where=str(path),
    )
    text = path.read_text(encoding="utf-8", errors="replace")
    for objective, name in (("RTO", "rto_minutes"), ("RPO", "rpo_minutes")):
        stated, most = stated_minutes(text, objective), threshold("8.2.3", name)
        evidence.check(
            f"{objective} stated (min)",
            "not stated" if stated is None else stated,
            f"<= {most}",
            stated is not None and stated <= most,
            where=str(path),
        )
    months = threshold("8.2.3", "drill_interval_months")
    line = next((ln.strip() for ln in text.splitlines() if re.search(r"\bdrill", ln, re.I)), "")
    every = re.search(r"every\s+(\d+)\s+months?", line, re.I)
    interval = 3 if re.search(r"quarterly", line, re.I) else int(every.group(1)) if every else None
    evidence.check(
        "DR drill interval (months)",
        line or "no drill stated",
        f"<= {months}",
        interval is not None and interval <= months,
        where=str(path),
    )


@pytest.mark.checklist("8.2.3")
def test_dr_drill_scheduled(attest: Any) -> None:
    """The DR plan is approved and the next quarterly DR drill is scheduled (attested)."""
    attest("8.2.3")
