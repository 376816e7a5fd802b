"""Editing a TrainingRun whose Job exists: immutable fields refused (named in Degraded, the
Job untouched, observedGeneration kept), activeDeadlineSeconds applied to the Job, a stale
status tolerated."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from stevie_operator.framework.plan import Plan
from stevie_operator.kinds.trainingrun.reconcile import Observed, reconcile_training_run
from support.paths import example

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def resource(generation: int = 1) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(example("trainingrun-quickstart.yaml"))
    doc["metadata"] = {"name": "quick", "namespace": "default", "uid": "u1",
                       "generation": generation}  # fmt: skip
    return doc


def reconcile(res: dict[str, Any], jobs: dict[str, Any], **files: Any) -> Plan[None]:
    plan = reconcile_training_run(res, Observed(now=T0, jobs=jobs, **files))
    res["status"] = plan.status
    return plan


def started() -> tuple[dict[str, Any], dict[str, Any]]:
    """A run whose Job (the manifest the operator built, now running) exists."""
    res = resource()
    plan = reconcile(res, {})
    (child,) = plan.children
    job = {**copy.deepcopy(dict(child.manifest)), "status": {"active": 1}}
    reconcile(res, {"quick-train": job}, progress={"timesteps": 100})
    assert res["status"]["phase"] == "Running"
    return res, job


def degraded(plan: Plan[None]) -> dict[str, Any]:
    return next(c for c in plan.status["conditions"] if c["type"] == "Degraded")


def test_an_immutable_edit_is_refused_naming_the_fields_and_the_job_goes_on() -> None:
    res, job = started()
    total = res["spec"]["totalTimesteps"]
    res["metadata"]["generation"] = 2
    res["spec"]["totalTimesteps"] = total * 2
    res["spec"].setdefault("ppo", {})["learningRate"] = 0.000123
    plan = reconcile(res, {"quick-train": job}, progress={"timesteps": 200})
    assert plan.children == () and plan.updates == ()  # the Job is left as it is
    cond = degraded(plan)
    assert (cond["status"], cond["reason"]) == ("True", "ImmutableFieldChanged")
    assert cond["message"].startswith(
        "spec.ppo.learningRate, spec.totalTimesteps cannot change while the run exists"
    )
    assert "delete and re-create" in cond["message"]
    # The status reflects generation 1 (what the Job runs); the conditions saw generation 2.
    assert plan.status["observedGeneration"] == 1 and cond["observedGeneration"] == 2
    assert plan.status["phase"] == "Running"
    assert plan.status["progress"]["totalTimesteps"] == total  # the applied spec's total
    assert [e.reason for e in plan.events] == ["ImmutableFieldChanged"]
    # Reverting the edit applies the latest generation again.
    res["metadata"]["generation"] = 3
    res["spec"]["totalTimesteps"] = total
    del res["spec"]["ppo"]["learningRate"]
    plan = reconcile(res, {"quick-train": job})
    assert plan.status["observedGeneration"] == 3 and degraded(plan)["status"] == "False"


def test_active_deadline_seconds_is_applied_to_the_running_job() -> None:
    res, job = started()
    res["metadata"]["generation"] = 2
    res["spec"]["activeDeadlineSeconds"] = 3600
    plan = reconcile(res, {"quick-train": job})
    (update,) = plan.updates
    assert update.name == "quick-train" and update.kind == "Job"
    assert update.manifest["spec"] == {"activeDeadlineSeconds": 3600}
    assert plan.status["observedGeneration"] == 2 and degraded(plan)["status"] == "False"
    job["spec"]["activeDeadlineSeconds"] = 3600  # the patch landed: nothing more to do
    assert reconcile(res, {"quick-train": job}).updates == ()


def test_a_job_spec_written_before_a_defaulted_field_existed_is_no_edit() -> None:
    """An older operator's Job carries a spec without the fields added since (and the
    defaults the API server writes are no change either)."""
    res, job = started()
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    var = next(v for v in env if v["name"] == "STEVIE_SPEC")
    doc = json.loads(var["value"])
    doc.pop("nEnvs", None)  # as if written before nEnvs (default 8) existed
    var["value"] = json.dumps(doc)
    res["spec"]["device"] = "cpu"  # the default, written explicitly
    res["metadata"]["generation"] = 2
    plan = reconcile(res, {"quick-train": job})
    assert degraded(plan)["status"] == "False" and plan.status["observedGeneration"] == 2


def test_a_finished_run_whose_job_is_gone_refuses_an_edit_from_its_spec_json() -> None:
    res, job = started()
    spec_json = copy.deepcopy(res["spec"])
    job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    reconcile(res, {"quick-train": job}, result={"status": "succeeded"})
    assert res["status"]["phase"] == "Succeeded"
    res["metadata"]["generation"] = 2
    res["spec"]["seed"] = 42
    plan = reconcile(res, {}, spec=spec_json)
    assert plan.phase == "Succeeded" and plan.children == ()
    assert degraded(plan)["message"].startswith("spec.seed cannot change")
    assert plan.status["observedGeneration"] == 1


def test_a_stale_status_from_an_older_generation_and_operator_does_not_break() -> None:
    """A status an older operator wrote (a field since removed, an old observedGeneration,
    a condition without observedGeneration) is read tolerantly; the run goes on."""
    res, job = started()
    res["status"]["observedGeneration"] = 1
    res["status"]["removedField"] = {"x": 1}
    res["status"]["progress"] = {"timesteps": "many"}  # retyped since
    for cond in res["status"]["conditions"]:
        cond.pop("observedGeneration", None)
    res["metadata"]["generation"] = 5  # e.g. label-only bumps never happen, but edits did
    plan = reconcile(res, {"quick-train": job}, progress={"timesteps": 300})
    assert plan.phase == "Running" and plan.children == ()
    assert plan.status["observedGeneration"] == 5
    assert plan.status["progress"]["timesteps"] == 300
    assert "removedField" not in plan.status and plan.status_patch["removedField"] is None
