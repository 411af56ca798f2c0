"""Shared fixtures of the readiness suites: settings, thresholds and expected resources.

Checks read numbers from the catalog's thresholds (overridable per environment) and resource
names from the environment file's [expect] table, never from literals in a test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture(scope="session")
def settings(vcci_context: Any) -> Any:
    return vcci_context.settings


@pytest.fixture(scope="session")
def threshold(settings: Any) -> Callable[[str, str], Any]:
    """``threshold("3.2.4", "backend_replicas")``: the environment's value or the catalog's."""
    return settings.threshold


@pytest.fixture(scope="session")
def expect(settings: Any) -> Callable[..., Any]:
    """``expect("aws", "buckets")``: a value of the [expect] table; skip when it is absent."""

    def lookup(*path: str, default: Any = ...) -> Any:
        node: Any = settings.expect
        for key in path:
            if not isinstance(node, dict) or key not in node:
                if default is not ...:
                    return default
                pytest.skip(f"[expect.{'.'.join(path)}] is not set in {settings.source}")
            node = node[key]
        return node

    return lookup


@pytest.fixture(scope="session")
def namespace(vcci_context: Any) -> str:
    """The application namespace ([kubernetes].namespace)."""
    table = vcci_context.target_table("kubernetes")
    return str(table.namespace)


@pytest.fixture(scope="module")
def app_configmap(
    cluster: Any, namespace: str, expect: Callable[..., Any]
) -> tuple[dict[str, Any] | None, str]:
    """The application ConfigMap ([expect.kubernetes].app_configmap): every YAML/JSON document
    in it, merged (None: no ConfigMap), and where it is, as evidence names it."""
    import yaml

    name = expect("kubernetes", "app_configmap")
    where = f"configmap {namespace}/{name}"
    configmap = cluster.get("configmaps", name, namespace)
    if configmap is None:
        return None, where
    merged: dict[str, Any] = {}
    for text in (configmap.get("data") or {}).values():
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # a file that is not configuration (a script, a PEM)
        if isinstance(document, dict):
            merged.update(document)
    return merged, where


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "each(argname, *path): parametrize argname over the list (or table keys) at "
        "[expect.<path>] of the environment file, one test per resource",
    )


def expected(config: pytest.Config, *path: str, default: Any = None) -> Any:
    """A value of [expect] at collection time (None when the plugin is not active)."""
    from pytest_vcci.context import CONTEXT_KEY

    context = config.stash.get(CONTEXT_KEY, None)
    node: Any = context.settings.expect if context is not None else {}
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def _unset_reason(config: pytest.Config, path: list[str], value: Any) -> str:
    """``[expect.aws].ecr_repositories is not set in staging.toml`` (or ``is empty``)."""
    from pytest_vcci.context import CONTEXT_KEY

    context = config.stash.get(CONTEXT_KEY, None)
    source = context.settings.source if context is not None else "the environment file"
    table, key = ".".join(["expect", *path[:-1]]), path[-1]
    state = "is not set" if value is None else "is empty"
    return f"[{table}].{key} {state} in {source}: no resource to check"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for mark in metafunc.definition.iter_markers("each"):
        argname, *path = mark.args
        values = expected(metafunc.config, *path)
        if isinstance(values, dict):
            values = list(values)
        if not values:
            # One skipped instance whose reason names the table and key (pytest's own empty
            # parameter set would only say "got empty parameter set").
            reason = _unset_reason(metafunc.config, path, values)
            skipped = pytest.param(None, marks=pytest.mark.skip(reason=reason))
            metafunc.parametrize(argname, [skipped], ids=["unset"])
            continue
        metafunc.parametrize(argname, list(values), ids=[str(v) for v in values])
