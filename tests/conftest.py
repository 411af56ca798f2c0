"""The plugin's own tests use pytester.

Here, not in a conftest at the repository root: a run that collects the suites from another
directory through an editable install (``vcci run``, ``pytest --vcci-suites``) would load a
root conftest as a non-top-level one, where ``pytest_plugins`` is an error.
"""

pytest_plugins = ["pytester"]
