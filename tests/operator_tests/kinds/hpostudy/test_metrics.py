"""HPOStudy metrics: trials by state, best value, durations once per trial."""

from __future__ import annotations

from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.kinds.hpostudy.metrics import HPOStudyMetrics


def value(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def test_hpo_study_trials_best_value_and_durations_once_per_trial() -> None:
    m = OperatorMetrics()
    own = m.of("HPOStudy", HPOStudyMetrics)
    counts = {"running": 2, "completed": 0, "pruned": 0, "failed": 0}
    own.observe("ns", "s", counts, None, [])
    assert value(m, "stevie_operator_hpo_trials", namespace="ns", name="s", state="running") == 2
    assert value(m, "stevie_operator_hpo_best_value", namespace="ns", name="s") is None
    counts = {"running": 1, "completed": 1, "pruned": 0, "failed": 1}
    finished = [(0, "completed", 90.0), (1, "failed", 5.0)]
    own.observe("ns", "s", counts, 1.5, finished)
    own.observe("ns", "s", counts, 1.5, finished)  # seen again: not observed again
    duration = "stevie_operator_hpo_trial_duration_seconds_count"
    study = {"namespace": "ns", "name": "s"}
    assert value(m, duration, **study, state="completed") == 1
    assert value(m, duration, **study, state="failed") == 1
    total = "stevie_operator_hpo_trial_duration_seconds_sum"
    assert value(m, total, **study, state="completed") == 90
    assert value(m, "stevie_operator_hpo_best_value", namespace="ns", name="s") == 1.5
    # A study first seen with finished trials (operator restart): they are not observed.
    own.observe("ns", "old", counts, None, [(0, "completed", 10.0)])
    assert value(m, duration, namespace="ns", name="old", state="completed") is None
    own.observe("ns", "old", counts, None, [(0, "completed", 10.0), (1, "pruned", 4.0)])
    assert value(m, duration, namespace="ns", name="old", state="pruned") == 1
    m.forget("HPOStudy", "ns", "s")
    assert value(m, duration, **study, state="completed") is None
    assert value(m, duration, namespace="ns", name="old", state="pruned") == 1
    assert value(m, "stevie_operator_hpo_trials", namespace="ns", name="s", state="failed") is None
    assert value(m, "stevie_operator_hpo_best_value", namespace="ns", name="s") is None
