"""The pure TrainingRun reconciler: transitions, conditions, events, idempotence."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.kinds.trainingrun.controller import TrainingRunKind
from stevie_operator.kinds.trainingrun.reconcile import (
    Observed,
    best_validation_sharpe,
    reconcile_training_run,
)
from support.paths import example

QUICKSTART = example("trainingrun-quickstart.yaml")
T0 = datetime(2025, 1, 1, tzinfo=UTC)
URI = "file:///data/stevie/default/trainingruns/quick/u1"  # <name>/<uid>


def resource(generation: int = 1, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(QUICKSTART)
    doc["metadata"] = {
        "name": "quick",
        "namespace": "default",
        "uid": "u1",
        "generation": generation,
    }
    doc["spec"].update(spec)
    return doc


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "quick-train"}, "status": status}


def seen(now: datetime, job: dict[str, Any] | None = None, **files: Any) -> Observed:
    """The world with the run's Job (if any) and its files."""
    return Observed(now=now, jobs={} if job is None else {"quick-train": job}, **files)


def step(res: dict[str, Any], observed: Observed) -> Plan[None]:
    """Reconcile and write the status back, as the API server would after the patch."""
    plan = reconcile_training_run(res, observed)
    res["status"] = plan.status
    return plan


def conditions(plan: Plan[None]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status["conditions"]}


RUNNING = job(active=1, startTime="2025-01-01T00:01:00Z")
SUCCEEDED = job(
    succeeded=1,
    startTime="2025-01-01T00:01:00Z",
    completionTime="2025-01-01T01:00:00Z",
    conditions=[{"type": "Complete", "status": "True"}],
)
RESULT = {
    "status": "succeeded",
    "timesteps": 20480,
    "validation": {"sharpe": 1.5, "sortino": None, "win_rate": 0.55, "trades": 12, "extra": 1},
    "test": {"agent": {"sharpe": 0.7, "total_return": 0.04}, "buy-and-hold": {"sharpe": 0.2}},
    "artifacts": {"model": URI + "/model.zip", "final_model": URI + "/final.zip"},
}


def test_pending_running_succeeded() -> None:
    res = resource()
    plan = step(res, seen(T0))
    assert [c.name for c in plan.children] == ["quick-train"]
    assert plan.phase == "Pending"
    assert plan.status["jobName"] == "quick-train"
    assert plan.status["observedGeneration"] == 1
    assert plan.status["progress"] == {"timesteps": 0, "totalTimesteps": 20480, "percent": 0}
    assert plan.status["artifacts"] == {"uri": URI}
    assert conditions(plan) == {
        "Ready": ("False", "JobCreated"),
        "Progressing": ("True", "JobCreated"),
        "Degraded": ("False", "AsExpected"),
        "Succeeded": ("False", "JobCreated"),
        "Failed": ("False", "JobCreated"),
    }
    # Its Event is posted once the Job is created (not if it already existed).
    event = plan.children[0].event
    assert plan.events == () and event is not None
    assert (event.type, event.reason) == ("Normal", "JobCreated")

    # The Job exists but its pod has not started: still Pending, no new event.
    plan = step(res, seen(T0, job()))
    assert not plan.children and plan.phase == "Pending" and plan.events == ()

    progress = {"timesteps": 5000, "total_timesteps": 20480, "stage": "moderate",
                "best_validation_sharpe": 0.9, "fold": {"index": 1, "count": 4}}  # fmt: skip
    plan = step(res, seen(T0 + timedelta(minutes=1), RUNNING, progress=progress))
    assert plan.phase == "Running"
    assert plan.status["progress"] == {
        "timesteps": 5000, "totalTimesteps": 20480, "percent": 24, "stage": "moderate",
        "fold": "2/4",
    }  # fmt: skip
    assert plan.status["startTime"] == "2025-01-01T00:01:00Z"
    assert best_validation_sharpe(plan, seen(T0, progress=progress)) == 0.9
    assert conditions(plan)["Progressing"] == ("True", "Training")
    assert [(e.type, e.reason) for e in plan.events] == [("Normal", "TrainingStarted")]

    plan = step(res, seen(T0 + timedelta(hours=1), SUCCEEDED, result=RESULT))
    assert plan.phase == "Succeeded" and plan.finished
    assert plan.status["validation"] == {"sharpe": 1.5, "winRate": 0.55, "trades": 12}
    assert plan.status["test"] == {"sharpe": 0.7, "totalReturn": 0.04}
    assert plan.status["artifacts"] == {
        "uri": URI, "model": URI + "/model.zip", "result": URI + "/result.json"
    }  # fmt: skip
    assert plan.status["progress"]["percent"] == 100
    assert plan.status["completionTime"] == "2025-01-01T01:00:00Z"
    assert best_validation_sharpe(plan, seen(T0)) == 1.5
    assert conditions(plan) == {
        "Ready": ("True", "TrainingSucceeded"),
        "Progressing": ("False", "TrainingSucceeded"),
        "Degraded": ("False", "AsExpected"),
        "Succeeded": ("True", "TrainingSucceeded"),
        "Failed": ("False", "TrainingSucceeded"),
    }
    assert [(e.type, e.reason) for e in plan.events] == [("Normal", "TrainingSucceeded")]
    assert "validation Sharpe 1.500, test Sharpe 0.700" in plan.events[0].message


