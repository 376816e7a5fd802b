"""The PBTPopulation reconciler, pure: a simulated cluster of Jobs and interval results."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.status import Event
from stevie_operator.kinds.pbtpopulation.children import finish_job_name
from stevie_operator.kinds.pbtpopulation.reconcile import Observed, PopulationWork, reconcile_pbt
from stevie_trainer.pbt.state import Population
from support.specs import pbt_population

CONFIG = OperatorConfig(storage_uri="file:///data")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def resource(**overrides: Any) -> dict[str, Any]:
    doc = pbt_population("pop", **overrides)
    doc["metadata"] |= {"namespace": "ns", "uid": "u1", "generation": 1}
    return doc


def done(seconds: float = 10.0) -> dict[str, Any]:
    end = T0 + timedelta(seconds=seconds)
    return {"status": {"succeeded": 1, "startTime": T0.isoformat(),
                       "completionTime": end.isoformat(),
                       "conditions": [{"type": "Complete", "status": "True"}]}}  # fmt: skip


FAILED_CONDITION = {"type": "Failed", "status": "True", "reason": "BackoffLimit", "message": "oom"}
FAILED = {"status": {"failed": 1, "startTime": T0.isoformat(), "conditions": [FAILED_CONDITION]}}


class World:
    """Storage (state, spec, results, summary) and Jobs as the controller would read them."""

    def __init__(self, res: dict[str, Any]) -> None:
        self.res = res
        self.state: tuple[Population, dict[str, float]] | None = None
        self.spec: dict[str, Any] | None = None
        self.jobs: dict[str, dict[str, Any]] = {}
        self.results: dict[tuple[int, int], dict[str, Any]] = {}
        self.summary: dict[str, Any] | None = None
        self.created: list[str] = []

    def step(self) -> Plan[PopulationWork]:
        observed = Observed(
            now=T0,
            state=copy.deepcopy(self.state),
            stored_spec=self.spec,
            jobs=self.jobs,
            results=self.results,
            summary=self.summary,
        )
        plan = reconcile_pbt(self.res, observed, CONFIG)
        if plan.work is not None:  # persisted before the Jobs exist
            self.spec = plan.work.write_spec or self.spec
            self.state = plan.work.state
        for child in plan.children:
            assert child.name not in self.jobs, f"{child.name} created twice"
            self.jobs[child.name] = {**child.manifest, "status": {"active": 1}}
            self.created.append(child.name)
        self.res["status"] = plan.status
        return plan

    def running(self) -> list[str]:
        return [n for n, j in self.jobs.items() if j["status"].get("active")]

    def finish(self, name: str, fitness: float) -> None:
        job = self.jobs[name]
        m, i = member(job), interval(job)
        out = args(job)[-1]
        self.results[(m, i)] = {"status": "succeeded", "fitness": fitness, "checkpoint": out}
        job["status"] = done()["status"]


def member(job: dict[str, Any]) -> int:
    return int(job["metadata"]["labels"]["stevie.dev/member"])


def interval(job: dict[str, Any]) -> int:
    return int(job["metadata"]["labels"]["stevie.dev/interval"])


def args(job: dict[str, Any]) -> list[str]:
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def test_parallelism_exploits_restart_and_completion() -> None:
    w = World(resource())
    plan = w.step()
    assert plan.phase == "Running" and len(w.running()) == 2  # parallelism 2
    assert w.spec is not None and w.spec["spec"]["populationSize"] == 3
    assert w.step().children == ()  # a restarted operator (same state) creates nothing again
    fitness = {0: 0.5, 1: -0.5, 2: 0.1}
    events: list[Event] = []
    for _ in range(30):
        for name in w.running():
            w.finish(name, fitness[member(w.jobs[name])])
        plan = w.step()
        events += plan.events
        assert len(w.running()) <= 2
        if finish_job_name("pop") in w.jobs:
            break
    assert w.state is not None
    pop = w.state[0]
    assert pop.intervals_completed == 9 and pop.exploits >= 1
    exploits = [e for e in events if e.reason == "Exploit"]
    assert len(exploits) == pop.exploits and "copied member 0" in exploits[0].message
    # Interval Jobs ran the trainer with the copied checkpoint as --init.
    copier = pop.events[0]
    job = next(j for n, j in w.jobs.items() if n != finish_job_name("pop")
               and member(j) == copier.member and interval(j) == copier.interval)  # fmt: skip
    assert args(job)[args(job).index("--init") + 1] == copier.checkpoint
    assert plan.phase == "Running" and plan.status["message"].startswith("writing the summary")
    assert w.state[1] == {n: 10.0 for n in w.created if n != finish_job_name("pop")}
    # The finish Job succeeds and pbt_summary.json appears: Succeeded with the test metrics.
    w.jobs[finish_job_name("pop")]["status"] = done()["status"]
    w.summary = {"best": {"member": 0, "model": "file:///data/ns/pbtpopulations/pop/best/model.zip",
                          "test": {"best member": {"sharpe": 1.25, "trades": 3}}}}  # fmt: skip
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.children == ()
    assert [e.reason for e in plan.events] == ["PopulationSucceeded"]
    status = plan.status
    assert status["intervalsCompleted"] == 9 and status["bestMember"] == 0
    assert status["test"]["sharpe"] == 1.25 and len(status["top"]) == 3
    assert status["summaryUri"].endswith("pop/pbt_summary.json")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Succeeded"] == "True"
    assert w.step().events == ()  # one Event per transition


def test_a_failed_interval_job_is_retried_under_a_new_name_then_the_member_fails() -> None:
    w = World(resource(maxIntervalRetries=1))
    w.step()
    first = w.running()[0]
    w.jobs[first] = {**w.jobs[first], **FAILED}
    plan = w.step()
    assert [e.reason for e in plan.events] == ["IntervalRetried"]
    retry = [c.name for c in plan.children]
    assert retry == [first + "-r1"]
    w.jobs[retry[0]] = {**w.jobs[retry[0]], **FAILED}
    plan = w.step()
    assert [e.reason for e in plan.events] == ["MemberFailed"]
    assert plan.status["membersFailed"] == 1


def test_a_missing_job_of_a_running_member_is_created_again() -> None:
    w = World(resource())
    w.step()
    lost = w.running()[0]
    del w.jobs[lost]  # e.g. created after the state was saved, then the operator crashed
    plan = w.step()
    assert [c.name for c in plan.children] == [lost]


def test_invalid_spec_and_changed_spec_are_reported_not_raised() -> None:
    bad = resource(populationSize=1)
    plan = reconcile_pbt(bad, Observed(now=T0), CONFIG)
    assert plan.phase == "Failed" and "spec.populationSize" in plan.status["message"]
    assert plan.children == () and plan.work is None

    w = World(resource())
    w.step()
    w.res["spec"]["parallelism"] = 3  # allowed: one more Job at once
    plan = w.step()
    assert len(plan.children) == 1 and len(w.running()) == 3
    w.res["spec"]["perturbationInterval"] = 999
    plan = w.step()
    assert plan.children == () and plan.work is None
    degraded = {c["type"]: c for c in plan.status["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "SpecChanged"
