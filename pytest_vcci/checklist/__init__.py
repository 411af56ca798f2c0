"""The GL-VCCI deployment checklist as data: items, sections, severities, automation kinds."""

from __future__ import annotations

from pytest_vcci.checklist.catalog import (
    ID_PATTERN,
    Automation,
    Catalog,
    CatalogError,
    CheckRef,
    Criterion,
    Item,
    Section,
    Severity,
    ThresholdValue,
    UnknownItemError,
    is_well_formed,
    load_catalog,
    parse_catalog,
)

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
