"""Reading Prometheus and Alertmanager configuration: durations, the threshold of an alert
expression, and which receivers an Alertmanager route tree sends a given alert to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def duration_seconds(value: str | int | float | None) -> float | None:
    """A Prometheus duration (``30s``, ``1h30m``, ``15d``) in seconds; None if it is not one."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0 if text == "0" else None
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position else None


# A comparison against a number at the end of an expression: "... > 1", "... >= 0.01".
_TRAILING_COMPARISON = re.compile(
    r"(>=|>|<=|<|==|!=)\s*(?:bool\s+)?([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*\)?\s*$"
)


def expression_threshold(expr: str) -> tuple[str, float] | None:
    """(operator, number) of the comparison an alert expression ends with, if any."""
    match = _TRAILING_COMPARISON.search(" ".join(expr.split()))
    if not match:
        return None
    return match.group(1), float(match.group(2))


# --- Alertmanager routing -----------------------------------------------------------------

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def _matchers(route: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every matcher of a route: ``matchers`` strings and the older ``match``/``match_re``."""
    found: list[tuple[str, str, str]] = []
    for text in route.get("matchers") or []:
        match = _MATCHER.match(str(text))
        if match:
            found.append((match.group(1), match.group(2), match.group(3)))
    found += [(k, "=", str(v)) for k, v in (route.get("match") or {}).items()]
    found += [(k, "=~", str(v)) for k, v in (route.get("match_re") or {}).items()]
    return found


def _matches(route: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for name, operator, value in _matchers(route):
        have = labels.get(name, "")
        if operator == "=" and have != value:
            return False
        if operator == "!=" and have == value:
            return False
        if operator == "=~" and not re.fullmatch(value, have):
            return False
        if operator == "!~" and re.fullmatch(value, have):
            return False
    return True


def route_receivers(route: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """The receivers an alert with ``labels`` reaches, as Alertmanager routes it: depth first,
    the first matching child wins unless it says ``continue``; no matching child -> this node."""
    return _route(route, labels, str(route.get("receiver", "")))


def _route(route: Mapping[str, Any], labels: Mapping[str, str], inherited: str) -> list[str]:
    receiver = str(route.get("receiver") or inherited)
    reached: list[str] = []
    for child in route.get("routes") or []:
        if not _matches(child, labels):
            continue
        reached += _route(child, labels, receiver)
        if not child.get("continue"):
            break
    return reached or [receiver]


INTEGRATIONS = (
    "pagerduty_configs",
    "opsgenie_configs",
    "slack_configs",
    "webhook_configs",
    "email_configs",
    "victorops_configs",
    "msteams_configs",
    "pushover_configs",
    "sns_configs",
    "telegram_configs",
    "wechat_configs",
    "discord_configs",
    "webex_configs",
)
PAGING = ("pagerduty_configs", "opsgenie_configs", "victorops_configs")


def receiver_integrations(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Receiver name -> its integration kinds (``pagerduty``, ``slack``, ...)."""
    found: dict[str, list[str]] = {}
    for receiver in config.get("receivers") or []:
        kinds = [k.removesuffix("_configs") for k in INTEGRATIONS if receiver.get(k)]
        found[str(receiver.get("name"))] = kinds
    return found


def paging_receivers(config: Mapping[str, Any]) -> list[str]:
    kinds = {k.removesuffix("_configs") for k in PAGING}
    return [name for name, have in receiver_integrations(config).items() if kinds & set(have)]


def all_names(items: Sequence[Mapping[str, Any]], key: str = "name") -> list[str]:
    return [str(i.get(key)) for i in items]


__all__ = [
    "duration_seconds",
    "expression_threshold",
    "paging_receivers",
    "receiver_integrations",
    "route_receivers",
]
