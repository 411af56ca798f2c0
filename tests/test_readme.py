"""The README stays true: its per-item section matches the suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_per_item_section_matches_the_suites() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "checks_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_item_has_a_check() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- checks:start -->", 1)[1].split("<!-- checks:end -->", 1)[0]
    assert section.count("- **") == 92
    assert "*no check yet*" not in section
