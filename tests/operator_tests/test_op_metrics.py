"""Operator metrics: update logic and the /metrics exposition."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import generate_latest

from stevie_operator.metrics import OperatorMetrics


def value(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def test_phases_are_counted_per_kind_and_follow_transitions() -> None:
    m = OperatorMetrics()
    m.observe("TrainingRun", "ns", "a", "Pending", None)
    m.observe("TrainingRun", "ns", "b", "Pending", None)
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Pending") == 2
    m.observe("TrainingRun", "ns", "a", "Running", 0.4)
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Pending") == 1
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Running") == 1
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Succeeded") == 0
    assert value(
        m, "stevie_operator_best_validation_sharpe", kind="TrainingRun", namespace="ns", name="a"
    ) == pytest.approx(0.4)
    m.observe("TrainingRun", "ns", "a", "Succeeded", 1.2)
    assert value(
        m, "stevie_operator_best_validation_sharpe", kind="TrainingRun", namespace="ns", name="a"
    ) == pytest.approx(1.2)
    m.forget("TrainingRun", "ns", "a")
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Succeeded") == 0
    assert (
        value(
            m,
            "stevie_operator_best_validation_sharpe",
            kind="TrainingRun",
            namespace="ns",
            name="a",
        )
        is None
    )
    m.forget("TrainingRun", "ns", "never-seen")  # no error
    m.observe("TrainingRun", "ns", "c", None, None)
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Unknown") == 1


def test_reconcile_duration_and_errors() -> None:
    m = OperatorMetrics()
    with m.reconciling("TrainingRun"):
        pass
    with pytest.raises(RuntimeError), m.reconciling("TrainingRun"):
        raise RuntimeError("boom")
    count = "stevie_operator_reconcile_duration_seconds_count"
    assert value(m, count, kind="TrainingRun") == 2
    assert value(m, "stevie_operator_reconcile_errors_total", kind="TrainingRun") == 1


def test_metrics_are_served_over_http() -> None:
    m = OperatorMetrics()
    m.observe("TrainingRun", "ns", "a", "Running", 0.5)
    port = m.serve(0, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert text == generate_latest(m.registry).decode()
    assert 'stevie_operator_resources{kind="TrainingRun",phase="Running"} 1.0' in text


def test_hpo_study_trials_best_value_and_durations_once_per_trial() -> None:
    m = OperatorMetrics()
    counts = {"running": 2, "completed": 0, "pruned": 0, "failed": 0}
    m.observe_study("ns", "s", counts, None, [])
    assert value(m, "stevie_operator_hpo_trials", namespace="ns", name="s", state="running") == 2
    assert value(m, "stevie_operator_hpo_best_value", namespace="ns", name="s") is None
    counts = {"running": 1, "completed": 1, "pruned": 0, "failed": 1}
    finished = [(0, "completed", 90.0), (1, "failed", 5.0)]
    m.observe_study("ns", "s", counts, 1.5, finished)
    m.observe_study("ns", "s", counts, 1.5, finished)  # seen again: not observed again
    duration = "stevie_operator_hpo_trial_duration_seconds_count"
    assert value(m, duration, state="completed") == 1
    assert value(m, duration, state="failed") == 1
    assert value(m, "stevie_operator_hpo_best_value", namespace="ns", name="s") == 1.5
    # A study first seen with finished trials (operator restart): they are not observed.
    m.observe_study("ns", "old", counts, None, [(0, "completed", 10.0)])
    assert value(m, duration, state="completed") == 1
    m.forget("HPOStudy", "ns", "s")
    assert value(m, "stevie_operator_hpo_trials", namespace="ns", name="s", state="failed") is None
    assert value(m, "stevie_operator_hpo_best_value", namespace="ns", name="s") is None


def test_pbt_population_fitness_exploits_intervals_and_durations() -> None:
    m = OperatorMetrics()
    labels = {"namespace": "ns", "name": "pop"}
    m.observe_population("ns", "pop", fitness={0: 0.5, 1: -0.2}, intervals_completed=2,
                         new_exploits=1, interval_seconds=[30.0, 50.0])  # fmt: skip
    m.observe_population("ns", "pop", fitness={1: 0.3}, intervals_completed=3,
                         new_exploits=2, interval_seconds=[])  # fmt: skip
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="1") == 0.3
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="0") == 0.5
    assert value(m, "stevie_operator_pbt_exploits_total", **labels) == 3
    assert value(m, "stevie_operator_pbt_intervals_completed", **labels) == 3
    assert value(m, "stevie_operator_pbt_interval_duration_seconds_count") == 2
    assert value(m, "stevie_operator_pbt_interval_duration_seconds_sum") == 80
    m.forget("PBTPopulation", "ns", "pop")
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="0") is None
    assert value(m, "stevie_operator_pbt_exploits_total", **labels) is None
