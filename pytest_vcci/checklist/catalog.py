"""The checklist catalog: the 92 items of the GL-VCCI deployment checklist as typed data.

The data lives in ``catalog.toml`` next to this module; this module only models and validates
it. Everything here is immutable so one loaded catalog can be shared by every part of a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from importlib import resources
from types import MappingProxyType
from typing import Any, TypeVar

from pytest_vcci.checklist.controls import ControlsError, ItemControls, load_controls

__all__ = [
    "ID_PATTERN",
    "Automation",
    "Catalog",
    "CatalogError",
    "CheckRef",
    "Criterion",
    "Item",
    "Section",
    "Severity",
    "ThresholdValue",
    "UnknownItemError",
    "is_well_formed",
    "load_catalog",
    "parse_catalog",
]

#: A well-formed checklist ID: section.subsection.item, e.g. ``3.2.7`` or ``10.1.4``.
ID_PATTERN = re.compile(r"^\d{1,2}\.\d\.\d{1,2}$")

# A pattern may only use ID characters and glob syntax; anything else is a typo, not a glob.
_PATTERN_CHARS = re.compile(r"^[0-9.*?\[\]!-]+$")
_SECTION_OR_SUBSECTION = re.compile(r"^\d{1,2}(\.\d)?$")

CATALOG_RESOURCE = "catalog.toml"

ThresholdValue = str | int | float | bool | tuple[str | int | float | bool, ...]

_E = TypeVar("_E", bound="StrEnum")


class Severity(StrEnum):
    """How much a failed item matters; the gate compares severities by :attr:`order`."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def order(self) -> int:
        """Rank for comparisons: critical (4) > high (3) > medium (2) > low (1)."""
        return _SEVERITY_ORDER[self.value]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is ``other`` or more severe."""
        return self.order >= other.order


_SEVERITY_ORDER: Mapping[str, int] = MappingProxyType(
    {"critical": 4, "high": 3, "medium": 2, "low": 1}
)


class Automation(StrEnum):
    """How an item is satisfied."""

    AUTOMATED = "automated"  # checked against live targets
    ATTESTATION = "attestation"  # a human fact, satisfied only by an attestation record
    HYBRID = "hybrid"  # partly checked, partly attested


class CatalogError(ValueError):
    """The catalog data is malformed; the message names the source and the item."""


class UnknownItemError(KeyError):
    """An ID that is not in the catalog; the message suggests the closest IDs."""

    def __init__(self, item_id: str, message: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id
        self.message = message

    def __str__(self) -> str:
        # KeyError.__str__ would show the repr of the ID instead of the explanation.
        return self.message


def is_well_formed(item_id: str) -> bool:
    """True when ``item_id`` has the shape of a checklist ID (whether or not it exists)."""
    return ID_PATTERN.fullmatch(item_id) is not None


def _id_key(item_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in item_id.split("."))


# A check names a suite test function ("test_x", "TestClass::test_x"), optionally one of its
# parametrized instances ("test_x[backend]").
_CHECK = re.compile(r"^(?P<function>(?:Test\w+::)?test\w*)(?:\[(?P<param>.+)\])?$")


@dataclass(frozen=True)
class CheckRef:
    """One named check: a test function of the suites, or one parametrized instance of it."""

    function: str  # "test_x" or "TestClass::test_x"
    param: str | None = None  # "backend" in "test_x[backend]"; None: every instance

    def __str__(self) -> str:
        return self.function if self.param is None else f"{self.function}[{self.param}]"

    def matches(self, function: str, param: str | None) -> bool:
        """True for a test of this function (and of this instance, when one is named)."""
        return function == self.function and (self.param is None or param == self.param)

    @classmethod
    def parse(cls, text: str) -> CheckRef:
        text = text.strip()
        match = _CHECK.fullmatch(text)
        if match is None:
            raise ValueError(
                f"check {text!r} is not a test function name like test_x or test_x[param]"
            )
        return cls(match["function"], match["param"])


@dataclass(frozen=True)
class Criterion:
    """One criterion of an item and how it is decided.

    Exactly one of:
    - ``checks``: every entry must run to a pass; an entry is one check or alternatives
      (``"test_a | test_b"``: either decides it). No entry at all: undecided (no check yet).
    - ``attestation``: what the item's attestation record must say; ``checks`` names the test
      calling ``attest(ID)`` and any check that must not fail beside it.
    - ``not_automatable``: why no read-only check can decide it; reported, never blocking.
    """

    text: str
    checks: tuple[tuple[CheckRef, ...], ...] = ()
    attestation: str | None = None
    not_automatable: str | None = None
    from_title: bool = False  # a requirement the item's title states, e.g. "PostgreSQL 15+"
    note: str = ""

    @property
    def decided_by(self) -> str:
        """``checks``, ``attestation``, ``not_automatable``, or ``none`` (no check yet)."""
        if self.not_automatable is not None:
            return "not_automatable"
        if self.attestation is not None:
            return "attestation"
        return "checks" if self.checks else "none"

    @property
    def check_names(self) -> list[str]:
        """The entries as written in the catalog: ``["test_a", "test_b | test_c"]``."""
        return [" | ".join(str(ref) for ref in entry) for entry in self.checks]

    @property
    def functions(self) -> set[str]:
        """Every test function this criterion names."""
        return {ref.function for entry in self.checks for ref in entry}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "decided_by": self.decided_by,
            "checks": self.check_names,
        }
        if self.attestation is not None:
            data["attestation"] = self.attestation
        if self.not_automatable is not None:
            data["not_automatable"] = self.not_automatable
        if self.from_title:
            data["from_title"] = True
        if self.note:
            data["note"] = self.note
        return data


@dataclass(frozen=True)
class Item:
    """One numbered checklist item, e.g. ``3.2.7 Horizontal Pod Autoscaling (HPA) configured``."""

    id: str
    section: int
    section_name: str
    subsection: str
    subsection_name: str
    title: str
    criteria: tuple[str, ...]
    severity: Severity
    automation: Automation
    rationale: str
    thresholds: Mapping[str, ThresholdValue] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    #: How each criterion is decided, in catalog order (title requirements included); an
    #: item built without them has every seed criterion undecided (no check yet).
    criterion_specs: tuple[Criterion, ...] = ()
    #: Framework controls the item supports (controls.toml): ``item.controls["soc2"]``.
    controls: ItemControls = field(default_factory=ItemControls, hash=False)

    def __post_init__(self) -> None:
        # Copy into a read-only view so no caller can change a shared catalog's defaults.
        frozen = {key: _freeze(value) for key, value in self.thresholds.items()}
        object.__setattr__(self, "thresholds", MappingProxyType(frozen))
        object.__setattr__(self, "criteria", tuple(self.criteria))
        specs = tuple(self.criterion_specs) or tuple(Criterion(text) for text in self.criteria)
        object.__setattr__(self, "criterion_specs", specs)

    @property
    def sort_key(self) -> tuple[int, ...]:
        """Checklist order: ``2.1.4`` before ``10.1.1``."""
        return _id_key(self.id)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, for reports and ``vcci checklist --json``."""
        return {
            "id": self.id,
            "section": self.section,
            "section_name": self.section_name,
            "subsection": self.subsection,
            "subsection_name": self.subsection_name,
            "title": self.title,
            "criteria": list(self.criteria),
            "severity": self.severity.value,
            "automation": self.automation.value,
            "rationale": self.rationale,
            "thresholds": {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in self.thresholds.items()
            },
            "decided_by": [criterion.to_dict() for criterion in self.criterion_specs],
            "controls": self.controls.to_dict(),
        }


