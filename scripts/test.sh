#!/usr/bin/env bash
# The plugin's own tests: unit, pytester and integration tests against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest tests/ -n 2 -p no:cacheprovider "$@"
