"""The real-Prometheus harness (support/prometheus.py) on a tiny exporter of its own:
targets found through file_sd, instant and range queries, errors, and a small dashboard's
queries evaluated with its variables resolved as Grafana would."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from stevie_operator.monitoring.queries import board_queries
from support.prometheus import (
    Prometheus,
    PrometheusError,
    Target,
    panel_results,
    substitute,
)

RATE = (
    'sum by (name) (rate(demo_jobs_total{namespace="$namespace", name=~"$name"}[$__rate_interval]))'
)
# fmt: off
DASHBOARD: dict[str, Any] = {
    "title": "fake",
    "templating": {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query",
             "query": {"query": "label_values(demo_jobs_total, namespace)", "refId": "A"}},
            {"name": "name", "type": "query", "multi": True, "includeAll": True,
             "query": 'label_values(demo_jobs_total{namespace="$namespace"}, name)'},
            {"name": "quantile", "type": "custom", "query": "0.99,0.5"},
        ]
    },
    "panels": [
        {"title": "rate", "targets": [{"refId": "A", "expr": RATE}]},
        {"type": "row", "title": "row", "panels": [
            {"title": "gauge", "targets": [
                {"refId": "A", "expr": 'demo_ratio{namespace="${namespace}"} * ${quantile}'},
                {"refId": "B", "expr": "demo_absent_metric"},
            ]},
        ]},
    ],
}
# fmt: on


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, float]]:
    """Prometheus scraping a loopback exporter (two resources in namespace ``lab``)."""
    registry = CollectorRegistry()
    jobs = Counter("demo_jobs", "Jobs", ["namespace", "name"], registry=registry)
    ratio = Gauge("demo_ratio", "Ratio", ["namespace"], registry=registry)
    jobs.labels("lab", "a.b").inc(3)
    jobs.labels("lab", "c").inc()
    ratio.labels("lab").set(0.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    start = time.time()
    try:
        prom = Prometheus({"demo": True}, tmp_path_factory.mktemp("prom"), interval=0.5)
        target = Target(f"127.0.0.1:{server.server_port}", {"pod": "demo-0"})
        prom.set_target("demo", "exporter", target)
        with prom:
            # Enough scrapes that a range query's last step (1 s apart) has two samples in
            # a 2 s rate window: 3 scrapes (1.5 s) were not always enough (a flaky empty rate).
            prom.wait_scraped("demo", scrapes=8)
            yield prom, start
    finally:
        server.shutdown()
        thread.join(5)


def test_targets_come_from_file_sd_with_their_labels(scraped: tuple[Prometheus, float]) -> None:
    prom, _ = scraped
    (target,) = [t for t in prom.targets() if t["labels"]["job"] == "demo"]
    assert target["health"] == "up"
    assert target["labels"]["pod"] == "demo-0"
    result = prom.query('demo_jobs_total{name="a.b"}')["result"]
    assert [(r["metric"]["pod"], r["value"][1]) for r in result] == [("demo-0", "3")]


def test_range_queries_return_points_and_bad_queries_raise(
    scraped: tuple[Prometheus, float],
) -> None:
    prom, start = scraped
    ((labels, points),) = prom.query_range("demo_ratio", start, time.time(), 0.5)
    assert labels["namespace"] == "lab"
    assert len(points) >= 2 and {v for _, v in points} == {0.5}
    assert prom.query("absent(nothing_exports_this)")["result"]  # well-formed, one series
    with pytest.raises(PrometheusError, match="bad_data"):
        prom.query("sum(rate(demo_jobs_total[1m])")


def test_dashboard_queries_are_found_in_rows_too() -> None:
    found = [(q.panel, q.ref) for q in board_queries(DASHBOARD)]
    assert found == [("rate", "A"), ("gauge", "A"), ("gauge", "B")]


def test_substitute_replaces_every_variable_syntax_and_leaves_unknown_names() -> None:
    values = {"ns": "lab", "__rate_interval": "1m"}
    expr = 'x{a="$ns", b="${ns}", c="${ns:regex}", d="[[ns]]"}[$__rate_interval] $other'
    assert substitute(expr, values) == 'x{a="lab", b="lab", c="lab", d="lab"}[1m] $other'


def test_a_dashboards_queries_evaluate_with_grafanas_variable_defaults(
    scraped: tuple[Prometheus, float],
) -> None:
    prom, start = scraped
    results = panel_results(prom, DASHBOARD, start, time.time(), rate_interval="2s")
    by_query = {(p.title, p.ref_id): p for p in results}
    rate = by_query[("rate", "A")]
    # namespace: the first value; name (multi, All): every value, regex-escaped
    assert rate.query == (
        'sum by (name) (rate(demo_jobs_total{namespace="lab", name=~"(a\\\\.b|c)"}[2s]))'
    )
    assert sorted(labels["name"] for labels, _ in rate.series) == ["a.b", "c"]
    gauge = by_query[("gauge", "A")]
    assert gauge.query == 'demo_ratio{namespace="lab"} * 0.99'
    assert [v for _, points in gauge.series for _, v in points][-1] == pytest.approx(0.495)
    assert by_query[("gauge", "B")].series == ()  # nothing exports it: the e2e test fails on it
    overridden = panel_results(prom, DASHBOARD, start, time.time(), overrides={"name": "c"})
    assert [labels["name"] for labels, _ in overridden[0].series] == ["c"]
