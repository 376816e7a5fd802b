"""Real Prometheus scraping the operator (against kmock), trainer processes and the decision
service on loopback: every alert expression of charts/stevie/files/alerts.yaml evaluates to
a well-formed result, and every query of every dashboard in charts/stevie/dashboards/
returns series, so no panel names a metric or label that nothing exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_tests.scenario import Scraped

from support.paths import REPO
from support.prometheus import panel_results

ALERTS = REPO / "charts" / "stevie" / "files" / "alerts.yaml"
DASHBOARDS = REPO / "charts" / "stevie" / "dashboards"


def boards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


@pytest.mark.slow
def test_the_scenario_exports_what_the_alerts_and_boards_rely_on(scraped: Scraped) -> None:
    prom, at = scraped.prom, scraped.end
    statuses = {name: status["phase"] for name, status in scraped.statuses.items()}
    assert statuses == {"e2e-tr": "Succeeded", "e2e-broken": "Failed",
                        "e2e-hpo": "Succeeded", "e2e-pbt": "Succeeded"}  # fmt: skip

    def one(expr: str) -> float:
        (sample,) = prom.query(expr, at)["result"]
        return float(sample["value"][1])

    # The operator's own labels survive (honor_labels): the resource's namespace and name.
    failures = 'stevie_operator_job_failures_total{kind="TrainingRun", name="e2e-broken"}'
    assert one(f'{failures[:-1]}, namespace="default", job="stevie-operator"}}') == 1
    assert one('stevie_operator_job_failures_total{name="e2e-tr"}') == 0
    assert one('stevie_operator_hpo_trials{name="e2e-hpo", state="completed"}') == 1
    assert one('stevie_operator_hpo_trial_duration_seconds_count{name="e2e-hpo"}') == 1
    assert one('stevie_operator_pbt_intervals_completed{name="e2e-pbt"}') == 2
    # The stall clock ran while members trained, and stopped once the population finished.
    window = f"[{int(at - scraped.start) + 1}s]"
    last = f'stevie_operator_pbt_last_interval_timestamp_seconds{{name="e2e-pbt"}}{window}'
    assert one(f"count_over_time({last})") > 0
    assert not prom.query("stevie_operator_pbt_last_interval_timestamp_seconds", at)["result"]
    # A trainer was scraped while it trained, with the PodMonitor's labels.
    trained = f'max_over_time(stevie_trainer_timesteps{{stevie_name="e2e-tr"}}{window})'
    assert one(trained) > 0
    series = prom.query(
        f'last_over_time(stevie_trainer_timesteps{{stevie_name="e2e-tr"}}{window})', at
    )
    (labels,) = [r["metric"] for r in series["result"]]
    assert (labels["job"], labels["namespace"], labels["stevie_kind"]) == (
        "stevie-trainer", "default", "TrainingRun")  # fmt: skip
    assert labels["pod"].startswith("e2e-tr-train-") and labels["stevie_role"]
    # The decision service answered 24 decisions.
    decided = 'stevie_serve_requests_total{route="/v1/decide", status="200", stevie_name="e2e-ens"}'
    assert one(decided) == 24


@pytest.mark.slow
def test_every_alert_expression_is_well_formed(scraped: Scraped) -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    firing = {}
    for rule in rules:
        data = scraped.prom.query(rule["expr"], scraped.end)  # raises on a bad query
        assert data["resultType"] == "vector", rule["alert"]
        firing[rule["alert"]] = len(data["result"])
    # Nothing is wrong in the scenario beyond one failed Job (below the threshold).
    assert firing == dict.fromkeys(firing, 0), firing


@pytest.mark.slow
def test_every_dashboard_query_returns_series(scraped: Scraped) -> None:
    found = boards()
    assert found, f"no dashboard JSON in {DASHBOARDS}"
    empty, counts = [], {}
    for path in found:
        board: dict[str, Any] = json.loads(path.read_text())
        results = panel_results(scraped.prom, board, scraped.start, scraped.end)
        assert results, f"{path.name}: no queries"
        counts[path.name] = (len(results), sum(len(p.series) for p in results))
        empty += [
            f"{path.name}: {p.title} [{p.ref_id}]: {p.query}" for p in results if not p.series
        ]
    print(f"\nqueries and series per board: {counts}; timings {scraped.timings}")
    assert not empty, "queries that return no series:\n" + "\n".join(empty)
