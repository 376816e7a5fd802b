"""An Ensemble's finished backtest Job that disappears (``ttlSecondsAfterFinished``) is never
run again: its report stands, and so does its failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stevie_operator.framework.plan import Plan
from stevie_operator.kinds.ensemble.reconcile import Observed, reconcile_ensemble
from support.jobs import done, failed

T0 = datetime(2025, 1, 1, tzinfo=UTC)
REPORT = {"members": [], "weights": {}, "best_member": {"name": "a"},
          "splits": {"test": {"policies": {"ensemble": {"sharpe": 0.9}}}}}  # fmt: skip


def resource(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "Ensemble",
        "metadata": {"name": "ens", "namespace": "team", "uid": "u1", "generation": 1},
        "spec": {
            "members": [{"uri": "s3://models/a/model.zip"}, {"uri": "s3://models/b/model.zip"}],
            "serving": {"enabled": False},
            **spec,
        },
    }


def step(res: dict[str, Any], **seen: Any) -> Plan[Any]:
    plan = reconcile_ensemble(res, Observed(now=T0, **seen))
    res["status"] = plan.status
    return plan


def test_a_failed_backtest_whose_job_is_gone_is_not_run_again() -> None:
    res = resource()
    (job,) = step(res).children
    error = {"member": "member-1", "problem": "model.zip is not a loadable model"}
    plan = step(res, jobs={job.name: {"status": failed(pods=4)}}, error=error)
    assert plan.phase == "Failed"
    plan = step(res, error=error)  # the Job is deleted a day later
    assert plan.phase == "Failed" and plan.children == () and plan.work is None
    assert plan.status_patch == {}
    assert "member 'member-1'" in plan.status["message"]


def test_a_backtested_version_whose_job_is_gone_is_not_run_again() -> None:
    res = resource()
    (job,) = step(res).children
    assert step(res, jobs={job.name: {"status": done()}}, report=REPORT).phase == "Succeeded"
    plan = step(res, report=REPORT)
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}


def test_a_new_version_after_a_failure_gets_its_job() -> None:
    res = resource()
    (job,) = step(res).children
    step(res, jobs={job.name: {"status": failed(pods=4)}})
    res["spec"]["method"] = "majority"  # what decides changed: a new version
    (again,) = step(res).children
    assert again.name != job.name
