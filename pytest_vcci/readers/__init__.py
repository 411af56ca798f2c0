"""What the suites use to read things: pure functions over data a target already returned.

Checks get raw answers from the guarded clients in ``targets/`` and turn them into facts with
these readers; no reader opens a connection.

- ``kubernetes_objects``: quantities, label selectors, image references, containers and pod
  health of the JSON objects ``cluster.list()`` returns.
- ``config_files``: syntax checks and small parsers for the configuration files ConfigMaps
  carry (YAML, JSON, TOML, nginx.conf, fluent-bit).
- ``monitoring_config``: Prometheus durations, alert-expression thresholds, Alertmanager routes.
- ``tool_reports``: what every external tool's report shares (``IngestError``, staleness);
  ``trivy_report``, ``zap_report`` and ``load_test_report`` (Locust, k6) read one tool each.
"""
