#!/usr/bin/env bash
# The plugin's own tests: unit, pytester and integration tests against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# --dist loadfile: a test file with a sandbox of its own starts it once, on one worker.
exec .venv/bin/python -m pytest tests/ -n 2 --dist loadfile -p no:cacheprovider "$@"
