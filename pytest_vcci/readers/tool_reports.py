"""Reports of external tools the suites ingest: OWASP ZAP, Trivy, Locust and k6.

Every ingester reads a file named in the environment file's ``[reports]`` table and raises
:class:`IngestError` with a message that names the file when it is missing, malformed or stale,
so a check fails saying which report to regenerate.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

__all__ = ["IngestError", "check_age"]


class IngestError(Exception):
    """A report cannot be used: missing, malformed or older than allowed."""


def check_age(path: Path, generated_at: dt.datetime | None, max_age_hours: float) -> None:
    """Raise IngestError if the report is older than ``max_age_hours``.

    The age is taken from the report's own timestamp (``generated_at``) when it has one, else
    from the file's modification time. A naive timestamp is taken as UTC.
    """
    now = dt.datetime.now(dt.UTC)
    if generated_at is None:
        try:
            generated_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        except OSError as exc:
            raise IngestError(f"{path}: cannot read: {exc.strerror}") from None
        source = "file modified"
    else:
        source = "generated"
        if generated_at.tzinfo is None:
            generated_at = generated_at.replace(tzinfo=dt.UTC)
    age_hours = (now - generated_at).total_seconds() / 3600
    if age_hours > max_age_hours:
        raise IngestError(
            f"{path}: report is stale: {source} {generated_at.isoformat(timespec='seconds')}, "
            f"{age_hours:.1f} h ago, older than the {max_age_hours:g} h limit "
            "([reports].max_age_hours)"
        )
