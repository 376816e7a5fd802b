"""The operator's shared metrics: update logic and the /metrics exposition."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import generate_latest

from stevie_operator.framework.children import Owned
from stevie_operator.framework.controller import failed_jobs
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.kinds.trainingrun.metrics import TrainingRunMetrics


def value(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def test_phases_are_counted_per_kind_and_follow_transitions() -> None:
    m = OperatorMetrics()
    m.observe("TrainingRun", "ns", "a", "Pending")
    m.observe("TrainingRun", "ns", "b", "Pending")
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Pending") == 2
    m.observe("TrainingRun", "ns", "a", "Running")
    m.best_sharpe("TrainingRun", "ns", "a", 0.4)
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Pending") == 1
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Running") == 1
    assert value(m, "stevie_operator_resources", kind="TrainingRun", phase="Succeeded") == 0
    assert value(
        m, "stevie_operator_best_validation_sharpe", kind="TrainingRun", namespace="ns", name="a"
    ) == pytest.approx(0.4)
    m.observe("TrainingRun", "ns", "a", "Succeeded")
    m.best_sharpe("TrainingRun", "ns", "a", 1.2)
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
    m.observe("TrainingRun", "ns", "c", None)
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
    m.observe("TrainingRun", "ns", "a", "Running")
    port = m.serve(0, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert text == generate_latest(m.registry).decode()
    assert 'stevie_operator_resources{kind="TrainingRun",phase="Running"} 1.0' in text
    m.close()  # the port is free again
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_a_kinds_own_metrics_live_in_the_same_registry_and_are_forgotten() -> None:
    m = OperatorMetrics()
    own = m.of("TrainingRun", TrainingRunMetrics)
    assert m.of("TrainingRun", TrainingRunMetrics) is own
    own.observe("ns", "a", 512, 2048)
    assert value(m, "stevie_operator_training_progress_ratio", namespace="ns", name="a") == 0.25
    m.forget("TrainingRun", "ns", "a")
    assert value(m, "stevie_operator_training_progress_ratio", namespace="ns", name="a") is None


def _job(name: str, uid: str, failed: bool) -> dict[str, object]:
    condition = {"type": "Failed" if failed else "Complete", "status": "True"}
    return {"metadata": {"name": name, "uid": uid}, "status": {"conditions": [condition]}}


def test_failed_child_jobs_are_counted_once_each() -> None:
    m = OperatorMetrics()
    failures = "stevie_operator_job_failures_total"
    key = {"kind": "HPOStudy", "namespace": "ns", "name": "s"}
    jobs = {"s-t0": _job("s-t0", "u0", failed=False), "s-t1": _job("s-t1", "u1", failed=True)}
    assert failed_jobs(Owned({"Job": jobs})) == ["s-t1/u1"]
    # First reconcile (maybe a restarted operator): what already failed is not counted,
    # but the series exists, so increase() sees the next failure.
    m.failed_jobs("HPOStudy", "ns", "s", failed_jobs(Owned({"Job": jobs})))
    assert value(m, failures, **key) == 0
    jobs["s-t2"] = _job("s-t2", "u2", failed=True)
    for _ in range(3):  # reconciled again and again: counted once
        m.failed_jobs("HPOStudy", "ns", "s", failed_jobs(Owned({"Job": jobs})))
    assert value(m, failures, **key) == 1
    jobs["s-t2"] = _job("s-t2", "u3", failed=True)  # re-created under the same name, failed
    m.failed_jobs("HPOStudy", "ns", "s", failed_jobs(Owned({"Job": jobs})))
    assert value(m, failures, **key) == 2
    m.forget("HPOStudy", "ns", "s")
    assert value(m, failures, **key) is None