def _freeze(value: Any) -> ThresholdValue:
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


@dataclass(frozen=True)
class Section:
    """One of the twelve numbered sections and its items in checklist order."""

    number: int
    name: str
    items: tuple[Item, ...]

    def __len__(self) -> int:
        return len(self.items)


class Catalog:
    """All checklist items, in checklist order, looked up by ID or ID pattern."""

    __slots__ = ("_by_id", "_sections", "claimed_items", "items", "source")

    def __init__(
        self,
        items: Iterable[Item],
        sections: Iterable[tuple[int, str]],
        *,
        source: str = "",
        claimed_items: int | None = None,
    ) -> None:
        self.items: tuple[Item, ...] = tuple(sorted(items, key=lambda item: item.sort_key))
        self._by_id: Mapping[str, Item] = MappingProxyType({i.id: i for i in self.items})
        self._sections: Mapping[int, Section] = MappingProxyType(
            {
                number: Section(number, name, tuple(i for i in self.items if i.section == number))
                for number, name in sorted(sections)
            }
        )
        self.source = source
        #: The count the checklist's own header states (67), kept to report the discrepancy.
        self.claimed_items = len(self.items) if claimed_items is None else claimed_items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def __repr__(self) -> str:
        return f"<Catalog {self.source!r}: {len(self)} items in {len(self._sections)} sections>"

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    @property
    def sections(self) -> tuple[Section, ...]:
        return tuple(self._sections.values())

    def section(self, number: int) -> Section:
        """The section with this number; :class:`KeyError` naming the valid range otherwise."""
        try:
            return self._sections[number]
        except KeyError:
            numbers = sorted(self._sections)
            raise KeyError(
                f"no section {number}; the checklist has sections {numbers[0]}..{numbers[-1]}"
            ) from None

    def get(self, item_id: str) -> Item:
        """The item with this ID, or :class:`UnknownItemError` suggesting close IDs."""
        try:
            return self._by_id[item_id]
        except KeyError:
            raise UnknownItemError(item_id, self._unknown_message(item_id)) from None

    def match(self, pattern: str) -> list[Item]:
        """Items whose ID matches ``pattern``, in checklist order.

        ``pattern`` is an exact ID (``1.1.1``), a glob (``3.2.*``, ``3.*``, ``1.?.1``), or a
        bare section or subsection number (``3``, ``3.2``) meaning everything under it.
        An empty or non-ID pattern is a :class:`ValueError`; a pattern that matches nothing
        returns an empty list, so the caller decides whether that is an error.
        """
        pattern = pattern.strip()
        if not pattern or not _PATTERN_CHARS.fullmatch(pattern):
            raise ValueError(
                f"invalid checklist pattern {pattern!r}: use an ID like 3.2.7 "
                "or a glob like 3.2.* or 3.*"
            )
        if _SECTION_OR_SUBSECTION.match(pattern):
            pattern += ".*"
        return [item for item in self.items if fnmatchcase(item.id, pattern)]

    def _unknown_message(self, item_id: str) -> str:
        if not is_well_formed(item_id):
            return (
                f"{item_id!r} is not a well-formed checklist ID "
                "(expected section.subsection.item, e.g. 3.2.7)"
            )
        message = f"unknown checklist ID {item_id!r}"
        siblings = [i.id for i in self.items if i.subsection == item_id.rsplit(".", 1)[0]]
        close = difflib.get_close_matches(item_id, self.ids, n=3, cutoff=0.6)
        if siblings:
            message += f"; subsection {siblings[0].rsplit('.', 1)[0]} holds "
            message += f"{siblings[0]}..{siblings[-1]}"
        if close:
            message += f"; did you mean {', '.join(close)}?"
        return message


