"""A succeeded run whose result.json cannot be read takes its metrics from the summary its
pod left in its termination message (the pure reconciler, with the Job's PodReport as the
controller attaches it): Succeeded with the metrics, Degraded saying where they came from;
result.json wins whenever it can be read, and the outcome stays once the Job is gone."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from stevie_operator.framework.children import with_pods
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.podstatus import PodReport
from stevie_operator.framework.termination import parse
from stevie_operator.kinds.trainingrun.reconcile import (
    RESULT_FROM_POD,
    Observed,
    reconcile_training_run,
)
from stevie_trainer.common.termination import encode, training_summary
from support.paths import example

T0 = datetime(2025, 1, 1, tzinfo=UTC)
URI = "file:///data/stevie/default/trainingruns/quick/u1"
SUCCEEDED = {
    "metadata": {"name": "quick-train"},
    "status": {"succeeded": 1, "startTime": "2025-01-01T00:01:00Z",
               "completionTime": "2025-01-01T01:00:00Z",
               "conditions": [{"type": "Complete", "status": "True"}]},
}  # fmt: skip
RESULT = {
    "status": "succeeded",
    "timesteps": 20480,
    "validation": {"sharpe": 1.25, "total_return": 0.1, "max_drawdown": -0.05, "trades": 7},
    "test": {"agent": {"sharpe": -0.5, "win_rate": 0.4}, "buy_and_hold": {"sharpe": 0.2}},
    "artifacts": {"model": URI + "/model.zip", "final_model": URI + "/final.zip"},
    "evaluations": [{"timesteps": 512, "sharpe": 0.3}],
}
# What the trainer writes and the operator reads back, end to end of both modules.
SUMMARY = parse(encode(training_summary(RESULT)))


def resource() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(example("trainingrun-quickstart.yaml"))
    doc["metadata"] = {"name": "quick", "namespace": "default", "uid": "u1", "generation": 1}
    return doc


def with_summary(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The Job as the controller lists it: with what its (succeeded) pod says."""
    return with_pods(SUCCEEDED, PodReport(summary=summary))


def step(res: dict[str, Any], job: dict[str, Any] | None, **files: Any) -> Plan[None]:
    jobs = {} if job is None else {"quick-train": job}
    plan = reconcile_training_run(res, Observed(now=T0 + timedelta(hours=2), jobs=jobs, **files))
    res["status"] = plan.status
    return plan


def degraded(plan: Plan[None]) -> dict[str, Any]:
    return next(c for c in plan.status["conditions"] if c["type"] == "Degraded")


def test_an_unreadable_result_takes_the_termination_message() -> None:
    assert SUMMARY is not None
    res = resource()
    plan = step(res, with_summary(SUMMARY))
    assert plan.phase == "Succeeded" and plan.finished
    assert plan.status["validation"] == {"sharpe": 1.25, "totalReturn": 0.1,
                                         "maxDrawdown": 0.05, "trades": 7}  # fmt: skip
    assert plan.status["test"] == {"sharpe": -0.5, "winRate": 0.4}
    assert plan.status["progress"] == {"timesteps": 20480, "totalTimesteps": 20480,
                                       "percent": 100}  # fmt: skip
    assert plan.status["artifacts"]["model"] == URI + "/model.zip"
    assert plan.status["message"] == (
        "Trained 20480 steps: validation Sharpe 1.250, test Sharpe -0.500"
    )
    cond = degraded(plan)
    assert (cond["status"], cond["reason"]) == ("True", RESULT_FROM_POD)
    assert cond["message"] == (
        f"Job quick-train succeeded but {URI}/result.json could not be read; the status comes "
        "from its pod's termination message (headline metrics only)"
    )
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "TrainingSucceeded")
    assert ("Warning", RESULT_FROM_POD) in [(e.type, e.reason) for e in plan.events]

    # The store answers again: result.json's own values, and Degraded clears.
    readable = RESULT | {"validation": {"sharpe": 2.0}}
    plan = step(res, with_summary(SUMMARY), result=readable)
    assert plan.status["validation"] == {"sharpe": 2.0}
    assert (degraded(plan)["status"], degraded(plan)["reason"]) == ("False", "AsExpected")


def test_the_outcome_stays_once_the_job_and_its_pod_are_gone() -> None:
    res = resource()
    step(res, with_summary(SUMMARY))
    plan = step(res, None)  # ttlSecondsAfterFinished deleted the Job and its pod
    assert plan.phase == "Succeeded"
    assert plan.status["test"] == {"sharpe": -0.5, "winRate": 0.4}
    assert (degraded(plan)["status"], degraded(plan)["reason"]) == ("True", RESULT_FROM_POD)
    assert plan.events == ()


def test_no_summary_is_still_result_unavailable() -> None:
    for job in (with_summary(None), SUCCEEDED):  # pods listed with none; pods not listed
        plan = step(resource(), job)
        assert plan.phase == "Succeeded"
        assert (degraded(plan)["status"], degraded(plan)["reason"]) == ("True", "ResultUnavailable")
        assert "validation" not in plan.status and "test" not in plan.status
