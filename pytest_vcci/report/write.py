"""Writing reports so that nothing is ever half there.

``write_atomic``: one file, temp file in the same directory + rename.

``Bundle``: a whole run's reports. Every file is first written to a staging directory inside
the report directory; only when all of them are on disk do they replace the previous run's
files, one rename each (a rename needs no free space), the manifest last. If anything fails
the previous files are put back, so a full disk or a directory that turned read-only leaves
the previous run's evidence exactly as it was, and a :class:`ReportWriteError` names the file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

STAGING_PREFIX = ".vcci-staging-"


class ReportWriteError(Exception):
    """A report file could not be written; the previous reports are unchanged."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def writable_dir_problem(path: Path) -> str | None:
    """Why reports could not be written in ``path``, or None; creates nothing that stays.

    Checked by creating and removing a probe file (in the directory, or in its nearest
    existing parent when it does not exist yet): permission bits do not tell (root ignores
    them) and a read-only mount shows only when written to."""
    existing = path
    try:
        if path.exists() and not path.is_dir():
            return "is a file, not a directory"
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            return f"cannot be created: {existing} is a file, not a directory"
        fd, probe = tempfile.mkstemp(prefix=".vcci-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        verb = "is not writable" if existing == path else f"cannot be created in {existing}"
        return f"{verb}: {exc.strerror or exc}"
    return None


class Bundle:
    """One run's report files, staged in ``directory`` and then moved into place together."""

    def __init__(self, directory: Path, run_id: str) -> None:
        self.directory = directory
        self.staging = directory / f"{STAGING_PREFIX}{run_id}"
        self.names: list[str] = []
        self.removed: list[str] = []

    def open(self) -> None:
        """Create the staging directory; leftovers of runs killed while staging go first."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.glob(f"{STAGING_PREFIX}*"):
                shutil.rmtree(stale, ignore_errors=True)
            self.staging.mkdir()
        except OSError as exc:
            raise ReportWriteError(self.staging, exc.strerror or str(exc)) from None

    def write(self, name: str, text: str) -> None:
        """Stage one file (flushed to disk); the error names the file it was meant to be."""
        try:
            with (self.staging / name).open("w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise ReportWriteError(self.directory / name, exc.strerror or str(exc)) from None
        if name not in self.names:
            self.names.append(name)

    def remove(self, name: str) -> None:
        """A file of the previous run that must not stay beside this run's (an old signature)."""
        self.removed.append(name)

    def staged(self, name: str) -> Path | None:
        return self.staging / name if name in self.names else None

    def publish(self, order: Iterable[str] = ()) -> None:
        """Move every staged file into place (``order`` last, in that order); on any failure
        put the previous files back and raise ReportWriteError."""
        last = [n for n in order if n in self.names or n in self.removed]
        names = [n for n in [*self.names, *self.removed] if n not in last] + last
        backup = self.staging / ".previous"
        done: list[str] = []
        try:
            backup.mkdir()
            for name in names:
                self._replace(name, backup)
                done.append(name)
        except OSError as exc:
            self._restore(done, backup)
            raise ReportWriteError(
                self.directory / (names[len(done)] if len(done) < len(names) else ""),
                exc.strerror or str(exc),
            ) from None
        _sync_directory(self.directory)

    def _replace(self, name: str, backup: Path) -> None:
        target = self.directory / name
        if target.exists():
            os.link(target, backup / name)  # keeps the previous file until the run is in place
        if name in self.names:
            os.replace(self.staging / name, target)
        else:
            target.unlink(missing_ok=True)

    def _restore(self, done: list[str], backup: Path) -> None:
        for name in reversed(done):
            previous, target = backup / name, self.directory / name
            try:
                if previous.exists():
                    os.replace(previous, target)
                else:
                    target.unlink(missing_ok=True)
            except OSError:
                pass  # nothing better to do: the error about the first failure is raised

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _sync_directory(directory: Path) -> None:
    """Make the renames durable (a crash right after must not bring back the old names)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
