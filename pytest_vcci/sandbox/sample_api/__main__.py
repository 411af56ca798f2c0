"""``python -m pytest_vcci.sandbox.sample_api --port P --cert ... --key ... --config JSON``."""

from __future__ import annotations

import sys

from pytest_vcci.sandbox.sample_api.server import main

sys.exit(main())
