"""A pure-reconciler harness of one PBTPopulation: its storage (state, spec, interval
results, summary) and Jobs as the controller would read them (the reconcile and TTL tests of
tests/operator_tests/kinds/pbtpopulation)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.kinds.pbtpopulation.reconcile import Observed, PopulationWork, reconcile_pbt
from stevie_trainer.pbt.state import Population
from support.specs import pbt_population

__all__ = ["CONFIG", "FAILED", "T0", "World", "args", "done", "interval", "member", "resource"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = OperatorConfig(storage_uri="file:///data")


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
