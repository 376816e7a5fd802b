"""One module per board (as KubeRay keeps one metrics file per kind): each defines
``build() -> Dashboard``; :mod:`stevie_operator.monitoring.dashboards` lists them.

The Operator board's module is ``operator_board`` (a module named ``operator`` would read
as the standard library's).
"""
