"""The committed dashboards: regenerated without drift, and every board, variable, panel and
query following the rules (datasource variable, units, $__rate_interval, PromQL that names
only metric families and labels the code exports)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.monitoring import dashboards
from stevie_operator.monitoring.queries import BOARDS_DIR, board_queries, load_boards, panels
from stevie_operator.registry import KINDS
from stevie_trainer.common.telemetry import TrainerMetrics
from stevie_trainer.serving.metrics import ServeMetrics

BOARDS = load_boards()
REGENERATE = "run: python -m stevie_operator.monitoring.dashboards --out charts/stevie/dashboards"
# Target labels Prometheus adds: to every series (job, instance) and, through the
# PodMonitor's relabelings, to the series of trainer and decision-service pods.
SCRAPE_LABELS = {"job", "instance"}
POD_LABELS = {"namespace", "pod", "stevie_kind", "stevie_name", "stevie_role"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def _exposed(registry: CollectorRegistry, extra: set[str]) -> dict[str, set[str]]:
    """Exposed series name -> its label names, from the registry's collectors (a
    labelled family has no samples until used, so read the collectors, not a scrape)."""
    names: dict[str, set[str]] = {}
    collector: Any  # prometheus-client's metric classes (their label names are private)
    for collector in set(registry._collector_to_names):
        labels = set(collector._labelnames) | SCRAPE_LABELS | extra
        for suffix in SUFFIXES[collector._type]:
            series = labels | ({"le"} if suffix == "_bucket" else set())
            names[collector._name + suffix] = series
    return names


def known_families() -> dict[str, set[str]]:
    """Every series the operator, a trainer and the decision service can expose."""
    operator = OperatorMetrics()
    for kind in KINDS.values():
        operator.of(kind.name, kind.make_metrics)
    return {
        **_exposed(operator.registry, set()),
        **_exposed(TrainerMetrics("run").registry, POD_LABELS),
        **_exposed(ServeMetrics().registry, POD_LABELS),
    }


FAMILIES = known_families()
ALL_QUERIES = [q for name, board in BOARDS.items() for q in board_queries(board, name)]
VARIABLE_QUERIES = [
    (name, v["name"], v["query"])
    for name, board in BOARDS.items()
    for v in board["templating"]["list"]
    if v["type"] == "query"
]


def test_the_committed_boards_are_what_the_code_generates(tmp_path: Path) -> None:
    dashboards.main(["--out", str(tmp_path)])
    generated = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in BOARDS_DIR.glob("*.json")}
    assert sorted(generated) == sorted(committed), REGENERATE
    for name, text in generated.items():
        assert committed[name] == text, f"{name} drifted: {REGENERATE}"
        assert text.endswith("}\n")


def test_five_boards_with_unique_uids_and_tags() -> None:
    assert list(dashboards.BOARDS) == ["operator", "training", "pbt", "hpo", "ensemble"]
    uids = [board["uid"] for board in BOARDS.values()]
    assert len(set(uids)) == len(uids) == 5
    for board in BOARDS.values():
        assert board["uid"].startswith("stevie-") and "stevie" in board["tags"]
        assert board["title"].startswith("Stevie / ")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_board_has_datasource_namespace_and_resource_variables(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    namespace = variables["namespace"]
    assert namespace["type"] == "query" and namespace["multi"] and namespace["includeAll"]
    assert re.fullmatch(r"label_values\(\w+, namespace\)", namespace["query"])
    resource = "kind" if name == "operator" else "name"
    assert variables[resource]["type"] == "query" and variables[resource]["includeAll"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_queries_the_datasource_variable_with_a_unit(name: str) -> None:
    ids = [p["id"] for p in BOARDS[name]["panels"]]
    assert len(set(ids)) == len(ids), "panel ids are unique in a board"
    for panel in panels(BOARDS[name]):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"] and panel["title"] and panel["description"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs) and all(refs)
        if panel["type"] != "stat":
            assert panel["options"]["legend"]["showLegend"], panel["title"]
        for target in panel["targets"]:
            assert target["legendFormat"], f"{panel['title']}: a legend that says what it is"


def _balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    inside = False
    for char in expr:
        if char == '"':
            inside = not inside
        elif not inside and char in "([{":
            stack.append(char)
        elif not inside and char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not inside


TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|[a-zA-Z_][\w:]*')
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
RANGE = re.compile(r"\[([^\]]*)\]")


def selectors(expr: str) -> list[tuple[str, str]]:
    """The Stevie series ``expr`` selects, with their matchers: names outside strings,
    matcher braces and by/without lists (where label names such as stevie_name live)."""
    text = GROUPING.sub("", expr)
    tokens = list(TOKEN.finditer(text))
    found = []
    for i, token in enumerate(tokens):
        if not token.group().startswith("stevie_"):
            continue
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        matchers = ""
        if (
            after
            and after.group().startswith("{")
            and not text[token.end() : after.start()].strip()
        ):
            matchers = after.group()[1:-1]
        found.append((token.group(), matchers))
    return found


def _check(expr: str) -> None:
    """Balanced, rates over $__rate_interval, every series and label one the code exports."""
    assert _balanced(expr), expr
    assert all(window == "$__rate_interval" for window in RANGE.findall(expr)), expr
    found = selectors(expr)
    assert found, f"names no Stevie series: {expr}"
    labels: set[str] = set()
    for series, matchers in found:
        assert series in FAMILIES, f"{series} is exported by nothing: {expr}"
        for label in MATCHER.findall(matchers):
            assert label in FAMILIES[series], f"{series} has no label {label}: {expr}"
        labels |= FAMILIES[series]
    for grouping in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in grouping.split(","))):
            assert label in labels, f"no series of {expr} has label {label}"


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda q: f"{q.board}-{q.panel}-{q.ref}")
def test_every_panel_query_names_real_series_and_labels(query: Any) -> None:
    _check(query.expr)
    for template in re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend):
        labels = set().union(*(FAMILIES[s] for s, _ in selectors(query.expr)))
        assert template in labels, f"legend {{{{{template}}}}}: no such label in {query.expr}"


@pytest.mark.parametrize("board,name,query", VARIABLE_QUERIES)
def test_every_variable_query_names_real_series_and_labels(
    board: str, name: str, query: str
) -> None:
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    assert match, query
    selector, label = match.groups()
    _check(selector)
    assert label in FAMILIES[selectors(selector)[0][0]]


def test_the_checks_catch_a_renamed_metric_or_label() -> None:
    """The known-series list comes from the code, so a rename fails the tests above."""
    _check(
        'sum by (kind) (rate(stevie_operator_reconcile_errors_total{kind="x"}[$__rate_interval]))'
    )
    for broken in (
        "stevie_operator_reconcile_failures_total",  # no such family
        'stevie_trainer_fps{name=~"$name"}',  # trainer series have stevie_name, not name
        "sum by (phase) (stevie_operator_reconcile_errors_total)",  # no phase label
        "rate(stevie_operator_reconcile_errors_total[5m])",  # a fixed window
        'sum(stevie_trainer_fps{run=~"$run"}',  # unbalanced
    ):
        with pytest.raises(AssertionError):
            _check(broken)
