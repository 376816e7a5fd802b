"""A pure-reconciler harness of one HPOStudy: the plan -> tell the study -> plan again ->
create Jobs loop the controller runs, against a real Optuna JournalStorage in tmp_path;
workers simulated by telling the study, Jobs by dicts with a status (the reconcile and TTL
tests of tests/operator_tests/kinds/hpostudy)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna

from stevie_api.hpo import HPOStudy
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import validate
from stevie_operator.framework.status import Event
from stevie_operator.kinds.hpostudy import study as hpo_study
from stevie_operator.kinds.hpostudy.children import journal_location
from stevie_operator.kinds.hpostudy.reconcile import Observed, StudyChanges, reconcile_hpo_study
from stevie_trainer.hpo.study import open_storage
from support import specs as tiny_specs
from support.jobs import done, failed

__all__ = ["DONE", "FAILED", "SPEC", "T0", "World"]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPEC = tiny_specs.hpo_study(maxFailedTrials=1)["spec"]
FAILED = failed(pods=4)
DONE = done()


class World:
    """One HPOStudy, its Jobs (name -> manifest with a status) and its Optuna study."""

    def __init__(self, tmp_path: Path, **spec: Any) -> None:
        self.config = OperatorConfig(storage_uri=(tmp_path / "data").as_uri())
        self.folder = tmp_path / "data" / "default" / "hpostudies" / "hpo" / "u1"  # <name>/<uid>
        self.res: dict[str, Any] = {
            "apiVersion": "stevie.dev/v1alpha1",
            "kind": "HPOStudy",
            "metadata": {"name": "hpo", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": {**copy.deepcopy(SPEC), **spec},
        }
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []  # every Job ever created, in order
        self.storages = hpo_study.StudyStorages()
        self.events: list[Event] = []
        self.now = T0

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
        return Observed(now=self.now, jobs=copy.deepcopy(self.jobs), view=view, outputs=outputs)

    def step(self) -> Plan[StudyChanges]:
        """One reconcile, as the controller does it; Events of created Jobs and of the plan."""
        plan = reconcile_hpo_study(self.res, self.observed(), self.config)
        while plan.work:
            fail, ask = plan.work.fail, plan.work.ask
            hpo_study.apply(self.storages, self.study(), self.location, fail, ask)
            plan = reconcile_hpo_study(self.res, self.observed(), self.config)
        for child in plan.children:
            if child.name not in self.jobs:
                self.jobs[child.name] = {**child.manifest, "status": {}}
                self.created.append(child.name)
                assert child.event is not None
                self.events.append(child.event)
        self.events.extend(plan.events)
        self.res["status"] = plan.status
        self.now += timedelta(minutes=1)
        return plan

    def optuna(self) -> optuna.Study:
        return optuna.load_study(study_name="hpo", storage=open_storage(self.location))

    def tell(self, number: int, *values: float) -> None:
        """What a worker does at the end of its trial, then its Job succeeds."""
        self.optuna().tell(number, list(values))
        self.jobs[f"hpo-t{number}"]["status"] = dict(DONE)

    def reasons(self) -> list[str]:
        found = [e.reason for e in self.events]
        self.events.clear()
        return found
