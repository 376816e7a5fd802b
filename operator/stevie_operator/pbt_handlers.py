"""kopf glue for PBTPopulations: thin handlers around the pure reconciler (:mod:`.pbt_reconcile`).

Every trigger -- create, resume, a spec update, a timer while unfinished, an event of an
owned Job -- calls the same level-based :func:`reconcile`: read the resource and its Jobs,
read the population's state, spec document, interval results and summary from storage (in a
thread), plan, then act in the order that makes a crash harmless: write the spec document,
SAVE THE STATE, create the Jobs, patch the status, post the Events, update the metrics. A
crash after saving and before creating leaves running members without a Job; the next
reconcile creates them (deterministic names).

The operator reads and writes the population folder itself: a file:// storage root mounted
in the operator pod at the same path as in the trainer pods, or s3:// with credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from stevie_api import API_VERSION
from stevie_api.common import utcnow
from stevie_api.pbt import PBTPopulation
from stevie_operator.config import OperatorConfig
from stevie_operator.kube import object_path
from stevie_operator.outputs import read_json
from stevie_operator.pbt_control import (
    SPEC_NAME,
    SUMMARY_NAME,
    interval_uri,
    load_state,
    save_state,
)
from stevie_operator.pbt_jobs import KIND, child_job
from stevie_operator.pbt_reconcile import PBTObserved, PBTPlan, population_dir, reconcile_pbt
from stevie_operator.reconcile import parse_resource
from stevie_operator.runtime import Runtime, live_object, owned_jobs, post_events, register_kind
from stevie_trainer.common import storage
from stevie_trainer.pbt.state import running_actions

__all__ = ["KIND", "PLURAL", "observe", "persist", "reconcile", "register"]

PLURAL = "pbtpopulations"
logger = logging.getLogger(__name__)


def observe(
    pop: PBTPopulation,
    namespace: str,
    config: OperatorConfig,
    jobs: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> PBTObserved:
    """Everything the reconciler needs from storage (blocking: call it in a thread)."""
    folder = population_dir(pop, namespace, config)
    state = load_state(folder)
    results = {}
    for action in running_actions(state[0]) if state else []:
        assert action.member is not None and action.interval is not None
        found = read_json(
            storage.join(interval_uri(folder, action.member, action.interval), "result.json")
        )
        if found is not None:
            results[(action.member, action.interval)] = found
    return PBTObserved(
        now=now,
        state=state,
        stored_spec=read_json(storage.join(folder, SPEC_NAME)),
        jobs=jobs,
        results=results,
        summary=read_json(storage.join(folder, SUMMARY_NAME)),
    )


def persist(plan: PBTPlan) -> None:
    """Write the spec document and the state (blocking), before any Job is created."""
    if plan.pop_dir is None:
        return
    if plan.write_spec is not None:
        text = json.dumps(plan.write_spec, indent=2) + "\n"
        storage.write_text(storage.join(plan.pop_dir, SPEC_NAME), text)
    if plan.state is not None:
        save_state(plan.pop_dir, *plan.state)


async def reconcile(rt: Runtime, namespace: str, name: str) -> PBTPlan | None:
    """Reconcile one PBTPopulation from fresh reads; None if it is gone or being deleted."""
    async with rt.lock(KIND, namespace, name):
        with rt.metrics.reconciling(KIND):
            client = rt.kube()
            body = await live_object(client, PLURAL, namespace, name)
            if body is None:
                return None
            jobs_path = object_path("batch/v1", "jobs", namespace)
            jobs = await owned_jobs(client, KIND, namespace, name)
            now = utcnow()
            pop = parse_resource(body, PBTPopulation)
            if isinstance(pop, PBTPopulation):
                observed = await asyncio.to_thread(observe, pop, namespace, rt.config, jobs, now)
            else:
                observed = PBTObserved(now=now, jobs=jobs)
            plan = reconcile_pbt(body, observed, rt.config)
            await asyncio.to_thread(persist, plan)
            if isinstance(pop, PBTPopulation):
                for child in plan.jobs:
                    await client.create(jobs_path, child_job(pop, namespace, child, rt.config))
            if plan.status_patch:
                status_path = object_path(API_VERSION, PLURAL, namespace, name, "status")
                await client.merge_patch(status_path, {"status": plan.status_patch})
            post_events(body, plan.events)
            _record(rt, namespace, name, plan)
            return plan


def _record(rt: Runtime, namespace: str, name: str, plan: PBTPlan) -> None:
    rt.metrics.observe(KIND, namespace, name, plan.phase, None)
    if plan.state is None:
        return
    population = plan.state[0]
    fitness = {m.index: m.fitness for m in population.members if m.fitness is not None}
    durations = [o.seconds for o in plan.outcomes if o.seconds is not None and o.succeeded]
    exploits = sum(e.reason == "Exploit" for e in plan.events)
    rt.metrics.observe_population(
        namespace,
        name,
        fitness=fitness,
        intervals_completed=population.intervals_completed,
        new_exploits=exploits,
        interval_seconds=durations,
    )


def register(registry: kopf.OperatorRegistry, every: float) -> None:
    """Register the PBTPopulation handlers (the timer ticks every ``every`` seconds)."""

    register_kind(registry, kind=KIND, plural=PLURAL, reconcile=reconcile, every=every)
