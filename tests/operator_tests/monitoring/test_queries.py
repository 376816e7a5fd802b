"""Reading boards back and substituting their variables as Grafana does."""

from __future__ import annotations

import pytest

from stevie_operator.monitoring.queries import (
    board_queries,
    defaults,
    load_boards,
    rate_interval,
    substitute,
)

BOARD = {
    "uid": "b",
    "templating": {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query", "allValue": ".*"},
            {"name": "name", "type": "query"},
        ]
    },
    "panels": [
        {"type": "row", "id": 1, "panels": []},
        {"type": "stat", "id": 2, "title": "S", "targets": [
            {"refId": "A", "expr": "up", "instant": True, "legendFormat": "{{job}}"}]},
        {"type": "row", "id": 3, "collapsed": True, "panels": [
            {"type": "timeseries", "id": 4, "title": "T", "targets": [
                {"refId": "A", "expr": "a"}, {"refId": "B", "expr": ""}]}]},
    ],
}  # fmt: skip


def test_board_queries_skip_rows_and_include_collapsed_panels() -> None:
    found = board_queries(BOARD, "demo")
    assert [(q.panel_id, q.ref, q.expr, q.instant) for q in found] == [
        (2, "A", "up", True),
        (4, "A", "a", False),
    ]
    assert found[0].board == "demo" and found[0].legend == "{{job}}"


def test_defaults_are_all_for_query_variables() -> None:
    assert defaults(BOARD) == {"namespace": ".*", "name": ".*"}


def test_substitute_as_grafana_does() -> None:
    expr = 'rate(x{namespace=~"$namespace", name=~"${name}"}[$__rate_interval])'
    values = {"namespace": ["team-a", "b.c"], "name": "pop"}
    assert substitute(expr, values, "1m") == (
        'rate(x{namespace=~"(team-a|b\\\\.c)", name=~"pop"}[1m])'
    )
    assert 'namespace=~"solo"' in substitute(expr, {**values, "namespace": ["solo"]}, "1m")
    # $namespace is not $name followed by "space"
    assert substitute("$name $namespace", {"name": "n", "namespace": "ns"}, "1m") == "n ns"
    with pytest.raises(KeyError, match="run"):
        substitute('x{run=~"$run"}', values, "1m")


def test_rate_interval_is_at_least_four_scrapes() -> None:
    assert rate_interval(15, 15) == "60s"
    assert rate_interval(60, 15) == "75s"
    assert rate_interval(5, 5) == "20s"


def test_the_committed_boards_load() -> None:
    boards = load_boards()
    assert sorted(boards) == ["ensemble", "hpo", "operator", "pbt", "training"]
    assert all(board_queries(b) for b in boards.values())
