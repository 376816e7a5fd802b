"""Editing a running HPOStudy, as the controller reads it (study.json, then the study) and
the reconciler plans: budget and concurrency apply, the rest is refused and the study goes
on with the spec its trials ran (Katib's rule)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stevie_api.hpo import HPOStudy
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import validate
from stevie_operator.kinds.hpostudy import study as optuna_calls
from stevie_operator.kinds.hpostudy.children import journal_location
from stevie_operator.kinds.hpostudy.controller import _read
from stevie_operator.kinds.hpostudy.reconcile import StudyChanges, reconcile_hpo_study
from stevie_operator.kinds.hpostudy.view import StudyTarget
from support import specs

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.config = OperatorConfig(storage_uri=(tmp_path / "data").as_uri())
        self.folder = tmp_path / "data" / "default" / "hpostudies" / "hpo"
        self.res = copy.deepcopy(specs.hpo_study("hpo"))
        self.res["metadata"] |= {"namespace": "default", "uid": "u1", "generation": 1}
        self.storages = optuna_calls.StudyStorages()
        self.jobs: dict[str, dict[str, Any]] = {}

    def step(self) -> Plan[StudyChanges]:
        """Observe (the controller's _read), plan, tell the study, plan again, create."""
        while True:
            study = validate(self.res, HPOStudy)
            assert not isinstance(study, list)
            location = journal_location(study, "default", self.config)
            assert location is not None
            target = StudyTarget(study, self.folder.as_uri(), location)
            observed = _read(self.storages, target, copy.deepcopy(self.jobs), T0)
            plan = reconcile_hpo_study(self.res, observed, self.config)
            if not plan.work:
                break
            assert observed.target is not None  # what persist uses
            work = plan.work
            optuna_calls.apply(self.storages, observed.target.study, location, work.fail, work.ask)
        for child in plan.children:
            self.jobs.setdefault(child.name, {**child.manifest, "status": {"active": 1}})
        self.res["status"] = plan.status
        return plan

    def stored(self) -> dict[str, Any]:
        return dict(json.loads((self.folder / "study.json").read_text())["spec"])

    def edit(self, **spec: Any) -> None:
        self.res["metadata"]["generation"] += 1
        self.res["spec"].update(spec)


def degraded(plan: Plan[StudyChanges]) -> dict[str, Any]:
    return next(c for c in plan.status["conditions"] if c["type"] == "Degraded")


def test_a_template_edit_is_refused_while_max_trials_and_parallelism_apply(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.step()
    assert sorted(w.jobs) == ["hpo-t0", "hpo-t1"]
    w.edit(template=specs.template(seed=7), parallelism=3, maxTrials=6)
    plan = w.step()
    cond = degraded(plan)
    assert (cond["status"], cond["reason"]) == ("True", "ImmutableFieldChanged")
    assert cond["message"].startswith("spec.template.seed cannot change while the study exists")
    assert plan.status["observedGeneration"] == 1 and cond["observedGeneration"] == 2
    # The trials (which read study.json) keep the template they started with; the budget
    # and concurrency of the edit apply: a third trial starts.
    stored = w.stored()
    assert stored["template"].get("seed", 0) == 0
    assert (stored["parallelism"], stored["maxTrials"]) == (3, 6)
    assert sorted(w.jobs) == ["hpo-t0", "hpo-t1", "hpo-t2"]
    # Reverting the template applies the latest generation.
    w.edit(template=specs.template())
    plan = w.step()
    assert degraded(plan)["status"] == "False" and plan.status["observedGeneration"] == 3


def test_a_search_space_edit_is_refused_naming_the_parameter(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    space = copy.deepcopy(w.res["spec"]["searchSpace"])
    space["gamma"]["high"] = 0.95
    w.edit(searchSpace=space)
    plan = w.step()
    assert plan.phase == "Running"
    assert degraded(plan)["message"].startswith("spec.searchSpace.gamma.high cannot change")
    assert w.stored()["searchSpace"]["gamma"]["high"] == 0.9999


def test_a_study_json_without_a_since_added_defaulted_field_is_no_edit(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.step()
    path = w.folder / "study.json"
    doc = json.loads(path.read_text())
    doc["spec"].pop("startupTrials")  # as an operator without that field wrote it
    doc["spec"]["template"].pop("device")
    path.write_text(json.dumps(doc))
    w.edit(sampler="tpe")  # the default, written explicitly
    plan = w.step()
    assert degraded(plan)["status"] == "False" and plan.status["observedGeneration"] == 2
