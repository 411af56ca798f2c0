"""Framework controls each checklist item supports: SOC 2, ISO/IEC 27001:2022, NIST SP 800-53.

The data lives in ``controls.toml`` next to this module: one table of controls per framework
(identifier and a one-line description in our own words) and, per checklist item, the controls
it supports in each framework, or why none applies. This module models and validates it; the
catalog attaches each item's mapping to its :class:`~pytest_vcci.checklist.catalog.Item`.

Identifiers are checked for their framework's shape at load (``CC6.1``, ``A.8.13``, ``AC-6(9)``),
so a typo is an error naming the file, table and key, not a control an auditor cannot find.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

__all__ = [
    "CONTROLS_RESOURCE",
    "FRAMEWORKS",
    "Control",
    "ControlMapping",
    "ControlsError",
    "Framework",
    "ItemControls",
    "control_id_problem",
    "load_controls",
    "oscal_control_id",
    "parse_controls",
]

CONTROLS_RESOURCE = "controls.toml"

#: The frameworks, in the order every report shows them.
FRAMEWORKS = ("soc2", "iso27001", "nist80053")

_ITEM_ID = re.compile(r"^\d{1,2}\.\d\.\d{1,2}$")
_MAX_DESCRIPTION = 120


class ControlsError(ValueError):
    """The controls data is malformed; the message names the file, the table and the key."""


# --- identifier shapes ----------------------------------------------------------------------

# SOC 2 (2017 Trust Services Criteria): how many criteria each series has.
_SOC2_SERIES = MappingProxyType(
    {
        "CC1": 5, "CC2": 3, "CC3": 4, "CC4": 2, "CC5": 3, "CC6": 8, "CC7": 5, "CC8": 1,
        "CC9": 2, "A1": 3, "C1": 2, "PI1": 5, "P1": 1, "P2": 1, "P3": 2, "P4": 3, "P5": 2,
        "P6": 7, "P7": 1, "P8": 1,
    }
)  # fmt: skip
# ISO/IEC 27001:2022 Annex A: the number of controls in each theme.
_ISO_THEMES = MappingProxyType({5: 37, 6: 8, 7: 14, 8: 34})
# NIST SP 800-53 Rev. 5: the highest base control number of each family.
_NIST_FAMILIES = MappingProxyType(
    {
        "AC": 25, "AT": 6, "AU": 16, "CA": 9, "CM": 14, "CP": 13, "IA": 13, "IR": 10,
        "MA": 7, "MP": 8, "PE": 23, "PL": 11, "PM": 32, "PS": 9, "PT": 8, "RA": 10,
        "SA": 23, "SC": 51, "SI": 23, "SR": 12,
    }
)  # fmt: skip
_NIST_MAX_ENHANCEMENT = 40

_SOC2 = re.compile(r"^(CC[1-9]|A1|C1|PI1|P[1-8])\.([1-9])$")
_ISO = re.compile(r"^A\.([5-8])\.([1-9]\d?)$")
_NIST = re.compile(r"^([A-Z]{2})-([1-9]\d?)(?:\(([1-9]\d?)\))?$")

_EXAMPLES = {
    "soc2": "a Trust Services Criterion such as CC6.1, A1.2, C1.1, PI1.3 or P4.2",
    "iso27001": "an Annex A control such as A.5.30 or A.8.13",
    "nist80053": "a control such as SC-8 or an enhancement such as AC-6(9)",
}


def control_id_problem(framework: str, control_id: str) -> str | None:
    """Why ``control_id`` is not a control of ``framework``, or None when it has the right shape."""
    if framework == "soc2":
        return _soc2_problem(control_id)
    if framework == "iso27001":
        return _iso_problem(control_id)
    if framework == "nist80053":
        return _nist_problem(control_id)
    return f"unknown framework {framework!r} (expected one of {', '.join(FRAMEWORKS)})"


def _soc2_problem(control_id: str) -> str | None:
    match = _SOC2.fullmatch(control_id)
    if match is None:
        return f"{control_id!r} is not {_EXAMPLES['soc2']}"
    series, number = match.group(1), int(match.group(2))
    if number > _SOC2_SERIES[series]:
        return f"{control_id!r}: series {series} has criteria {series}.1..{series}.{_SOC2_SERIES[series]}"
    return None


def _iso_problem(control_id: str) -> str | None:
    match = _ISO.fullmatch(control_id)
    if match is None:
        return f"{control_id!r} is not {_EXAMPLES['iso27001']}"
    theme, number = int(match.group(1)), int(match.group(2))
    if number > _ISO_THEMES[theme]:
        return f"{control_id!r}: theme A.{theme} has controls A.{theme}.1..A.{theme}.{_ISO_THEMES[theme]}"
    return None


def _nist_problem(control_id: str) -> str | None:
    match = _NIST.fullmatch(control_id)
    if match is None:
        return f"{control_id!r} is not {_EXAMPLES['nist80053']}"
    family, number, enhancement = match.group(1), int(match.group(2)), match.group(3)
    if family not in _NIST_FAMILIES:
        return f"{control_id!r}: {family} is not a SP 800-53 Rev. 5 family ({', '.join(_NIST_FAMILIES)})"
    if number > _NIST_FAMILIES[family]:
        return f"{control_id!r}: family {family} has controls {family}-1..{family}-{_NIST_FAMILIES[family]}"
    if enhancement is not None and int(enhancement) > _NIST_MAX_ENHANCEMENT:
        return f"{control_id!r}: no SP 800-53 control has {enhancement} enhancements"
    return None


def oscal_control_id(control_id: str) -> str:
    """NIST's OSCAL catalog form of a SP 800-53 identifier: ``AC-6(9)`` -> ``ac-6.9``."""
    match = _NIST.fullmatch(control_id)
    if match is None:
        raise ValueError(f"{control_id!r} is not a NIST SP 800-53 control identifier")
    family, number, enhancement = match.groups()
    return f"{family.lower()}-{number}" + (f".{enhancement}" if enhancement else "")