def test_same_inputs_same_plan_and_no_status_churn() -> None:
    res = resource()
    observed = seen(T0, RUNNING, progress={"timesteps": 100})
    first = step(res, observed)
    again = reconcile_training_run(res, seen(T0 + timedelta(hours=3), RUNNING,
                                                 progress={"timesteps": 100}))  # fmt: skip
    assert again.status == first.status  # lastTransitionTime does not move without a change
    assert again.status_patch == {}
    assert again.events == ()
    assert again.children == ()
    assert reconcile_training_run(res, observed) == reconcile_training_run(res, observed)


def test_an_existing_job_is_never_recreated() -> None:
    res = resource()
    step(res, seen(T0))
    for observed_job in (job(), RUNNING, SUCCEEDED):
        assert reconcile_training_run(res, seen(T0, observed_job)).children == ()
    # Finished, and the Job was deleted since: keep the outcome, do not train again.
    step(res, seen(T0, SUCCEEDED, result=RESULT))
    plan = reconcile_training_run(res, seen(T0 + timedelta(days=2)))
    assert not plan.children and plan.phase == "Succeeded" and plan.status_patch == {}
    assert plan.events == ()


def test_failed_job_reason_comes_from_its_condition() -> None:
    res = resource()
    step(res, seen(T0, RUNNING))
    failed = job(
        failed=4,
        conditions=[
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": "2025-01-01T02:00:00Z",
            },
        ],
    )
    plan = step(res, seen(T0 + timedelta(hours=3), failed))
    assert plan.phase == "Failed" and plan.finished
    assert conditions(plan) == {
        "Ready": ("False", "BackoffLimitExceeded"),
        "Progressing": ("False", "BackoffLimitExceeded"),
        "Degraded": ("True", "BackoffLimitExceeded"),
        "Succeeded": ("False", "BackoffLimitExceeded"),
        "Failed": ("True", "BackoffLimitExceeded"),
    }
    assert plan.status["completionTime"] == "2025-01-01T02:00:00Z"
    assert "backoff limit" in plan.status["message"]
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "BackoffLimitExceeded")]
    assert reconcile_training_run(res, seen(T0, failed)).events == ()

    deadline = job(conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}])
    plan = reconcile_training_run(resource(), seen(T0, deadline))
    assert conditions(plan)["Failed"] == ("True", "DeadlineExceeded")


def test_pod_retries_degrade_but_keep_running() -> None:
    res = resource()
    step(res, seen(T0, RUNNING))
    retrying = job(active=1, failed=1)
    plan = step(res, seen(T0, retrying))
    assert plan.phase == "Running"
    assert conditions(plan)["Degraded"] == ("True", "PodRetrying")
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "PodRetrying")]
    assert reconcile_training_run(res, seen(T0, retrying)).events == ()


def test_succeeded_without_a_readable_result_is_degraded() -> None:
    plan = reconcile_training_run(resource(), seen(T0, SUCCEEDED))
    assert plan.phase == "Succeeded"
    assert conditions(plan)["Degraded"] == ("True", "ResultUnavailable")
    assert URI + "/result.json" in plan.status["conditions"][2]["message"]


def test_invalid_spec_is_a_condition_not_a_crash() -> None:
    res = resource(totalTimesteps=-5, algorithm="A2C")
    res["spec"]["ppo"]["learnig_rate"] = 0.1
    plan = step(res, seen(T0))
    assert not plan.children and plan.phase == "Failed"
    failed = next(c for c in plan.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "spec.totalTimesteps: must be > 0 (got -5)" in failed["message"]
    assert "spec.algorithm" in failed["message"]
    assert "spec.ppo.learnig_rate: unknown field" in failed["message"]
    assert conditions(plan)["Degraded"] == ("True", "InvalidSpec")
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InvalidSpec")]
    assert TrainingRunKind().location(res, OperatorConfig()) is None
    assert reconcile_training_run(res, seen(T0)).events == ()

    # Still invalid in a new way: one more event. Fixed: the run starts.
    res["spec"] = resource(totalTimesteps=0)["spec"]
    res["metadata"]["generation"] = 2
    plan = step(res, seen(T0))
    assert [e.reason for e in plan.events] == ["InvalidSpec"]
    res["spec"] = resource()["spec"]
    res["metadata"]["generation"] = 3
    plan = step(res, seen(T0))
    assert plan.children and plan.phase == "Pending"
    assert plan.status["observedGeneration"] == 3
    assert conditions(plan)["Failed"] == ("False", "JobCreated")
    assert all(c["observedGeneration"] == 3 for c in plan.status["conditions"])


def test_not_even_a_mapping_spec() -> None:
    res = resource()
    res["spec"] = "nope"
    plan = reconcile_training_run(res, seen(T0))
    assert plan.phase == "Failed" and plan.problems


def test_observed_generation_follows_spec_updates() -> None:
    res = resource()
    step(res, seen(T0, RUNNING))
    res["metadata"]["generation"] = 2
    plan = step(res, seen(T0, RUNNING))
    assert plan.status["observedGeneration"] == 2
    assert plan.status_patch["observedGeneration"] == 2
    assert plan.events == ()


def test_undefined_metrics_are_left_out() -> None:
    result = {**RESULT, "validation": {"sharpe": float("nan"), "trades": 0, "sortino": None}}
    plan = reconcile_training_run(resource(), seen(T0, SUCCEEDED, result=result))
    assert plan.status["validation"] == {"trades": 0}
    assert "validation Sharpe n/a" in plan.status["message"]
