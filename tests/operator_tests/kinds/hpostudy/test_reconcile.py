"""The pure HPOStudy reconciler, driven like the controller drives it (plan -> tell the study
-> plan again -> create Jobs), against a real Optuna JournalStorage in tmp_path. Workers are
simulated by telling the study; Jobs by dicts with a status. No training, no cluster."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import optuna
import pytest

from stevie_operator.framework.children import with_pods
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.podstatus import PodReport
from stevie_operator.kinds.hpostudy import study as hpo_study
from stevie_operator.kinds.hpostudy.children import finish_job, trial_job
from stevie_operator.kinds.hpostudy.reconcile import Observed, StudyChanges, reconcile_hpo_study
from stevie_operator.kinds.hpostudy.view import StudyProblem
from stevie_trainer.hpo.study import StudyConflictError
from support.hpo import DONE, FAILED, T0, World


def conditions(plan: Plan[StudyChanges]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status["conditions"]}


def test_parallelism_jobs_and_a_quiet_second_reconcile(tmp_path: Path) -> None:
    w = World(tmp_path)
    plan = w.step()
    assert sorted(w.jobs) == ["hpo-t0", "hpo-t1"]
    assert plan.phase == "Running"
    assert plan.status["trials"] == {"running": 2, "completed": 0, "pruned": 0, "failed": 0}
    assert conditions(plan)["Progressing"] == ("True", "TrialsRunning")
    assert w.reasons() == ["TrialStarted", "TrialStarted"]
    assert json.loads((w.folder / "study.json").read_text())["metadata"] == {
        "name": "hpo", "namespace": "default"
    }  # fmt: skip
    job = w.jobs["hpo-t1"]
    kubernetes_validate.validate({k: v for k, v in job.items() if k != "status"}, "1.30")
    folder = w.folder.as_uri()
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "stevie_trainer", "trial"]
    assert container["args"] == [
        "--study-spec", f"{folder}/study.json", "--storage", f"{folder}/optuna.journal",
        "--trial-number", "1", "--out", f"{folder}/hpo-t1",
    ]  # fmt: skip
    assert job["metadata"]["labels"]["stevie.dev/kind"] == "HPOStudy"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "HPOStudy"
    again = w.step()
    assert again.children == () and again.status_patch == {} and w.reasons() == []


def test_failed_job_marks_the_trial_failed_and_replaces_it_up_to_the_limit(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.step()
    w.reasons()
    w.jobs["hpo-t0"]["status"] = dict(FAILED)
    plan = w.step()
    trial = w.optuna().trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "backoff limit" in trial.user_attrs["error"]
    assert sorted(w.jobs) == ["hpo-t0", "hpo-t1", "hpo-t2"]  # the replacement
    assert plan.status["trials"]["failed"] == 1 and plan.phase == "Running"
    assert w.reasons() == ["TrialStarted", "TrialFailed"]

    # A second failure is one more than maxFailedTrials (1): the study fails, no replacement.
    w.jobs["hpo-t2"]["status"] = dict(FAILED)
    plan = w.step()
    assert plan.phase == "Failed" and "hpo-t3" not in w.jobs
    assert conditions(plan)["Failed"] == ("True", "TooManyFailedTrials")
    assert "2 trials failed, more than maxFailedTrials (1)" in plan.status["message"]
    assert w.reasons() == ["TrialFailed", "StudyFailed"]
    assert plan.status["completionTime"] == "2025-01-01T00:02:00Z"


def test_a_job_that_succeeded_without_telling_the_study_fails_its_trial(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.step()
    w.jobs["hpo-t0"]["status"] = dict(DONE)  # but the trial is still RUNNING
    w.step()
    assert "without reporting" in w.optuna().trials[0].user_attrs["error"]


def test_restart_recreates_missing_jobs_and_never_duplicates(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    del w.jobs["hpo-t1"]  # the operator died between asking and creating (or it was deleted)
    w.reasons()
    w.storages = hpo_study.StudyStorages()  # a new operator process
    plan = w.step()
    assert [child.name for child in plan.children] == ["hpo-t1"]
    assert len(w.optuna().trials) == 2 and w.reasons() == ["TrialStarted"]
    assert w.step().children == ()


def test_parallelism_and_max_trials_edits_apply_on_the_next_reconcile(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    w.res["spec"]["parallelism"] = 3
    w.res["metadata"]["generation"] = 2
    plan = w.step()
    assert sorted(w.jobs) == ["hpo-t0", "hpo-t1", "hpo-t2"]
    assert plan.status["observedGeneration"] == 2
    w.res["spec"]["maxTrials"] = 3
    w.tell(0, 0.5)
    w.step()
    assert len(w.optuna().trials) == 3  # three asked in total: no more
    w.tell(1, 0.7)
    w.tell(2, 0.1)
    plan = w.step()
    assert plan.status["trials"]["completed"] == 3
    assert [child.name for child in plan.children] == ["hpo-finish-3"]


def test_finish_job_then_succeeded_with_outputs_and_events(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    w.reasons()
    w.tell(0, 0.4)
    plan = w.step()
    assert plan.status["bestTrial"] == 0 and plan.status["bestParams"].keys() == {
        "learning_rate", "gamma"
    }  # fmt: skip
    assert w.reasons() == ["TrialStarted", "NewBestTrial"]
    for number, value in ((1, 0.9), (2, 0.2), (3, 0.3)):
        w.step()
        w.tell(number, value)
    plan = w.step()
    assert plan.phase == "Running" and conditions(plan)["Progressing"] == ("True", "Finishing")
    finish = w.jobs["hpo-finish-4"]
    container = finish["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "hpo-finish"
    assert container["args"][-2:] == ["--out", w.folder.as_uri()]
    assert "Finishing" in w.reasons()

    sig = {"best_mean": 0.8, "default_mean": 0.1, "p_value": 0.01, "ci_low": 0.2, "ci_high": 1.1,
           "significant": True, "sentence": "best vs default: significant"}  # fmt: skip
    (w.folder / "significance").mkdir()
    (w.folder / "significance" / "significance.json").write_text(json.dumps(sig))
    (w.folder / "optimization_results.json").write_text("{}")
    (w.folder / "optimization_report.txt").write_text("report")
    notes = ["DSR of trial 1 among 4 tried", "PBO not computed: 0 trial(s) stored"]
    luck = {"trials": 4, "deflated_sharpe": {"dsr": 0.31}, "pbo": None, "notes": notes}
    (w.folder / "overfitting.json").write_text(json.dumps(luck))
    w.jobs["hpo-finish-4"]["status"] = dict(DONE)
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.finished
    status = plan.status
    assert status["overfitting"] == {
        "deflatedSharpe": 0.31, "trials": 4,  # no PBO: null fields are left out
        "note": "DSR of trial 1 among 4 tried; PBO not computed: 0 trial(s) stored",
    }  # fmt: skip
    assert status["bestTrial"] == 1 and status["bestValue"] == 0.9
    assert [t["number"] for t in status["top"]] == [1, 0, 3, 2]
    assert status["significance"]["significant"] is True
    assert status["resultsUri"] == (w.folder / "optimization_results.json").as_uri()
    assert status["reportUri"] == (w.folder / "optimization_report.txt").as_uri()
    assert status["completionTime"] == "2025-01-01T02:00:00Z"
    assert "best vs default: significant" in status["message"]
    assert conditions(plan) == {
        "Ready": ("True", "StudySucceeded"),
        "Progressing": ("False", "StudySucceeded"),
        "Degraded": ("False", "AsExpected"),
        "Succeeded": ("True", "StudySucceeded"),
        "Failed": ("False", "StudySucceeded"),
    }
    assert w.reasons() == ["StudySucceeded"]
    del w.jobs["hpo-finish-4"]  # cleaned up: the study stays Succeeded, no new Job
    plan = w.step()
    assert plan.children == () and plan.status_patch == {} and w.reasons() == []


def test_multi_objective_status(tmp_path: Path) -> None:
    objectives = [
        {"metric": "validation.sharpe", "direction": "maximize"},
        {"metric": "validation.max_drawdown", "direction": "minimize"},
    ]
    w = World(tmp_path, objectives=objectives, sampler="nsga2")
    w.step()
    w.tell(0, 1.0, 0.3)
    w.tell(1, 0.5, 0.1)
    plan = w.step()
    assert plan.status["paretoFrontSize"] == 2
    assert plan.status["bestValues"] == [1.0, 0.3] and plan.status["bestTrial"] == 0
    assert [t["values"] for t in plan.status["top"]] == [[1.0, 0.3], [0.5, 0.1]]


def test_storage_and_spec_problems_are_statuses(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.res["spec"]["template"]["storage"] = {"uri": "s3://bucket/stevie"}
    plan = reconcile_hpo_study(w.res, Observed(now=T0), w.config)
    assert plan.phase == "Failed" and conditions(plan)["Failed"] == ("True", "InvalidSpec")
    assert "s3:// cannot hold it" in plan.status["message"] and plan.children == ()
    assert [e.reason for e in plan.events] == ["InvalidSpec"]
    w.res["spec"]["storage"] = {"urlSecretRef": "pg"}  # an RDB: fine on S3
    plan = reconcile_hpo_study(w.res, Observed(now=T0), w.config)
    assert plan.phase == "Pending"

    bad = World(tmp_path)
    bad.res["spec"]["maxTrials"] = 0
    plan = reconcile_hpo_study(bad.res, Observed(now=T0), bad.config)
    assert plan.phase == "Failed" and "spec.maxTrials" in plan.status["message"]


def test_another_search_space_is_degraded_not_a_crash(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    w.res["spec"]["searchSpace"] = {"gamma": {"type": "float", "low": 0.9, "high": 0.99}}
    with pytest.raises(StudyConflictError):
        hpo_study.observe(w.storages, w.study(), w.location)
    problem = StudyProblem("StudyConflict", "study 'hpo' already exists with another space")
    plan = reconcile_hpo_study(w.res, Observed(now=T0, problem=problem), w.config)
    assert plan.phase == "Running" and plan.children == () and not plan.work
    assert conditions(plan)["Degraded"] == ("True", "StudyConflict")
    assert conditions(plan)["Progressing"] == ("False", "StudyConflict")
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "StudyConflict")]


def test_rdb_storage_reaches_pods_through_a_secret_never_in_args(tmp_path: Path) -> None:
    w = World(tmp_path, storage={"urlSecretRef": "pg", "urlSecretKey": "dsn"})
    job = trial_job(w.study(), "default", 3, w.config)
    kubernetes_validate.validate(job, "1.30", strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "--storage" not in container["args"]
    assert container["env"][0] == {
        "name": "STEVIE_HPO_STORAGE",
        "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
    }
    assert job["metadata"]["name"] == "hpo-t3"


def test_long_study_names_give_valid_distinct_job_names(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.res["metadata"]["name"] = "a-rather-long-hyperparameter-study-name." + "x" * 60
    study = w.study()
    names = {trial_job(study, "default", n, w.config)["metadata"]["name"] for n in (7, 17, 117)}
    names.add(finish_job(study, "default", 117, w.config)["metadata"]["name"])
    assert len(names) == 4
    for name in names:
        assert len(name) <= 63 and name[-1].isalnum() and name[0].isalnum()
    kubernetes_validate.validate(trial_job(study, "default", 117, w.config), "1.30", strict=True)


def test_a_trial_whose_pod_cannot_start_degrades_the_study_once(tmp_path: Path) -> None:
    """The controller attaches what the pods say to each Job (children.with_pods): a trial's
    ImagePullBackOff is the study's Degraded, one Warning, gone once the pod runs."""
    w = World(tmp_path)
    w.step()
    w.reasons()
    pulling = 'pod hpo-t1-x7k2p: Back-off pulling image "trainer:0.1"'
    w.jobs["hpo-t1"] = with_pods(
        {**w.jobs["hpo-t1"], "status": {"active": 1, "ready": 0}},
        PodReport(pods=1, problem=("ImagePullBackOff", pulling)),
    )
    plan = w.step()
    assert plan.phase == "Running"
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ImagePullBackOff")
    assert degraded["message"] == f"Job hpo-t1: {pulling}"
    assert w.reasons() == ["ImagePullBackOff"]
    assert w.step().status_patch == {} and w.reasons() == []  # one Event per transition
    w.jobs["hpo-t1"] = with_pods(w.jobs["hpo-t1"], PodReport(pods=1, running=True))
    assert conditions(w.step())["Degraded"] == ("False", "AsExpected")
