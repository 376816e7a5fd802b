"""Monitoring as code: Grafana dashboards and the tools around them (dev-time).

- :mod:`.dashboards` (with :mod:`.panels` and :mod:`.boards`) builds the boards with
  grafana-foundation-sdk, a ``dev`` extra: nothing outside this package imports them and the
  operator image does not need the SDK (an import-linter contract keeps it so);
- :mod:`.queries` reads the committed board JSON (no SDK): panels, targets, variables, and
  the substitution of ``$namespace``, ``$__rate_interval``... into runnable PromQL;
- :mod:`.render` draws a board panel by panel from Prometheus query results (matplotlib).

This ``__init__`` imports none of them, so importing the package costs nothing.
"""
