"""PBTPopulation, the Kind: one Job per member interval, then a finish Job.

Observing reads the population's state, spec document, interval results and summary from
storage; persisting writes the spec document and SAVES THE STATE before the planned Jobs
are created. A crash after saving and before creating leaves running members without a Job;
the next reconcile creates them (deterministic names).

The operator reads and writes the population folder itself: a file:// storage root mounted
in the operator pod at the same path as in the trainer pods, or s3:// with credentials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from stevie_api.common import utcnow
from stevie_api.kinds import KINDS, KindInfo
from stevie_api.pbt import PBTPopulation
from stevie_operator.framework.artifacts import read_json
from stevie_operator.framework.children import Owned
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import namespace_of, validate
from stevie_operator.kinds.pbtpopulation.children import (
    SPEC_NAME,
    SUMMARY_NAME,
    interval_uri,
    population_dir,
)
from stevie_operator.kinds.pbtpopulation.control import load_state, save_state
from stevie_operator.kinds.pbtpopulation.metrics import PBTPopulationMetrics
from stevie_operator.kinds.pbtpopulation.reconcile import Observed, PopulationWork, reconcile_pbt
from stevie_trainer.common import storage
from stevie_trainer.pbt.state import Population, running_actions

__all__ = ["PBTPopulationKind", "read_population"]


def _state_text(population: Population, child_seconds: dict[str, float]) -> str:
    """The document :func:`save_state` writes, as comparable text (NaN fitness included)."""
    return json.dumps(population.to_dict() | {"child_seconds": child_seconds}, sort_keys=True)


def read_population(folder: str, jobs: Mapping[str, Mapping[str, Any]], now: datetime) -> Observed:
    """Everything the reconciler needs from the population folder (blocking)."""
    state = load_state(folder)
    results = {}
    for action in running_actions(state[0]) if state else []:
        assert action.member is not None and action.interval is not None
        uri = storage.join(interval_uri(folder, action.member, action.interval), "result.json")
        found = read_json(uri)
        if found is not None:
            results[(action.member, action.interval)] = found
    return Observed(
        now=now,
        state=state,
        stored_spec=read_json(storage.join(folder, SPEC_NAME)),
        jobs=jobs,
        results=results,
        summary=read_json(storage.join(folder, SUMMARY_NAME)),
    )


class PBTPopulationKind(Kind[Observed, PopulationWork, PBTPopulationMetrics]):
    """A PBTPopulation trains members in intervals, exploiting and exploring between them."""

    info: ClassVar[KindInfo] = KINDS["PBTPopulation"]
    parallel_roles: ClassVar[frozenset[str]] = frozenset({"interval"})

    def location(self, body: Body, config: OperatorConfig) -> str | None:
        pop = validate(body, PBTPopulation)
        return None if isinstance(pop, list) else population_dir(pop, namespace_of(body), config)

    async def observe(self, ctx: Context, body: Body, owned: Owned) -> Observed:
        folder = self.location(body, ctx.config)
        if folder is None:
            return Observed(now=utcnow(), jobs=owned.jobs)
        return await ctx.blocking(read_population, folder, owned.jobs, utcnow())

    def plan(self, body: Body, observed: Observed, config: OperatorConfig) -> Plan[PopulationWork]:
        return reconcile_pbt(body, observed, config)

    def persist(self, ctx: Context, observed: Observed, plan: Plan[PopulationWork]) -> bool:
        """Write the spec document and the state, before any Job is created; the state only
        when it differs from the one just read (most reconciles -- timer ticks, the events of
        running Jobs -- change nothing, and each write is an fsync or an S3 PUT)."""
        work = plan.work
        if work is None:
            return False
        if work.write_spec is not None:
            text = json.dumps(work.write_spec, indent=2) + "\n"
            storage.write_text(storage.join(work.pop_dir, SPEC_NAME), text)
        if observed.state is None or _state_text(*observed.state) != _state_text(*work.state):
            save_state(work.pop_dir, *work.state)
        return False

    def make_metrics(self, registry: CollectorRegistry) -> PBTPopulationMetrics:
        return PBTPopulationMetrics(registry)

    def record(
        self,
        metrics: OperatorMetrics,
        own: PBTPopulationMetrics,
        namespace: str,
        name: str,
        plan: Plan[PopulationWork],
        observed: Observed,
    ) -> None:
        if plan.work is None:  # an invalid or refused spec: nothing trains
            own.stopped(namespace, name)
            return
        population = plan.work.state[0]
        fitness = {m.index: m.fitness for m in population.members if m.fitness is not None}
        outcomes = plan.work.outcomes
        durations = [o.seconds for o in outcomes if o.seconds is not None and o.succeeded]
        # Members still to train (a finishing or finished population has none).
        training = plan.phase == "Running" and any(
            m.status not in ("done", "failed") for m in population.members
        )
        own.observe(
            namespace,
            name,
            fitness=fitness,
            intervals_completed=population.intervals_completed,
            new_exploits=sum(e.reason == "Exploit" for e in plan.events),
            interval_seconds=durations,
            training=training,
        )
