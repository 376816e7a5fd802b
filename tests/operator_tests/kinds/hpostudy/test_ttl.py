"""Finished HPOStudy Jobs that disappear (``ttlSecondsAfterFinished``) are never run again:
a trial told to Optuna is done; a recorded report, or a recorded failure of the finish, stands.
Driven like the controller drives it, against a real Optuna JournalStorage in tmp_path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from stevie_api.hpo import HPOStudy
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import validate
from stevie_operator.kinds.hpostudy import study as hpo_study
from stevie_operator.kinds.hpostudy.children import journal_location
from stevie_operator.kinds.hpostudy.reconcile import Observed, StudyChanges, reconcile_hpo_study
from stevie_trainer.hpo.study import open_storage
from support import specs
from support.jobs import done, failed

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FINISH = "hpo-finish-2"


class World:
    """One HPOStudy (2 trials), its Jobs, its study; every Job ever created is remembered."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = OperatorConfig(storage_uri=(tmp_path / "data").as_uri())
        self.folder = tmp_path / "data" / "default" / "hpostudies" / "hpo"
        spec = copy.deepcopy(specs.hpo_study(maxTrials=2)["spec"])
        self.res: dict[str, Any] = {"apiVersion": "stevie.dev/v1alpha1", "kind": "HPOStudy",
                                    "metadata": {"name": "hpo", "namespace": "default",
                                                 "uid": "u1", "generation": 1},
                                    "spec": spec}  # fmt: skip
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.storages = hpo_study.StudyStorages()

    def study(self) -> HPOStudy:
        study = validate(self.res, HPOStudy)
        assert not isinstance(study, list), study
        return study

    @property
    def location(self) -> str:
        location = journal_location(self.study(), "default", self.config)
        assert location is not None
        return location

    def observed(self) -> Observed:
        hpo_study.write_spec(self.folder.as_uri(), self.study())
        view = hpo_study.observe(self.storages, self.study(), self.location)
        outputs = hpo_study.read_outputs(self.folder.as_uri(), self.study().spec)
        return Observed(now=T0, jobs=copy.deepcopy(self.jobs), view=view, outputs=outputs)

    def step(self) -> Plan[StudyChanges]:
        plan = reconcile_hpo_study(self.res, self.observed(), self.config)
        while plan.work:
            hpo_study.apply(self.storages, self.study(), self.location, *_work(plan))
            plan = reconcile_hpo_study(self.res, self.observed(), self.config)
        for child in plan.children:
            self.jobs[child.name] = {**child.manifest, "status": {}}
            self.created.append(child.name)
        self.res["status"] = plan.status
        return plan

    def trials_done_and_gone(self) -> None:
        """Each worker tells the study, exits 0, and its Job is deleted."""
        study = optuna.load_study(study_name="hpo", storage=open_storage(self.location))
        for number in (0, 1):
            study.tell(number, [0.5 + number])
            del self.jobs[f"hpo-t{number}"]

    def write_outputs(self) -> None:
        sig = {"best_mean": 0.8, "default_mean": 0.1, "p_value": 0.01, "ci_low": 0.2,
               "ci_high": 1.1, "significant": True, "sentence": "significant"}  # fmt: skip
        (self.folder / "significance").mkdir()
        (self.folder / "significance" / "significance.json").write_text(json.dumps(sig))
        (self.folder / "optimization_results.json").write_text("{}")
        (self.folder / "optimization_report.txt").write_text("report")


def _work(plan: Plan[StudyChanges]) -> tuple[Any, int]:
    assert plan.work is not None
    return plan.work.fail, plan.work.ask


def test_trials_told_to_the_study_are_not_run_again_when_their_jobs_go(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    w.trials_done_and_gone()
    plan = w.step()
    assert plan.status["trials"]["completed"] == 2
    assert [c.name for c in plan.children] == [FINISH]
    assert w.created == ["hpo-t0", "hpo-t1", FINISH]


def test_a_failed_finish_whose_job_is_gone_is_not_run_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    w.trials_done_and_gone()
    w.step()
    w.jobs[FINISH]["status"] = failed(pods=4)
    plan = w.step()
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert plan.phase == "Succeeded" and degraded["reason"] == "ReportFailed"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}
    assert w.created.count(FINISH) == 1


def test_a_reported_study_whose_finish_job_is_gone_stays_succeeded(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    w.trials_done_and_gone()
    w.step()
    w.write_outputs()
    w.jobs[FINISH]["status"] = done()
    assert w.step().phase == "Succeeded"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}
