"""Finished PBT Jobs that disappear (``ttlSecondsAfterFinished``) are never run again: an
interval's result.json is its outcome, and a finished population keeps its status."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.kinds.pbtpopulation.children import finish_job_name
from stevie_operator.kinds.pbtpopulation.reconcile import Observed, PopulationWork, reconcile_pbt
from stevie_trainer.pbt.state import Population
from support.jobs import done, failed
from support.specs import pbt_population

CONFIG = OperatorConfig(storage_uri="file:///data")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FINISH = finish_job_name("pop")


class World:
    """The population's storage and Jobs; every Job ever created is remembered."""

    def __init__(self) -> None:
        self.res = pbt_population("pop", populationSize=2, stopping={"maxIntervals": 2})
        self.res["metadata"] |= {"namespace": "ns", "uid": "u1", "generation": 1}
        self.state: tuple[Population, dict[str, float]] | None = None
        self.spec: dict[str, Any] | None = None
        self.jobs: dict[str, dict[str, Any]] = {}
        self.results: dict[tuple[int, int], dict[str, Any]] = {}
        self.summary: dict[str, Any] | None = None
        self.created: list[str] = []

    def step(self) -> Plan[PopulationWork]:
        observed = Observed(now=T0, state=copy.deepcopy(self.state), stored_spec=self.spec,
                            jobs=self.jobs, results=self.results, summary=self.summary)  # fmt: skip
        plan = reconcile_pbt(self.res, observed, CONFIG)
        if plan.work is not None:
            self.spec = plan.work.write_spec or self.spec
            self.state = plan.work.state
        for child in plan.children:
            self.jobs[child.name] = {**child.manifest, "status": {"active": 1}}
            self.created.append(child.name)
        self.res["status"] = plan.status
        return plan

    def finish_and_vanish(self, name: str) -> None:
        """The interval writes result.json and exits 0; its Job is deleted before the
        operator sees it complete."""
        labels = self.jobs.pop(name)["metadata"]["labels"]
        m, i = int(labels["stevie.dev/member"]), int(labels["stevie.dev/interval"])
        self.results[(m, i)] = {"status": "succeeded", "fitness": 0.1 * m, "checkpoint": name}

    def running(self) -> list[str]:
        return [n for n, j in self.jobs.items() if j["status"].get("active") and n != FINISH]


def _to_finish(w: World) -> None:
    for _ in range(10):
        for name in w.running():
            w.finish_and_vanish(name)
        w.step()
        if FINISH in w.jobs:
            return
    raise AssertionError("the population never reached its finish Job")


def test_intervals_whose_jobs_vanished_count_once_and_never_run_again() -> None:
    w = World()
    w.step()
    first = w.running()
    _to_finish(w)
    assert w.state is not None and w.state[0].intervals_completed == 4
    assert len(w.created) == len(set(w.created)) == 5  # 4 intervals + finish, none twice
    assert not set(first) & set(w.running())


def test_a_succeeded_population_whose_finish_job_is_gone_creates_nothing() -> None:
    w = World()
    w.step()
    _to_finish(w)
    w.jobs[FINISH]["status"] = done()
    w.summary = {"best": {"member": 1, "test": {"best member": {"sharpe": 1.0}}}}
    assert w.step().phase == "Succeeded"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}


def test_a_finish_job_gone_before_its_success_was_recorded_is_read_from_the_summary() -> None:
    w = World()
    w.step()
    _to_finish(w)
    del w.jobs[FINISH]
    w.summary = {"best": {"member": 1, "test": {"best member": {"sharpe": 1.0}}}}
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == ()
    assert "test Sharpe 1.00" in plan.status["message"]


def test_a_failed_finish_whose_job_is_gone_is_not_run_again() -> None:
    w = World()
    w.step()
    _to_finish(w)
    w.jobs[FINISH]["status"] = failed(pods=4)
    plan = w.step()
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert plan.phase == "Succeeded" and degraded["reason"] == "FinishFailed"
    del w.jobs[FINISH]
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == () and plan.status_patch == {}
