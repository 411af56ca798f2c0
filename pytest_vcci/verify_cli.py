"""``vcci verify DIR [--public-key PEM]``: is this report directory what the run wrote?

Prints one line per problem (``FAIL DIR/FILE: what``) and exits 0 when every file matches the
manifest (and the signature, given a public key), 1 when anything was changed, missing, added or
wrongly signed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_vcci.report.manifest import MANIFEST, SigningError, load_public_key, verify


def run_verify(argv: Sequence[str]) -> int:
    """``vcci verify DIR [--public-key PEM]``: 0 intact, 1 tampered, 2 usage error."""
    parser = argparse.ArgumentParser(
        prog="vcci verify",
        description="check a report directory against its manifest.json (and signature)",
    )
    parser.add_argument("directory", metavar="DIR", type=Path)
    parser.add_argument(
        "--public-key", metavar="PEM", type=Path, help="Ed25519 public key that must have signed it"
    )
    try:
        ns = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    if not ns.directory.is_dir():
        print(f"vcci verify: {ns.directory}: not a directory", file=sys.stderr)
        return 2
    key = None
    if ns.public_key is not None:
        try:
            key = load_public_key(ns.public_key)
        except SigningError as exc:
            print(f"vcci verify: --public-key {ns.public_key}: {exc}", file=sys.stderr)
            return 2
    result = verify(ns.directory, key)
    for problem in result.problems:
        print(f"FAIL {ns.directory / problem.path}: {problem.message}")
    if result.ok:
        count = len(result.manifest["files"]) if result.manifest else 0
        run = (result.manifest or {}).get("run", {})
        print(
            f"OK {ns.directory}: {count} files match {MANIFEST} "
            f"(run {run.get('id')}, {run.get('environment')}, {run.get('finished_at')}); "
            + "; ".join(result.notes)
        )
        return 0
    print(f"TAMPERED {ns.directory}: {len(result.problems)} problem(s)")
    return 1
