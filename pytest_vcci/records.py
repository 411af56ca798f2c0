"""Files of records about checklist items (attestations, waivers): a TOML file of
``[[table]]`` entries, each validated by a pydantic model. Every problem is a SettingsError
naming the file and where in it: ``[[waiver]] #2.expires_on``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from pytest_vcci.settings import SettingsError, first_error, location, read_toml
from pytest_vcci.settings import explain as explain_error


class ItemRecord(BaseModel):
    """One record about one checklist item; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str


R = TypeVar("R", bound=ItemRecord)
# What a validation error says, from the key it is about (dotted) and pydantic's details.
Explain = Callable[[str, ErrorDetails], str]
# What is wrong with a valid record beyond its model: (key, message), or None.
Check = Callable[[R], tuple[str, str] | None]


def load_records(
    path: Path,
    table: str,
    model: type[R],
    catalog_ids: set[str],
    explain: Explain,
    check: Check[R],
) -> list[R]:
    """The records of the ``[[table]]`` array in ``path``, in file order; the file may hold
    nothing else. Each record is validated by ``model``, its item must be in ``catalog_ids``,
    and ``check`` must find nothing wrong with it."""
    source = str(path)
    data = read_toml(path, f"{table}s file")
    unknown = set(data) - {table}
    if unknown:
        raise SettingsError(
            source, f"[{sorted(unknown)[0]}]", f"unknown table (expected [[{table}]])"
        )
    raw_records = data.get(table, [])
    if not isinstance(raw_records, list):
        raise SettingsError(source, f"[{table}]", f"expected an array of tables: [[{table}]]")
    return [
        _record(raw, f"[[{table}]] #{i + 1}", source, model, catalog_ids, explain, check)
        for i, raw in enumerate(raw_records)
    ]


def _record(
    raw: Any,
    where: str,
    source: str,
    model: type[R],
    catalog_ids: set[str],
    explain: Explain,
    check: Check[R],
) -> R:
    if not isinstance(raw, dict):
        raise SettingsError(source, where, "expected a table")
    try:
        record = model.model_validate(raw)
    except ValidationError as exc:
        error = first_error(exc)
        key = location(error["loc"])
        message = (
            explain_error(error, list(model.model_fields))
            if error["type"] == "extra_forbidden"
            else explain(key, error)
        )
        raise SettingsError(source, f"{where}.{key}", message) from None
    if record.item not in catalog_ids:
        raise SettingsError(source, f"{where}.item", f"unknown checklist ID {record.item!r}")
    problem = check(record)
    if problem is not None:
        key, message = problem
        raise SettingsError(source, f"{where}.{key}", message)
    return record
