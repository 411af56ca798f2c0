"""Every Python example in the README runs as written against the sandbox and passes: a user's
first check must not fail on the tool's own example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_examples() -> list[str]:
    """The README's Python blocks that define a checklist test."""
    blocks = FENCE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    return [b for b in blocks if "@pytest.mark.checklist" in b]


def test_the_readme_has_an_example_per_fixture() -> None:
    text = "\n".join(readme_examples())
    for fixture in ("cluster", "db", "cache", "cloud", "api", "tls", "alertmanager", "host"):
        assert re.search(rf"def test_\w+\([^)]*\b{fixture}\b", text), fixture


@pytest.mark.slow
def test_every_readme_example_passes_against_the_sandbox(tmp_path: Path) -> None:
    examples = readme_examples()
    for number, block in enumerate(examples):
        header = "" if "import pytest" in block else "import pytest\n\n"
        (tmp_path / f"test_readme_example_{number}.py").write_text(header + block)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCCI_SANDBOX_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--vcci-sandbox",
            "-p",
            "no:cacheprovider",
            "--vcci-report-dir",
            "out",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    evidence = tmp_path / "out" / "evidence.json"
    assert evidence.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    tests = json.loads(evidence.read_text())["tests"]
    outcomes = {t["nodeid"]: (t["outcome"], t["message"]) for t in tests}
    assert len(outcomes) == len(examples), outcomes
    assert all(o == "passed" for o, _ in outcomes.values()), outcomes
