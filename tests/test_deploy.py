"""deploy/: the nightly CronJob, its read-only RBAC, the image, and the upload step.

The role must grant list only (least privilege: a run lists each kind once and never gets one
object), on exactly the kinds the Kubernetes target lists (its kinds table) and every kind the
suites ask for; these tests read both at test time, so a kind added to either without the role
is caught here. tests/targets/test_kubernetes.py runs the target with exactly these rules.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_vcci.history import stamp

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
READ_VERBS = {"get", "list", "watch"}
LIST = {"list"}  # what a run does with every kind
WRITE_VERBS = {
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "approve",
    "sign",
    "*",
}
# cluster.list("deployments"), cluster.get("hpa", ...), vcci_cluster.list('pods', ns)
SUITE_CALL = re.compile(r"""\b\w*cluster\w*\.(?:list|get)\(\s*["']([A-Za-z.]+)["']""")


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def one(name: str, kind: str) -> dict[str, Any]:
    found = [d for d in documents(name) if d["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}"
    return found[0]


def role() -> dict[str, Any]:
    return one("clusterrole.yaml", "ClusterRole")


def granted() -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs."""
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role()["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def kubernetes_target() -> Any:
    try:
        return importlib.import_module("pytest_vcci.targets.kubernetes")
    except ModuleNotFoundError as exc:
        if exc.name != "pytest_vcci.targets.kubernetes":
            raise
        pytest.skip("pytest_vcci/targets/kubernetes.py is not in this checkout yet")


def table_kinds() -> set[tuple[str, str]]:
    return {(k.group, k.name) for k in kubernetes_target().KINDS.values()}


def suite_kind_names() -> Iterator[tuple[Path, str]]:
    for path in sorted((ROOT / "suites").rglob("*.py")):
        for name in SUITE_CALL.findall(path.read_text()):
            yield path, name


# --- RBAC -----------------------------------------------------------------------------------


def test_the_role_grants_no_write_verb_and_no_wildcard() -> None:
    for rule in role()["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no nonResourceURLs
        assert set(rule["verbs"]) <= READ_VERBS, rule
        assert not set(rule["verbs"]) & WRITE_VERBS
        assert "*" not in rule["apiGroups"]
        assert not any("*" in r for r in rule["resources"]), rule
    assert "aggregationRule" not in role()


def test_the_role_covers_exactly_the_kinds_the_target_lists() -> None:
    grants = granted()
    listed = {key for key, verbs in grants.items() if verbs == LIST}
    assert listed == table_kinds()
    # Subresources: only pods/log, read with get, for cluster.pod_logs().
    subresources = {key: verbs for key, verbs in grants.items() if "/" in key[1]}
    target = kubernetes_target()
    if hasattr(target.Cluster, "pod_logs"):
        assert subresources == {("", "pods/log"): {"get"}}
    else:
        assert subresources == {}
    assert set(grants) == listed | set(subresources)


def test_every_kind_the_suites_list_is_granted() -> None:
    target = kubernetes_target()
    grants = granted()
    for path, name in suite_kind_names():
        kind = target.resolve_kind(name)  # an unknown kind fails here, naming it
        assert grants.get((kind.group, kind.name), set()) >= LIST, (
            f"{path.relative_to(ROOT)}: lists {name!r} ({kind.group or 'core'}/{kind.name}), "
            "which deploy/clusterrole.yaml does not grant"
        )


def test_the_suite_regex_finds_the_calls_it_must() -> None:
    sample = "cluster.list('deployments')\nobjs = cluster.get(\"hpa\", 'x')\nself.cluster.list( 'pods', ns)"
    assert SUITE_CALL.findall(sample) == ["deployments", "hpa", "pods"]


def test_the_binding_gives_the_role_to_the_job_and_nothing_else() -> None:
    account = one("serviceaccount.yaml", "ServiceAccount")
    binding = one("clusterrolebinding.yaml", "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role()["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


# --- CronJob and image ----------------------------------------------------------------------


def test_the_cronjob_runs_nightly_as_the_read_only_account() -> None:
    job = one("cronjob.yaml", "CronJob")
    account = one("serviceaccount.yaml", "ServiceAccount")
    assert job["metadata"]["namespace"] == account["metadata"]["namespace"]
    assert job["spec"]["schedule"] == "0 2 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["/opt/vcci/nightly.sh"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VCCI_S3_URI"].startswith("s3://")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/vcci", "/reports", "/tmp"} <= mounts
    assert env["VCCI_REPORT_ROOT"] == "/reports"
    assert env["VCCI_ENV_FILE"].startswith("/etc/vcci/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["environment"]["configMap"]["name"] == "pytest-vcci-environment"


def test_the_exporter_runs_once_read_only_as_the_job_does() -> None:
    """One exporter, replaced not rolled (never two runs at once), as the read-only account,
    with the nightly job's environment and secrets, its port behind the Service."""
    deployment = one("exporter.yaml", "Deployment")
    service = one("exporter.yaml", "Service")
    account = one("serviceaccount.yaml", "ServiceAccount")
    job = one("cronjob.yaml", "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:2] == ["vcci", "exporter"]
    assert command[command.index("--interval") + 1] == "15m"
    assert "--vcci-allow-intrusive" not in command
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"] == [job["containers"][0]["envFrom"][0]]  # the targets' secrets
    assert container["image"] == job["containers"][0]["image"]
    port = command[command.index("--port") + 1]
    (exposed,) = container["ports"]
    assert str(exposed["containerPort"]) == port
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == exposed["name"]
    history = command[command.index("--history") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[history]]["persistentVolumeClaim"]["claimName"]
    assert one("exporter.yaml", "PersistentVolumeClaim")["metadata"]["name"] == claim
    assert volumes[mounts["/etc/vcci"]]["configMap"]["name"] == "pytest-vcci-environment"


def test_the_rules_alert_on_critical_items_and_stale_runs() -> None:
    groups = one("prometheusrule.yaml", "PrometheusRule")["spec"]["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert 'severity="critical"' in rules["VcciCriticalItemFailed"]["expr"]
    assert "2 * vcci_run_interval_seconds" in rules["VcciReadinessStale"]["expr"]
    monitor = one("prometheusrule.yaml", "ServiceMonitor")
    service = one("exporter.yaml", "Service")
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_the_example_environment_is_a_valid_in_cluster_environment() -> None:
    import tomllib

    from pytest_vcci.settings import build_settings, interpolate

    config_map = one("environment-configmap.yaml", "ConfigMap")
    raw = tomllib.loads(config_map["data"]["environment.toml"])
    # What the Job's Secret would give: DSNs and URLs are validated after interpolation.
    secrets = {
        "VCCI_DATABASE_URL": "postgresql://vcci@db.example:5432/vcci?sslmode=verify-full",
        "VCCI_REDIS_URL": "rediss://vcci:pw@redis.example:6379/0",
    }
    source = "deploy/environment-configmap.yaml"
    settings = build_settings(interpolate(raw, source, "", secrets), source)
    assert settings.require("kubernetes").in_cluster is True
    job = one("cronjob.yaml", "CronJob")
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VCCI_ENV_FILE"] == "/etc/vcci/" + next(iter(config_map["data"]))


def test_the_dockerfile_copies_files_that_exist_and_runs_the_nightly_script() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    workdir = re.findall(r"^WORKDIR (\S+)", text, re.M)
    assert workdir
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = shlex.split(line)
        if sources[0].startswith("--from="):
            continue  # from an earlier stage, not from the checkout
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile: COPY {source}: no such file"
    assert re.search(r"^USER 10001", text, re.M)
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry == [f"{workdir[-1]}/nightly.sh"]
    assert "deploy/nightly.sh" in text
    assert "deploy/upload_bundle.py" in text


def test_the_image_installs_the_wheel_and_holds_no_copy_of_the_repository() -> None:
    """The last stage installs the wheel an earlier stage built; of the checkout it copies only
    the nightly job's two scripts (the suites come with the package)."""
    stages = re.split(r"^FROM ", (DEPLOY / "Dockerfile").read_text(), flags=re.M)[1:]
    *builders, image = stages
    assert any(re.search(r"^RUN pip wheel .* \.$", stage, re.M) for stage in builders)
    copied = [shlex.split(line)[:-1] for line in re.findall(r"^COPY (.+)$", image, re.M)]
    from_checkout = {
        s for sources in copied if not sources[0].startswith("--from=") for s in sources
    }
    assert from_checkout == {"deploy/nightly.sh", "deploy/upload_bundle.py"}
    assert re.search(r"^RUN pip install /tmp/dist/pytest_vcci-\*\.whl", image, re.M)
    nightly = (DEPLOY / "nightly.sh").read_text()
    assert "--vcci-suites" in nightly  # runs the installed suites, not a path in the image


def test_the_nightly_script_is_valid_sh_and_executable() -> None:
    script = DEPLOY / "nightly.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(script)], check=True)
    mode = subprocess.run(
        ["git", "ls-files", "-s", "deploy/nightly.sh"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    if mode:  # committed: executable in git too, so the image gets it executable
        assert mode.startswith("100755")


# --- the upload step, against a real S3 API (moto's server on loopback) --------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server_module = pytest.importorskip("moto.server", reason="moto[server] (the dev extra)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    bucket = f"evidence-{abs(hash(monkeypatch)) % 10**8}"
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return client, bucket


@pytest.fixture
def upload_bundle() -> Any:
    sys.path.insert(0, str(DEPLOY))
    try:
        return importlib.import_module("upload_bundle")
    finally:
        sys.path.remove(str(DEPLOY))


CHECKS = """
import pytest

@pytest.mark.checklist("1.1.1")
def test_cluster(evidence):
    evidence.check("nodes ready", 3, ">= 3", True)
"""


def report(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_checks=CHECKS)
    pytester.runpytest("-p", "no:cacheprovider", "--vcci-report-dir", "out")
    return pytester.path / "out"


def test_upload_puts_the_bundle_manifest_last_and_a_latest_pointer(
    pytester: pytest.Pytester, s3: tuple[Any, str], upload_bundle: Any
) -> None:
    client, bucket = s3
    out = report(pytester)
    run = json.loads((out / "evidence.json").read_text())["run"]
    written = upload_bundle.upload(out, f"s3://{bucket}/nightly")
    base = f"nightly/default/{upload_bundle.stamp(run['started_at'])}"
    assert written[-2:] == [f"{base}/manifest.json", "nightly/default/latest"]
    names = [key.removeprefix(base + "/") for key in written[:-1]]
    assert sorted(names) == sorted(p.name for p in out.iterdir())
    stored = client.get_object(Bucket=bucket, Key=f"{base}/evidence.json")["Body"].read()
    assert stored == (out / "evidence.json").read_bytes()
    latest = json.loads(
        client.get_object(Bucket=bucket, Key="nightly/default/latest")["Body"].read()
    )
    assert latest == {"run": run["id"], "prefix": base}


def test_upload_refuses_a_bundle_that_does_not_verify(
    pytester: pytest.Pytester, s3: tuple[Any, str], upload_bundle: Any
) -> None:
    client, bucket = s3
    out = report(pytester)
    (out / "junit.xml").write_text("<testsuites/>")
    with pytest.raises(RuntimeError, match=r"does not verify, not uploaded: junit\.xml: changed"):
        upload_bundle.upload(out, f"s3://{bucket}/nightly")
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


NIGHTLY_CHECKS = """
import os
import pytest

@pytest.mark.checklist("1.1.1")
def test_cluster(evidence):
    evidence.check("nodes ready", 2, ">= 3", False)

@pytest.mark.checklist("1.1.2")
def test_checks_do_not_see_the_upload_credentials(evidence):
    seen = sorted(k for k in os.environ if k.startswith("VCCI_UPLOAD_"))
    evidence.check("upload credentials visible", seen, [], seen == [])
"""


def test_the_nightly_script_checks_then_uploads(
    pytester: pytest.Pytester, s3: tuple[Any, str], tmp_path: Path
) -> None:
    """deploy/nightly.sh end to end: a real pytest run, then the upload; pytest's exit status."""
    client, bucket = s3
    suite = pytester.makepyfile(test_checks=NIGHTLY_CHECKS)
    env_file = pytester.path / "env.toml"
    env_file.write_text('[environment]\nname = "nightly"\n')
    environ = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "VCCI_SUITES": str(suite),
        "VCCI_ENV_FILE": str(env_file),
        "VCCI_REPORT_ROOT": str(tmp_path / "reports"),
        "VCCI_WORKERS": "0",
        "VCCI_S3_URI": f"s3://{bucket}/nightly",
        "VCCI_UPLOAD_AWS_ACCESS_KEY_ID": "uploader",
        "VCCI_UPLOAD_AWS_SECRET_ACCESS_KEY": "uploader-secret",
        "AWS_ENDPOINT_URL": client.meta.endpoint_url,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        ["sh", str(DEPLOY / "nightly.sh")],
        env=environ,
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 1.1.1 (high) failed: blocked
    assert "verdict: BLOCKED" in proc.stdout
    (run_dir,) = (tmp_path / "reports").iterdir()
    evidence = json.loads((run_dir / "evidence.json").read_text())
    statuses = {i["id"]: i["status"] for i in evidence["items"]}
    assert statuses["1.1.1"] == "failed"
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in evidence["tests"]}
    # The checks never saw the upload credentials.
    assert outcomes["test_checks_do_not_see_the_upload_credentials"] == "passed"
    base = f"nightly/nightly/{stamp(evidence['run']['started_at'])}"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"{base}/{p.name}" for p in run_dir.iterdir()} | {"nightly/nightly/latest"}
    assert f"upload_bundle: {len(keys)} objects to s3://{bucket}/nightly: {base}/" in proc.stdout


def test_the_nightly_script_runs_the_installed_suites(tmp_path: Path) -> None:
    """Without VCCI_SUITES the job runs the readiness suites installed with the package: all 92
    items, from a directory holding nothing but the environment file."""
    env_file = tmp_path / "environment.toml"
    env_file.write_text('[environment]\nname = "nightly"\n')
    proc = subprocess.run(
        ["sh", str(DEPLOY / "nightly.sh")],
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "VCCI_ENV_FILE": str(env_file),
            "VCCI_REPORT_ROOT": str(tmp_path / "reports"),
            "VCCI_WORKERS": "0",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Nothing configured: the automated checks skip, the attestation checks find no record.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "bundle kept in" in proc.stdout
    (run_dir,) = (tmp_path / "reports").iterdir()
    evidence = json.loads((run_dir / "evidence.json").read_text())
    assert len(evidence["items"]) == 92
    files = {t["nodeid"].split("::")[0] for t in evidence["tests"]}
    assert {"test_01_pre_deployment.py", "test_12_post_deployment.py"} <= files
    failed = [t for t in evidence["tests"] if t["outcome"] != "skipped"]
    assert failed
    assert all(
        t["message"].startswith("no attestation record") for t in failed if t["outcome"] == "failed"
    )