def parse_catalog(data: Mapping[str, Any], source: str = CATALOG_RESOURCE) -> Catalog:
    """Build and validate a :class:`Catalog` from parsed TOML; :class:`CatalogError` if bad."""
    sections = _parse_sections(data.get("section"), source)
    raw_items = data.get("item")
    if not isinstance(raw_items, list) or not raw_items:
        raise CatalogError(f"{source}: no [[item]] tables")
    items: list[Item] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_items, start=1):
        item = _parse_item(raw, f"{source}: item #{index}", sections)
        if item.id in seen:
            raise CatalogError(f"{source}: item #{index}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    meta = data.get("catalog", {})
    claimed = meta.get("claimed_items")
    if claimed is not None and not isinstance(claimed, int):
        raise CatalogError(f"{source}: [catalog].claimed_items must be an integer")
    return Catalog(
        items,
        sections.items(),
        source=str(meta.get("source", source)),
        claimed_items=claimed,
    )


def _parse_sections(raw: Any, source: str) -> dict[int, str]:
    if not isinstance(raw, list) or not raw:
        raise CatalogError(f"{source}: no [[section]] tables")
    sections: dict[int, str] = {}
    for index, table in enumerate(raw, start=1):
        number, name = table.get("number"), table.get("name")
        if not isinstance(number, int) or not isinstance(name, str) or not name.strip():
            raise CatalogError(
                f"{source}: section #{index}: needs an integer 'number' and a non-empty 'name'"
            )
        if number in sections:
            raise CatalogError(f"{source}: section #{index}: duplicate number {number}")
        sections[number] = name
    return sections


_REQUIRED_TEXT = ("id", "section_name", "subsection", "subsection_name", "title", "rationale")


def _parse_item(raw: Mapping[str, Any], where: str, sections: Mapping[int, str]) -> Item:
    for key in _REQUIRED_TEXT:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise CatalogError(f"{where}: {key!r} must be a non-empty string")
    item_id: str = raw["id"]
    where = f"{where} ({item_id})"
    if not is_well_formed(item_id):
        raise CatalogError(f"{where}: id is not of the form section.subsection.item")
    section = raw.get("section")
    if not isinstance(section, int) or section not in sections:
        raise CatalogError(f"{where}: section {section!r} is not a declared [[section]]")
    if not item_id.startswith(f"{section}.") or not item_id.startswith(f"{raw['subsection']}."):
        raise CatalogError(
            f"{where}: id does not lie in section {section} / subsection {raw['subsection']}"
        )
    if raw["section_name"] != sections[section]:
        raise CatalogError(
            f"{where}: section_name {raw['section_name']!r} != section {section} "
            f"name {sections[section]!r}"
        )
    if "criteria" in raw:
        raise CatalogError(
            f"{where}: 'criteria' is replaced by [[item.criterion]] tables "
            "(text, and checks, attestation or not_automatable)"
        )
    automation = _enum(Automation, raw.get("automation"), "automation", where)
    specs = _parse_criteria(raw.get("criterion"), where)
    _check_automation(specs, automation, where)
    return Item(
        id=item_id,
        section=section,
        section_name=raw["section_name"],
        subsection=raw["subsection"],
        subsection_name=raw["subsection_name"],
        title=raw["title"],
        criteria=tuple(c.text for c in specs if not c.from_title),
        severity=_enum(Severity, raw.get("severity"), "severity", where),
        automation=automation,
        rationale=raw["rationale"],
        thresholds=_parse_thresholds(raw.get("thresholds", {}), where),
        criterion_specs=specs,
    )


_CRITERION_KEYS = {"text", "checks", "attestation", "not_automatable", "from_title", "note"}


def _parse_criteria(raw: Any, where: str) -> tuple[Criterion, ...]:
    if not isinstance(raw, list) or not raw:
        raise CatalogError(f"{where}: needs [[item.criterion]] tables, one per criterion")
    specs: list[Criterion] = []
    for number, table in enumerate(raw, start=1):
        at = f"{where}: criterion #{number}"
        if not isinstance(table, dict):
            raise CatalogError(f"{at}: must be a table")
        unknown = sorted(set(table) - _CRITERION_KEYS)
        if unknown:
            expected = ", ".join(sorted(_CRITERION_KEYS))
            raise CatalogError(f"{at}: unknown key {unknown[0]!r} (expected one of: {expected})")
        text = table.get("text")
        if not isinstance(text, str) or not text.strip():
            raise CatalogError(f"{at}: 'text' must be a non-empty string")
        at = f"{at} ({text!r})"
        specs.append(_parse_criterion(table, text, at))
    texts = [c.text for c in specs]
    duplicate = next((t for t in texts if texts.count(t) > 1), None)
    if duplicate is not None:
        raise CatalogError(f"{where}: criterion {duplicate!r} is listed twice")
    if all(c.from_title for c in specs):
        raise CatalogError(f"{where}: needs at least one criterion of the checklist")
    return tuple(specs)


def _parse_criterion(table: Mapping[str, Any], text: str, at: str) -> Criterion:
    for key in ("attestation", "not_automatable", "note"):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise CatalogError(f"{at}: {key!r} must be a non-empty string")
    if not isinstance(table.get("from_title", False), bool):
        raise CatalogError(f"{at}: 'from_title' must be true or false")
    attestation, not_automatable = table.get("attestation"), table.get("not_automatable")
    if attestation is not None and not_automatable is not None:
        raise CatalogError(f"{at}: give 'attestation' or 'not_automatable', not both")
    if not_automatable is not None:
        if "checks" in table:
            raise CatalogError(f"{at}: a not_automatable criterion names no checks")
        checks: tuple[tuple[CheckRef, ...], ...] = ()
    else:
        if "checks" not in table:
            raise CatalogError(
                f"{at}: say how it is decided: checks = [...] (empty: no check yet), "
                'attestation = "..." or not_automatable = "..."'
            )
        checks = _parse_checks(table["checks"], at)
        if attestation is not None and not checks:
            raise CatalogError(
                f"{at}: an attestation criterion names the test that calls attest(ID) in checks"
            )
    return Criterion(
        text=text,
        checks=checks,
        attestation=attestation,
        not_automatable=not_automatable,
        from_title=bool(table.get("from_title", False)),
        note=str(table.get("note") or ""),
    )


def _parse_checks(raw: Any, at: str) -> tuple[tuple[CheckRef, ...], ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise CatalogError(f"{at}: 'checks' must be a list of test names")
    entries = []
    for entry in raw:
        try:
            entries.append(tuple(CheckRef.parse(part) for part in entry.split("|")))
        except ValueError as exc:
            raise CatalogError(f"{at}: {exc}") from None
    return tuple(entries)


def _check_automation(specs: tuple[Criterion, ...], automation: Automation, where: str) -> None:
    """An item's automation kind and its criteria say the same thing."""
    attested = [c for c in specs if c.attestation is not None]
    if automation is Automation.AUTOMATED and attested:
        raise CatalogError(
            f"{where}: an automated item has no attestation criterion "
            f"({attested[0].text!r}); make the item hybrid"
        )
    if automation is Automation.HYBRID and not attested:
        raise CatalogError(f"{where}: a hybrid item needs at least one attestation criterion")
    if automation is Automation.ATTESTATION:
        other = [c for c in specs if c.attestation is None and c.not_automatable is None]
        if other:
            raise CatalogError(
                f"{where}: every criterion of an attestation item is attested ({other[0].text!r})"
            )


def _enum(kind: type[_E], value: Any, key: str, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise CatalogError(f"{where}: {key} {value!r} is not one of {allowed}") from None


_SCALARS = (str, int, float, bool)


def _parse_thresholds(raw: Any, where: str) -> dict[str, ThresholdValue]:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: 'thresholds' must be a table")
    for key, value in raw.items():
        ok = isinstance(value, _SCALARS) or (
            isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
        )
        if not ok:
            raise CatalogError(
                f"{where}: threshold {key!r} must be a scalar or a list of scalars, "
                f"not {type(value).__name__}"
            )
    return dict(raw)


@functools.cache
def load_catalog() -> Catalog:
    """The packaged catalog, parsed and validated once per process."""
    resource = resources.files(__package__ or "pytest_vcci.checklist") / CATALOG_RESOURCE
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{CATALOG_RESOURCE}: invalid TOML: {exc}") from None
    catalog = parse_catalog(data, CATALOG_RESOURCE)
    try:
        mapping = load_controls()
        mapping.check_items(catalog.ids)
    except ControlsError as exc:
        raise CatalogError(str(exc)) from None
    items = [dataclasses.replace(i, controls=mapping.for_item(i.id)) for i in catalog.items]
    sections = [(s.number, s.name) for s in catalog.sections]
    return Catalog(items, sections, source=catalog.source, claimed_items=catalog.claimed_items)
