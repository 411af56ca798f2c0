#!/usr/bin/env bash
# Installs what pytest-vcci's demo and tests need on a fresh Debian 12 machine:
# the servers the sandbox runs (Debian packages) and the Python environment (.venv).
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql postgresql-contrib redis-server redis-tools prometheus prometheus-alertmanager chromium iso-codes locales pgbouncer prometheus-blackbox-exporter)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Checklist 2.1.1 asks for collation en_US.UTF-8; the sandbox's database uses it when the
# locale exists. Enable that one locale in /etc/locale.gen and generate it (nothing else).
if ! locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then
  echo "bootstrap: generating the en_US.UTF-8 locale"
  grep -qx 'en_US.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null \
    || echo 'en_US.UTF-8 UTF-8' | $SUDO tee -a /etc/locale.gen >/dev/null
  $SUDO locale-gen --keep-existing >/dev/null
fi
# The sandbox runs its own server processes on free ports; services the packages may have
# started are left alone (they may be the user's own).

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install -q uv
fi
if [ ! -x .venv/bin/python ]; then
  uv venv -q .venv --python python3.11 || uv venv -q .venv
fi
if ! .venv/bin/python -c "import pytest_vcci, moto, tomli_w" >/dev/null 2>&1 || [ pyproject.toml -nt .venv/.installed ]; then
  uv pip install -q --python .venv/bin/python -e ".[dev]"
  touch .venv/.installed
fi
# compliance-trestle validates the OSCAL output in tests (tests/test_oscal.py). It gets its own
# virtualenv so its pins never touch the project's.
if ! .venv-oscal/bin/python -c "import trestle.oscal.assessment_results" >/dev/null 2>&1; then
  [ -x .venv-oscal/bin/python ] || uv venv -q .venv-oscal --python python3.11 || uv venv -q .venv-oscal
  uv pip install -q --python .venv-oscal/bin/python "compliance-trestle==5.2.0"
fi
