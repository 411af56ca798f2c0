"""The GL-VCCI readiness checklist as tests, one module per section.

Installed, this directory is the package ``pytest_vcci.suites`` (pyproject.toml maps it), so the
checklist runs from any directory: ``vcci run --env staging`` or ``pytest --vcci-suites ...``.
"""