# --- model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framework:
    """One control framework: its key (``soc2``), short name and full title."""

    key: str
    name: str
    title: str


@dataclass(frozen=True)
class Control:
    """One control of a framework, with our own one-line description of what it asks for."""

    framework: str
    id: str
    description: str


@dataclass(frozen=True)
class ItemControls:
    """The controls one checklist item supports, per framework, and why none applies where none does.

    ``item.controls["nist80053"]`` is a tuple of control IDs (empty when none applies);
    ``item.controls.not_applicable["soc2"]`` is the reason no SOC 2 control applies.
    """

    mapped: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    not_applicable: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "mapped", MappingProxyType({k: tuple(v) for k, v in self.mapped.items()})
        )
        object.__setattr__(self, "not_applicable", MappingProxyType(dict(self.not_applicable)))

    def __getitem__(self, framework: str) -> tuple[str, ...]:
        return self.mapped.get(framework, ())

    def __iter__(self) -> Iterator[str]:
        return iter(FRAMEWORKS)

    def __bool__(self) -> bool:
        return bool(self.mapped or self.not_applicable)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ``{"soc2": [...], "iso27001": [...], "nist80053": [...], "not_applicable": {...}}``."""
        data: dict[str, Any] = {framework: list(self[framework]) for framework in FRAMEWORKS}
        data["not_applicable"] = dict(self.not_applicable)
        return data


class ControlMapping:
    """The three frameworks' control tables and every item's mapping onto them."""

    __slots__ = ("_controls", "_items", "frameworks", "source")

    def __init__(
        self,
        frameworks: Iterable[Framework],
        controls: Iterable[Control],
        items: Mapping[str, ItemControls],
        source: str = CONTROLS_RESOURCE,
    ) -> None:
        self.frameworks: Mapping[str, Framework] = MappingProxyType({f.key: f for f in frameworks})
        tables: dict[str, dict[str, Control]] = {key: {} for key in self.frameworks}
        for control in controls:
            tables[control.framework][control.id] = control
        self._controls = MappingProxyType({k: MappingProxyType(v) for k, v in tables.items()})
        self._items = MappingProxyType(dict(items))
        self.source = source

    def controls(self, framework: str) -> tuple[Control, ...]:
        """A framework's controls in the file's order (the framework's own order)."""
        return tuple(self._controls[framework].values())

    def control(self, framework: str, control_id: str) -> Control:
        return self._controls[framework][control_id]

    def for_item(self, item_id: str) -> ItemControls:
        """An item's mapping; an empty one for an ID the file does not know."""
        return self._items.get(item_id, ItemControls())

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(self._items)

    def items_of(self, framework: str, control_id: str) -> tuple[str, ...]:
        """The IDs of the items that support a control, in file order."""
        return tuple(i for i, mapped in self._items.items() if control_id in mapped[framework])

    def check_items(self, item_ids: Iterable[str]) -> None:
        """Every catalog item has a mapping and the file maps no other ID; ControlsError if not."""
        wanted = list(item_ids)
        missing = [i for i in wanted if i not in self._items]
        if missing:
            raise ControlsError(
                f'{self.source}: no [item."{missing[0]}"] table: every checklist item needs its '
                f"controls ({len(missing)} missing: {', '.join(missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''})"
            )
        extra = sorted(set(self._items) - set(wanted))
        if extra:
            raise ControlsError(
                f'{self.source}: [item."{extra[0]}"]: {extra[0]} is not a checklist item'
            )


# --- parsing --------------------------------------------------------------------------------


def parse_controls(data: Mapping[str, Any], source: str = CONTROLS_RESOURCE) -> ControlMapping:
    """Build and validate a :class:`ControlMapping` from parsed TOML; ControlsError if bad."""
    _only_keys(data, ("framework", "control", "item"), source, "the top level")
    frameworks = _parse_frameworks(data.get("framework"), source)
    controls = _parse_control_tables(data.get("control"), source)
    raw_items = data.get("item")
    if not isinstance(raw_items, dict) or not raw_items:
        raise ControlsError(f'{source}: no [item."ID"] tables')
    known = {key: {c.id for c in controls if c.framework == key} for key in FRAMEWORKS}
    items = {
        item_id: _parse_item(item_id, raw, known, source) for item_id, raw in raw_items.items()
    }
    for control in controls:
        if not any(control.id in mapped[control.framework] for mapped in items.values()):
            raise ControlsError(
                f'{source}: [control.{control.framework}]."{control.id}": no item maps to it '
                "(remove it, or map the items that support it)"
            )
    return ControlMapping(frameworks, controls, items, source)


def _only_keys(table: Mapping[str, Any], allowed: Iterable[str], source: str, where: str) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            raise ControlsError(
                f"{source}: {where}: unknown key {key!r} (expected {', '.join(allowed)})"
            )


def _parse_frameworks(raw: Any, source: str) -> list[Framework]:
    if not isinstance(raw, dict):
        raise ControlsError(f"{source}: no [framework.*] tables ({', '.join(FRAMEWORKS)})")
    _only_keys(raw, FRAMEWORKS, source, "[framework]")
    frameworks = []
    for key in FRAMEWORKS:
        table = raw.get(key)
        if not isinstance(table, dict):
            raise ControlsError(f"{source}: [framework.{key}] is missing")
        _only_keys(table, ("name", "title"), source, f"[framework.{key}]")
        for name in ("name", "title"):
            if not isinstance(table.get(name), str) or not table[name].strip():
                raise ControlsError(
                    f"{source}: [framework.{key}].{name} must be a non-empty string"
                )
        frameworks.append(Framework(key, table["name"], table["title"]))
    return frameworks


def _parse_control_tables(raw: Any, source: str) -> list[Control]:
    if not isinstance(raw, dict):
        raise ControlsError(f"{source}: no [control.*] tables ({', '.join(FRAMEWORKS)})")
    _only_keys(raw, FRAMEWORKS, source, "[control]")
    controls = []
    for framework in FRAMEWORKS:
        table = raw.get(framework)
        if not isinstance(table, dict) or not table:
            raise ControlsError(f"{source}: [control.{framework}] is missing or empty")
        for control_id, description in table.items():
            where = f'{source}: [control.{framework}]."{control_id}"'
            problem = control_id_problem(framework, control_id)
            if problem:
                raise ControlsError(f"{where}: {problem}")
            if (
                not isinstance(description, str)
                or not description.strip()
                or "\n" in description
                or len(description) > _MAX_DESCRIPTION
            ):
                raise ControlsError(
                    f"{where}: the description must be one non-empty line of at most "
                    f"{_MAX_DESCRIPTION} characters, in our own words"
                )
            controls.append(Control(framework, control_id, description.strip()))
    return controls


def _parse_item(item_id: str, raw: Any, known: Mapping[str, set[str]], source: str) -> ItemControls:
    where = f'{source}: [item."{item_id}"]'
    if not _ITEM_ID.fullmatch(item_id):
        raise ControlsError(f"{where}: not a checklist ID (expected section.subsection.item)")
    if not isinstance(raw, dict):
        raise ControlsError(f"{where}: must be a table with {', '.join(FRAMEWORKS)}")
    _only_keys(raw, FRAMEWORKS, source, f'[item."{item_id}"]')
    mapped: dict[str, tuple[str, ...]] = {}
    none: dict[str, str] = {}
    for framework in FRAMEWORKS:
        value = raw.get(framework)
        key = f"{where}.{framework}"
        if isinstance(value, dict):
            none[framework] = _reason(value, key)
            mapped[framework] = ()
        elif isinstance(value, list) and value:
            mapped[framework] = _control_list(value, framework, known[framework], key)
        else:
            raise ControlsError(
                f"{key}: expected a non-empty list of control IDs, or "
                '{ none = "why no control of this framework applies" }'
            )
    return ItemControls(mapped, none)


def _reason(value: Mapping[str, Any], key: str) -> str:
    reason = value.get("none")
    if set(value) != {"none"} or not isinstance(reason, str) or not reason.strip():
        raise ControlsError(f'{key}: expected {{ none = "reason" }} with a non-empty reason')
    return reason.strip()


def _control_list(value: list[Any], framework: str, known: set[str], key: str) -> tuple[str, ...]:
    seen: list[str] = []
    for control_id in value:
        if not isinstance(control_id, str):
            raise ControlsError(f"{key}: {control_id!r} is not a control ID string")
        problem = control_id_problem(framework, control_id)
        if problem:
            raise ControlsError(f"{key}: {problem}")
        if control_id not in known:
            raise ControlsError(
                f"{key}: {control_id} is not in [control.{framework}] "
                "(add it there with a one-line description)"
            )
        if control_id in seen:
            raise ControlsError(f"{key}: {control_id} is listed twice")
        seen.append(control_id)
    return tuple(seen)


@functools.cache
def load_controls() -> ControlMapping:
    """The packaged mapping, parsed and validated once per process."""
    resource = resources.files(__package__ or "pytest_vcci.checklist") / CONTROLS_RESOURCE
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ControlsError(f"{CONTROLS_RESOURCE}: invalid TOML: {exc}") from None
    return parse_controls(data, CONTROLS_RESOURCE)
