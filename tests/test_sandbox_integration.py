"""The whole sandbox through the plugin: --vcci-sandbox end to end, every fixture against real
servers, secrets never leaving, one LIST per kind under -n 2, and teardown on interrupt."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from secrets_support import assert_no_leak

from pytest_vcci.sandbox.base import SandboxError, require_binary

PROBE_TESTS = """
import json, os, pytest

SECRETS_OUT = os.environ["PROBE_SECRETS_OUT"]

@pytest.fixture(scope="session", autouse=True)
def dump_secrets(vcci_context):
    # The test harness needs the values to look for them; a real check never does this.
    with open(SECRETS_OUT, "w") as fh:
        json.dump({"secrets": vcci_context.settings.secrets(), "run_dir": str(vcci_context.run_dir)}, fh)

@pytest.mark.checklist("1.1.1")
@pytest.mark.parametrize("n", range(6))
def test_cluster(cluster, evidence, n):
    for kind in ("nodes", "deployments", "pods", "services"):
        evidence.check(kind, len(cluster.list(kind, "*" if kind == "nodes" else None)), "> 0",
                       len(cluster.list(kind, "*" if kind == "nodes" else None)) > 0)
    secrets = cluster.list("secrets")
    evidence.record("secret values", [s.get("data") for s in secrets])

@pytest.mark.checklist("1.1.2")
def test_db(db, evidence, vcci_context):
    evidence.record("dsn as configured", vcci_context.settings.table("postgres").dsn)
    evidence.check("server_version", db.server_version(), ">= 150000", db.server_version() >= 150000)
    print("connecting with", vcci_context.settings.table("postgres").dsn)

@pytest.mark.checklist("1.1.3")
def test_cache(cache, evidence, vcci_context):
    evidence.attach("redis url", vcci_context.settings.table("redis").url)
    evidence.check("appendonly", cache.config_get("appendonly"), "yes", True)

@pytest.mark.checklist("1.1.4")
def test_cloud(cloud, evidence, vcci_context):
    buckets = cloud.client("s3").list_buckets()["Buckets"]
    evidence.check("buckets", len(buckets), "> 0", len(buckets) > 0)
    assert vcci_context.settings.table("aws").secret_access_key == "shown in the failure", "leak attempt"

@pytest.mark.checklist("4.1.5")
def test_api(api, evidence, vcci_context):
    table = vcci_context.settings.table("api")
    evidence.record("credentials", {"token": table.token, "api_key": table.api_key})
    evidence.check("ready", api.get("/health/ready").status_code, 200, True)
    raise AssertionError(f"Authorization: Bearer {table.token}")

@pytest.mark.checklist("5.1.1")
def test_monitoring(prometheus, alertmanager, evidence):
    evidence.check("retention", prometheus.flags().get("storage.tsdb.retention.time"), "15d", True)
    evidence.check("receivers", alertmanager.receivers(), "non-empty", bool(alertmanager.receivers()))
"""


PROBE_CONFTEST = """
import json, os, urllib.request

def pytest_sessionfinish(session):
    # On the controller, while the sandbox is still up: what the emulator was asked.
    if hasattr(session.config, "workerinput"):
        return
    from pytest_vcci.context import CONTEXT_KEY
    server = session.config.stash[CONTEXT_KEY].settings.table("kubernetes").server
    with urllib.request.urlopen(server + "/_emulator/requests", timeout=5) as answer:
        counts = json.load(answer)
    with open(os.environ["PROBE_KUBE_OUT"], "w") as fh:
        json.dump(counts, fh)
"""


@pytest.fixture(scope="module")
def sandbox_run(pytester_module: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One --vcci-sandbox run under -n 2 of the probe tests; its outputs."""
    secrets_out = tmp_path_factory.mktemp("secrets") / "secrets.json"
    kube_out = secrets_out.with_name("kube.json")
    (pytester_module / "test_probe.py").write_text(PROBE_TESTS)
    (pytester_module / "conftest.py").write_text(PROBE_CONFTEST)
    report_dir = pytester_module / "out"
    proc = subprocess.run(
        [
            str(Path(__file__).parents[1] / ".venv" / "bin" / "python"),
            "-m",
            "pytest",
            "--vcci-sandbox",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            "--vcci-report-dir",
            str(report_dir),
            "-l",
            "--tb=long",
            "test_probe.py",
        ],
        cwd=pytester_module,
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), "PROBE_SECRETS_OUT": str(secrets_out), "PROBE_KUBE_OUT": str(kube_out)},
    )
    assert secrets_out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    dumped = json.loads(secrets_out.read_text())
    return {
        "proc": proc,
        "reports": report_dir,
        **dumped,
        "kube": json.loads(kube_out.read_text()),
        "evidence": json.loads((report_dir / "evidence.json").read_text()),
    }


