"""A finished Job that disappears (``ttlSecondsAfterFinished``, or deleted by hand) is never
run again: its outcome is in the status, or in result.json when the status never saw it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from stevie_operator.framework.plan import Plan
from stevie_operator.kinds.trainingrun.reconcile import Observed, reconcile_training_run
from support.jobs import done, failed
from support.paths import example

T0 = datetime(2025, 1, 1, tzinfo=UTC)
JOB = "quick-train"
RESULT = {"status": "succeeded", "timesteps": 20480, "validation": {"sharpe": 1.5},
          "test": {"agent": {"sharpe": 0.7}}, "artifacts": {"model": "m.zip"}}  # fmt: skip


def resource() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(example("trainingrun-quickstart.yaml"))
    doc["metadata"] = {"name": "quick", "namespace": "default", "uid": "u1", "generation": 1}
    return doc


def step(res: dict[str, Any], job: dict[str, Any] | None = None, **files: Any) -> Plan[None]:
    jobs = {} if job is None else {JOB: {"metadata": {"name": JOB}, "status": job}}
    plan = reconcile_training_run(res, Observed(now=T0, jobs=jobs, **files))
    res["status"] = plan.status
    return plan


def test_a_succeeded_run_whose_job_is_gone_stays_succeeded() -> None:
    res = resource()
    step(res)
    step(res, done(), result=RESULT)
    plan = step(res, None, result=RESULT)  # collected a day later
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}


def test_a_failed_run_whose_job_is_gone_is_not_retried() -> None:
    res = resource()
    step(res)
    assert step(res, failed(pods=4)).phase == "Failed"
    plan = step(res, None)
    assert plan.phase == "Failed" and plan.children == ()
    assert "backoff limit" in plan.status["message"]


def test_a_job_gone_before_its_success_was_recorded_is_read_from_result_json() -> None:
    """The operator was down longer than the TTL: the status still says Running."""
    res = resource()
    step(res)
    step(res, {"active": 1, "startTime": "2025-01-01T00:01:00Z"})
    plan = step(res, None, result=RESULT)
    assert plan.children == ()
    assert plan.phase == "Succeeded"
    assert plan.status["validation"]["sharpe"] == 1.5
    assert plan.status["completionTime"] == "2025-01-01T00:00:00Z"
    assert [e.reason for e in plan.events] == ["TrainingSucceeded"]


def test_a_running_job_deleted_without_a_result_is_created_again() -> None:
    """No result.json: the run did not finish (deleted by hand, or never created)."""
    res = resource()
    step(res)
    step(res, {"active": 1})
    assert [c.name for c in step(res, None).children] == [JOB]


def test_a_new_resource_still_gets_its_job_whatever_storage_holds() -> None:
    """Only a status that started the Job trusts result.json; a new resource's trainer decides
    (it resumes, finds the run done, or refuses another spec's run)."""
    plan = step(resource(), None, result=RESULT)
    assert [c.name for c in plan.children] == [JOB] and plan.phase == "Pending"
