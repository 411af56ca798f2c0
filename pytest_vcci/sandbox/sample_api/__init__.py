"""The sample GL-VCCI API: an HTTPS stand-in for the product's API, for the sandbox and tests.

Run it with ``python -m pytest_vcci.sandbox.sample_api``; start it from Python with
:class:`SampleApiComponent`. This package's ``__init__`` imports nothing heavy (no pyjwt, no
prometheus_client): those load only in the server process.
"""

from __future__ import annotations

from pytest_vcci.sandbox.sample_api.component import SampleApiComponent, SandboxUser

__all__ = ["SampleApiComponent", "SandboxUser"]
