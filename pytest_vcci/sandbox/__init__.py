"""The embedded local staging: real servers (PostgreSQL, Redis, Prometheus, Alertmanager, moto,
a sample API over HTTPS) and the Kubernetes API emulator, on 127.0.0.1 and free ports.

``Sandbox(workdir).up()`` starts everything and writes ``workdir/environment.toml`` (secrets as
``${VAR}``, their values in ``env_vars()``); ``down()`` stops every process it started. The state
file lets ``vcci sandbox down`` stop a sandbox started by another process.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_vcci.sandbox.base import Component, SandboxError, stop_pids

# (name, module, class): the API starts first, so Prometheus can scrape its /metrics.
COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("api", "pytest_vcci.sandbox.sample_api", "SampleApiComponent"),
    ("kubernetes", "pytest_vcci.sandbox.kube", "KubeComponent"),
    ("postgres", "pytest_vcci.sandbox.postgres", "PostgresComponent"),
    ("redis", "pytest_vcci.sandbox.redis", "RedisComponent"),
    ("aws", "pytest_vcci.sandbox.aws", "AwsComponent"),
    ("monitoring", "pytest_vcci.sandbox.monitoring", "MonitoringComponent"),
    ("artifacts", "pytest_vcci.sandbox.artifacts", "ArtifactsComponent"),
    ("mail_dns", "pytest_vcci.sandbox.mail_dns", "MailDnsComponent"),
)
# The human facts of the sandbox: one packaged file, its dates written as of ATTESTATIONS_AS_OF.
# A sandbox writes a copy with every date moved to its own start day (attestations_as_of), so
# each record is as old, and expires as far ahead, on any day the sandbox starts.
ATTESTATIONS = Path(__file__).parent / "sandbox.attestations.toml"
ATTESTATIONS_AS_OF = dt.date(2026, 11, 22)
ATTESTATIONS_FILE = "attestations.toml"
# The lines whose days move: a record's date, expiry, and the days its statement names.
_DATED_LINE = re.compile(r"^(?:date|expires|statement) = .*$", re.M)
_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# Staging's shape where a component's default is smaller (its own tests use the default).
STAGING_OPTIONS: dict[str, dict[str, Any]] = {
    # 1.1.2: the primary, two streaming read replicas and PgBouncer in front.
    "postgres": {"replicas": 2, "pgbouncer": True},
    # 7.1.3 and 9.1.2: the workers' steady load (and its last hour, backfilled into Prometheus)
    # and the emission factor providers' response times.
    "api": {"workload": True, "factor_latency_ms": {"ecoinvent": 35.0, "desnz": 70.0, "epa": 85.0}},
}
STATE = "state.json"
ENV_FILE = "environment.toml"
SECRETS_FILE = "secrets.env"

__all__ = ["Sandbox", "SandboxError", "attestations_as_of", "down_from_state"]


def attestations_as_of(day: dt.date) -> str:
    """The sandbox's attestations with every record's date and expiry moved by the days from
    ATTESTATIONS_AS_OF to ``day``: the 8.2.1 restore drill is always 6 days old, 10.2.3 always
    expired, every other record valid for years, whatever day the sandbox starts."""
    shift = day - ATTESTATIONS_AS_OF

    def moved_day(match: re.Match[str]) -> str:
        return str(dt.date.fromisoformat(match[0]) + shift)

    def moved_line(match: re.Match[str]) -> str:
        return _DAY.sub(moved_day, match[0])

    return _DATED_LINE.sub(moved_line, ATTESTATIONS.read_text(encoding="utf-8"))


class Sandbox:
    """All sandbox components, started together and stopped together."""

    def __init__(
        self,
        workdir: Path,
        *,
        only: tuple[str, ...] | None = None,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.only = only
        self.options = options or {}
        self.components: list[Component] = []
        self.timings: dict[str, float] = {}
        self.started_on = dt.datetime.now(dt.UTC).date()  # the day its dates are relative to

    def _make(self, name: str, module: str, cls: str, **extra: Any) -> Component:
        factory = getattr(importlib.import_module(module), cls)
        options = {**STAGING_OPTIONS.get(name, {}), **self.options.get(name, {}), **extra}
        component: Component = factory(workdir=self.workdir / name, **options)
        component.workdir.mkdir(parents=True, exist_ok=True)
        return component

    def up(self) -> Path:
        """Start everything; on any failure stop what started and raise SandboxError."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self._start_all()
        except BaseException:
            self.down()
            raise
        self.timings["total"] = round(time.monotonic() - started, 2)
        return self._write_files()

    def _start_all(self) -> None:
        wanted = [c for c in COMPONENTS if self.only is None or c[0] in self.only]
        first = [c for c in wanted if c[0] == "api"]
        for name, module, cls in first:
            self._start(self._make(name, module, cls))
        rest = []
        for name, module, cls in wanted:
            if name == "api":
                continue
            extra: dict[str, Any] = {}
            if name == "monitoring" and self.components:
                extra["scrape_targets"] = self._api_scrape_targets()
                extra["probe_targets"] = self._api_probe_targets()
                extra["history"] = getattr(self.components[0], "history", None)
            rest.append(self._make(name, module, cls, **extra))
        with ThreadPoolExecutor(max_workers=len(rest) or 1) as pool:
            errors = [f.exception() for f in [pool.submit(self._start, c) for c in rest]]
        problems = [e for e in errors if e is not None]
        if problems:
            raise SandboxError("; ".join(str(e) for e in problems)) from problems[0]

    def _start(self, component: Component) -> None:
        began = time.monotonic()
        self.components.append(component)
        component.start()
        self.timings[component.name] = round(time.monotonic() - began, 2)
        self._save_state()

    def _api_probe_targets(self) -> dict[str, Any]:
        """What the synthetic checks (5.3.3) probe on the sample API."""
        from pytest_vcci.sandbox.synthetic import probe_targets_for

        return probe_targets_for(next((c for c in self.components if c.name == "api"), None))

    def _api_scrape_targets(self) -> list[str]:
        api = next((c for c in self.components if c.name == "api"), None)
        targets = getattr(api, "scrape_targets", None)
        return list(targets()) if callable(targets) else []

    def env_tables(self) -> dict[str, Any]:
        tables: dict[str, Any] = {
            "environment": {
                "name": "sandbox",
                "description": "pytest-vcci embedded local staging (real servers on 127.0.0.1)",
                "attestations": str(self.workdir / ATTESTATIONS_FILE),
            }
        }
        expect: dict[str, Any] = {}
        thresholds: dict[str, dict[str, Any]] = {}
        for component in self.components:
            # Merged per table: several components may add keys to one table ([reports], [host]).
            for name, table in component.env_tables().items():
                tables[name] = {**tables.get(name, {}), **table}
            more = getattr(component, "expect", None)
            if callable(more):
                for name, value in more().items():
                    both = isinstance(value, dict) and isinstance(expect.get(name), dict)
                    expect[name] = {**expect[name], **value} if both else value
            # Catalog thresholds a component differs from by design, merged per item.
            differs = getattr(component, "thresholds", None)
            if callable(differs):
                for item, values in differs().items():
                    thresholds.setdefault(item, {}).update(values)
        if expect:
            tables["expect"] = expect
        if thresholds:
            tables["thresholds"] = thresholds
        return tables

    def env_vars(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for component in self.components:
            merged.update(component.env_vars())
        return merged

    def _write_files(self) -> Path:
        import tomli_w

        (self.workdir / ATTESTATIONS_FILE).write_text(attestations_as_of(self.started_on))
        env_file = self.workdir / ENV_FILE
        header = "# Written by `vcci sandbox up`; secrets are ${VAR}s, see secrets.env\n"
        env_file.write_text(header + tomli_w.dumps(self.env_tables()))
        secrets = self.workdir / SECRETS_FILE
        secrets.touch(mode=0o600)
        secrets.write_text(
            "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(self.env_vars().items()))
        )
        self._save_state()
        return env_file

    def _save_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "components": {c.name: c.pids for c in self.components},
            "timings": self.timings,
            "env_file": str(self.workdir / ENV_FILE),
        }
        (self.workdir / STATE).write_text(json.dumps(state, indent=2))

    def down(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:  # one stuck component must not keep the others running
                stop_pids(component.pids)
        self.components.clear()
        (self.workdir / STATE).unlink(missing_ok=True)


def down_from_state(workdir: Path) -> list[str]:
    """Stop a sandbox started by another process; the names of what was stopped."""
    path = Path(workdir) / STATE
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    for pids in state["components"].values():
        stop_pids(pids)
    path.unlink(missing_ok=True)
    return list(state["components"])
