"""Broken variants of sections 7 to 9: each breaks one thing, and exactly its item fails.

One good sandbox serves every variant; a variant's environment file is the good one pointed at
a broken resource:

- 7.1.1: a Locust stats file in the format of Locust 0.x (malformed for today's reader), and a
  Locust report whose last sample is 200 hours old (stale; the limit is 168 h).
- 7.2.1: a second Kubernetes emulator serving the staging manifests with the backend HPA's
  scale-down stabilization window set to 0.
- 7.2.2: a replica that really lags: WAL replay is paused on replica 2 (superuser, in the
  harness) while the primary commits, so it has received WAL it has not replayed, and its
  last replayed commit is older than the 1 s limit. Replay resumes after the run.
- 8.1.2: one more bucket named in [expect.aws].buckets, created in the sandbox's moto with
  versioning and replication but no noncurrent-version expiry.
- 8.1.3: a copy of the manifests repository with an uncommitted change.
- 8.2.3: a copy of the docs tree without docs/runbooks/DATA_RECOVERY.md.
- 9.1.3: a second mail/DNS server whose zone has no _dmarc record.

Each run executes the three suite modules in a subprocess (intrusive checks deselected) and
reads evidence.json, so what is compared is what a user sees. One more good run includes the
intrusive checks (load probes, end-to-end workflows) and shows they pass against the sandbox.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from variants import Staging, assert_only, run_subprocess, sandbox_up, undecided_by_design

from pytest_vcci.sandbox.kube import STAGING_MANIFESTS, KubeComponent
from pytest_vcci.sandbox.mail_dns import MailDnsComponent

SUITES = Path(__file__).resolve().parents[2] / "suites"
MODULES = tuple(
    SUITES / f"test_0{n}_{name}.py"
    for n, name in ((7, "performance"), (8, "disaster_recovery"), (9, "integrations"))
)
SECTIONS = ("7.", "8.", "9.")
COMPONENTS = (
    "api",
    "kubernetes",
    "postgres",
    "redis",
    "aws",
    "monitoring",
    "artifacts",
    "mail_dns",
)
INTRUSIVE_ONLY = {"9.2.1", "9.2.2"}  # no check of theirs runs without --vcci-allow-intrusive
EXTRA_BUCKET = "vcci-staging-exports"

pytestmark = pytest.mark.slow


def add_bucket_without_noncurrent_expiry(tables: dict[str, Any], secret: str) -> None:
    """A versioned, replicated bucket whose lifecycle never expires noncurrent versions."""
    import boto3

    aws = tables["aws"]
    s3 = boto3.client(
        "s3",
        region_name=aws["region"],
        endpoint_url=aws["endpoint_url"],
        aws_access_key_id=aws["access_key_id"],
        aws_secret_access_key=secret,
    )
    s3.create_bucket(
        Bucket=EXTRA_BUCKET, CreateBucketConfiguration={"LocationConstraint": aws["region"]}
    )
    s3.put_bucket_versioning(Bucket=EXTRA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    replica = f"{tables['expect']['aws']['buckets'][0]}-replica-eu-central-1"
    s3.put_bucket_replication(
        Bucket=EXTRA_BUCKET,
        ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/vcci-s3-replication-role",
            "Rules": [
                {
                    "ID": "dr-to-eu-central-1",
                    "Priority": 1,
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "DeleteMarkerReplication": {"Status": "Enabled"},
                    "Destination": {"Bucket": f"arn:aws:s3:::{replica}"},
                }
            ],
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=EXTRA_BUCKET,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "abort-incomplete-uploads-7d",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        },
    )


@pytest.fixture(scope="session")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    with sandbox_up(tmp_path_factory.mktemp("s789-staging"), only=COMPONENTS) as staging:
        add_bucket_without_noncurrent_expiry(
            staging.tables, staging.variables["VCCI_SANDBOX_AWS_SECRET_ACCESS_KEY"]
        )
        yield staging


def run_suites(
    directory: Path, tables: dict[str, Any], variables: dict[str, str], *options: str
) -> dict[str, Any]:
    """The three suite modules against ``tables``; the items of sections 7 to 9 by ID."""
    return run_subprocess(directory, MODULES, tables, variables, SECTIONS, *options)


@pytest.fixture(scope="session")
def good_items(staging: Staging, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_suites(
        tmp_path_factory.mktemp("good-run"),
        staging.tables,
        staging.variables,
        "-m",
        "not intrusive",
    )


def test_good_staging_passes_sections_7_to_9(good_items: dict[str, Any]) -> None:
    statuses = {k: v["status"] for k, v in good_items.items()}
    # 8.2.1's only check reads its attestation record (and its date): "attested".
    good = {k for k, v in statuses.items() if v in ("passed", "attested")}
    pending = undecided_by_design(set(statuses) - INTRUSIVE_ONLY)  # no check yet: never passes
    assert set(statuses) - good == INTRUSIVE_ONLY | pending, statuses
    assert statuses["8.2.1"] == "attested"
    assert all(statuses[k] == "not_covered" for k in INTRUSIVE_ONLY), statuses
    assert {statuses[k] for k in pending} == {"skipped"}


def tenant_records(staging: Staging) -> dict[str, set[str]]:
    """What the test tenant holds, as its own user sees it through the API."""
    import requests

    api = staging.tables["api"]
    headers = {"Authorization": f"Bearer {staging.variables['VCCI_SANDBOX_API_TOKEN']}"}
    found: dict[str, set[str]] = {}
    for kind in ("suppliers", "ingestions", "calculations", "reports", "audit/events"):
        answer = requests.get(
            f"{api['base_url']}/api/v1/{kind}?limit=500",
            headers=headers,
            verify=api["ca_bundle"],
            timeout=(5, 15),
        )
        assert answer.status_code == 200, (kind, answer.text)
        records = answer.json()[kind.removeprefix("audit/")]
        found[kind] = {r["id"] for r in records}
    return found


def test_good_staging_passes_the_intrusive_checks(
    staging: Staging, pytester: pytest.Pytester
) -> None:
    before = tenant_records(staging)
    items = run_suites(
        pytester.path,
        staging.tables,
        staging.variables,
        "--vcci-allow-intrusive",
        "-m",
        "intrusive",
    )
    ran = {k: v["status"] for k, v in items.items() if v["status"] != "not_covered"}
    outcomes = {t["outcome"] for item in items.values() for t in item["tests"]}
    assert outcomes == {"passed"}, ran
    # Only 9.2.2's criteria are all decided by intrusive checks; 7.1.1 and 7.1.2 need their
    # read-only checks too (not in this run), 9.2.1 a check of the invitation e-mail (none yet).
    assert ran == {"7.1.1": "skipped", "7.1.2": "skipped", "9.2.1": "skipped", "9.2.2": "passed"}
    assert "test_load_test_report did not run" in items["7.1.1"]["message"]
    assert "Email invitation sent: no check yet" in items["9.2.1"]["message"]
    after = tenant_records(staging)
    # The workflows deleted every supplier, upload, calculation and report they made; the
    # audit trail keeps the record of them (an audit log must).
    for kind in ("suppliers", "ingestions", "calculations", "reports"):
        assert after[kind] == before[kind], kind
    assert len(after["audit/events"] - before["audit/events"]) >= 10


def run_broken(
    directory: Path,
    staging: Staging,
    tables: dict[str, Any],
    variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    return run_suites(
        directory, tables, {**staging.variables, **(variables or {})}, "-m", "not intrusive"
    )


# --- 7.1.1 ----------------------------------------------------------------------------------


def test_malformed_locust_report(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    # What Locust 0.x wrote: other column names, so no "Failure Count" or "95%" to read.
    path = pytester.path / "old_stats.csv"
    path.write_text(
        '"Method","Name","# requests","# failures","Median response time",'
        '"Average response time","Min response time","Max response time",'
        '"Average Content Size","Requests/s"\n'
        '"None","Total",120000,0,110,150,18,1870,2300,166.6\n'
    )
    tables = staging.copy()
    tables["reports"]["locust"] = str(path)
    broken = run_broken(pytester.path, staging, tables)
    assert_only(
        broken,
        good_items,
        "7.1.1",
        f"locust report {path}",
        "not a Locust stats CSV: no column 'Type'",
    )


def test_stale_locust_report(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    from pytest_vcci.sandbox.artifacts import write_locust_reports

    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=200)
    path = write_locust_reports(pytester.path / "locust" / "vcci_stats.csv", generated_at=old)
    tables = staging.copy()
    tables["reports"]["locust"] = str(path)
    broken = run_broken(pytester.path, staging, tables)
    assert_only(
        broken,
        good_items,
        "7.1.1",
        f"locust report {path}",
        "report is stale",
        "older than the 168 h limit",
    )


# --- 7.2.1 ----------------------------------------------------------------------------------


def test_hpa_without_scale_down_stabilisation(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    import yaml

    manifests = pytester.path / "manifests"
    shutil.copytree(STAGING_MANIFESTS, manifests)
    backend = manifests / "10-backend.yaml"
    objects = list(yaml.safe_load_all(backend.read_text()))
    for obj in objects:
        if obj and obj["kind"] == "HorizontalPodAutoscaler":
            obj["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = 0
    backend.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    kube = KubeComponent(
        workdir=pytester.path / "kube", manifests=manifests, manifests_repository=False
    )
    kube.workdir.mkdir()
    try:
        kube.start()
        tables = staging.copy()
        tables["kubernetes"] = {
            **kube.env_tables()["kubernetes"],
            "token": "${S789_BROKEN_KUBE_TOKEN}",
        }
        broken = run_broken(pytester.path, staging, tables, {"S789_BROKEN_KUBE_TOKEN": kube.token})
    finally:
        kube.stop()
    assert_only(
        broken,
        good_items,
        "7.2.1",
        "hpa vcci-staging/backend: scale-down stabilization (s): observed 0, expected >= 300",
    )


# --- 7.2.2 ----------------------------------------------------------------------------------


def lag_seconds(postgres: Any, port: int) -> float:
    sql = (
        "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
    )
    return float(postgres.superuser_value(sql, port=port, dbname="postgres"))


def test_lagging_replica(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    postgres = staging.component("postgres")
    port = postgres.replica_ports[1]
    with postgres.superuser(port=port, dbname="postgres") as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
    try:
        with postgres.superuser(dbname="postgres") as primary:
            primary.execute("CREATE TABLE IF NOT EXISTS s789_lag_probe (at timestamptz)")
            primary.execute("INSERT INTO s789_lag_probe VALUES (now())")
        deadline = time.monotonic() + 20
        while lag_seconds(postgres, port) <= 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lag_seconds(postgres, port) > 2
        broken = run_broken(pytester.path, staging, staging.copy())
    finally:
        with postgres.superuser(port=port, dbname="postgres") as replica:
            replica.execute("SELECT pg_wal_replay_resume()")
        with postgres.superuser(dbname="postgres") as primary:
            primary.execute("DROP TABLE IF EXISTS s789_lag_probe")
    assert_only(
        broken,
        good_items,
        "7.2.2",
        f"postgres-replica-2 vcci_app@127.0.0.1:{port}",
        "replay lag (s)",
        "expected < 1",
    )


# --- 8.1.2 ----------------------------------------------------------------------------------


def test_bucket_without_noncurrent_expiry(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    tables = staging.copy()
    tables["expect"]["aws"]["buckets"].append(EXTRA_BUCKET)
    broken = run_broken(pytester.path, staging, tables)
    assert_only(
        broken,
        good_items,
        "8.1.2",
        f"bucket {EXTRA_BUCKET}: lifecycle: ",
        "whole-bucket noncurrent-version expiry: observed none, expected after 30 days",
    )


# --- 8.1.3 ----------------------------------------------------------------------------------


def test_uncommitted_manifest_change(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    repository = pytester.path / "vcci-infra"
    shutil.copytree(staging.tables["docs"]["manifests_repository"], repository)
    with (repository / "k8s" / "10-backend.yaml").open("a") as fh:
        fh.write("# hotfix: replicas raised by hand\n")
    tables = staging.copy()
    tables["docs"]["manifests_repository"] = str(repository)
    broken = run_broken(pytester.path, staging, tables)
    assert_only(
        broken,
        good_items,
        "8.1.3",
        f"repository {repository}",
        'uncommitted changes: observed ["k8s/10-backend.yaml"]',
    )


# --- 8.2.3 ----------------------------------------------------------------------------------


def test_missing_dr_runbook(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    root = pytester.path / "platform"
    shutil.copytree(Path(staging.tables["docs"]["directory"]) / "docs", root / "docs")
    (root / "docs" / "runbooks" / "DATA_RECOVERY.md").unlink()
    tables = staging.copy()
    tables["docs"]["directory"] = str(root)
    broken = run_broken(pytester.path, staging, tables)
    assert_only(
        broken,
        good_items,
        "8.2.3",
        f"{root}/docs/runbooks/DATA_RECOVERY.md: runbook: observed missing",
    )


# --- 9.1.3 ----------------------------------------------------------------------------------


def test_missing_dmarc_record(
    staging: Staging, good_items: dict[str, Any], pytester: pytest.Pytester
) -> None:
    mail = MailDnsComponent(workdir=pytester.path / "mail", missing=frozenset({"dmarc"}))
    mail.workdir.mkdir()
    try:
        mail.start()
        tables = {**staging.copy(), **mail.env_tables()}
        broken = run_broken(pytester.path, staging, tables)
    finally:
        mail.stop()
    assert_only(
        broken,
        good_items,
        "9.1.3",
        f"TXT _dmarc.vcci.greenlang.io via 127.0.0.1:{mail.dns_port}",
        "DMARC records: observed NXDOMAIN",
    )