@pytest.fixture(scope="module")
def pytester_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-run")


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("VCCI_SANDBOX_")}


def test_every_fixture_works_against_the_sandbox(sandbox_run: dict) -> None:
    # The probe tests are none of the catalog's checks: their outcomes, not the items', matter.
    outcomes = {t["nodeid"].split("::")[1]: t["outcome"] for t in sandbox_run["evidence"]["tests"]}
    assert {outcomes[f"test_cluster[{n}]"] for n in range(6)} == {"passed"}
    assert outcomes["test_db"] == outcomes["test_cache"] == outcomes["test_monitoring"] == "passed"
    assert (
        outcomes["test_cloud"] == outcomes["test_api"] == "failed"
    )  # the deliberate leak attempts
    statuses = {i["id"]: i["status"] for i in sandbox_run["evidence"]["items"]}
    assert statuses["1.1.4"] == statuses["4.1.5"] == "failed"
    targets = sandbox_run["evidence"]["run"]["targets"]
    assert targets
    assert all(t["reachable"] for t in targets.values()), targets


def test_no_secret_reaches_any_report_or_the_console(sandbox_run: dict) -> None:
    secrets = sandbox_run["secrets"]
    assert len(secrets) >= 6, secrets  # pg, redis, kube token, aws key, api token, api key
    files = [p for p in sandbox_run["reports"].rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "evidence.json",
        "report.html",
        "checklist.html",
        "junit.xml",
    }
    output = sandbox_run["proc"].stdout + sandbox_run["proc"].stderr
    assert "leak attempt" in output  # the failing tests did run and print
    # Raw, escaped, URL-encoded, base64: any form (the values themselves stay out of the text).
    outputs = {"console": output, **{p.name: p.read_text(errors="replace") for p in files}}
    assert_no_leak(outputs, {f"secret {i}": s for i, s in enumerate(secrets)})


def test_kubernetes_lists_each_kind_once_per_run_under_xdist(sandbox_run: dict) -> None:
    # 6 tests on 2 workers each list nodes, deployments, pods, services and secrets: the
    # emulator must see ONE list of each (kind, namespace) for the whole run.
    assert sandbox_run["evidence"]["run"]["workers"] == 2
    by_path = sandbox_run["kube"]["by_path"]
    lists = {
        path: n
        for path, n in by_path.items()
        if path.rsplit("/", 1)[-1] in {"nodes", "deployments", "pods", "services", "secrets"}
    }
    assert len(lists) == 5, by_path
    assert all(n == 1 for n in lists.values()), lists
    assert all(path.startswith("GET ") for path in by_path), by_path


def test_sandbox_is_torn_down_after_the_run(sandbox_run: dict) -> None:
    run_dir = sandbox_run["run_dir"]
    assert not Path(run_dir).exists()
    assert _processes_mentioning(run_dir) == []


def test_sandbox_is_torn_down_when_the_run_is_interrupted(tmp_path: Path) -> None:
    (tmp_path / "test_interrupt.py").write_text(
        "import json, os, pytest\n"
        "@pytest.mark.checklist('1.1.1')\n"
        "def test_stop(vcci_context):\n"
        "    open(os.environ['RUN_DIR_OUT'], 'w').write(str(vcci_context.run_dir))\n"
        "    raise KeyboardInterrupt\n"
    )
    out = tmp_path / "run_dir.txt"
    proc = subprocess.run(
        [
            str(Path(__file__).parents[1] / ".venv" / "bin" / "python"),
            "-m",
            "pytest",
            "--vcci-sandbox",
            "-p",
            "no:cacheprovider",
            "--vcci-report-dir",
            "out",
            "test_interrupt.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), "RUN_DIR_OUT": str(out)},
    )
    assert proc.returncode == 2, proc.stdout[-2000:]
    run_dir = out.read_text()
    assert (
        json.loads((tmp_path / "out" / "evidence.json").read_text())["run"]["verdict"]
        == "incomplete"
    )
    assert _processes_mentioning(run_dir) == []


def test_a_missing_server_binary_names_the_apt_get_command() -> None:
    with pytest.raises(SandboxError) as excinfo:
        require_binary("vcci-no-such-server", "vcci-no-such-package")
    assert "apt-get update && apt-get install -y vcci-no-such-package" in str(excinfo.value)


def _processes_mentioning(text: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]
