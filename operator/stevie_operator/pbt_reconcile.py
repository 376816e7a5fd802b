"""The PBTPopulation reconciler: a pure function (resource + observed world -> plan).

The population's state lives in storage (``population.json``, see :mod:`pbt_control`); the
status is a summary of it. Each reconcile: interval Jobs that ended become outcomes
(result.json read by the caller), the controller step decides exploits and launches, the new
state is returned to be SAVED BEFORE the planned Jobs are created, and running members whose
Job is missing (an operator that crashed between saving and creating) get it created again:
Job names are deterministic, so that is idempotent. When every member is done, one finish
Job writes pbt_summary.json, plots and the best member's test backtest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from stevie_api.pbt import PBTPopulation, PBTPopulationStatus
from stevie_api.training import JobPhase
from stevie_operator.config import OperatorConfig
from stevie_operator.jobs import fit_name
from stevie_operator.pbt_control import (
    SPEC_NAME,
    Outcome,
    apply_outcome,
    decide,
    finish_args,
    interval_args,
    interval_uri,
    population_status,
)
from stevie_operator.reconcile import job_outcome, parse_resource
from stevie_operator.status import Event, merge_patch, parse_time, phase_conditions, set_conditions
from stevie_trainer.common import storage
from stevie_trainer.pbt.evolution import new_population
from stevie_trainer.pbt.state import Population, running_actions

__all__ = [
    "ChildJob",
    "PBTObserved",
    "PBTPlan",
    "finish_job_name",
    "population_dir",
    "reconcile_pbt",
    "spec_document",
]


@dataclass(frozen=True)
class ChildJob:
    """A Job to create: ``python -m stevie_trainer <args>`` named ``name``."""

    name: str
    args: list[str]
    out: str
    member: int | None = None
    interval: int | None = None


@dataclass(frozen=True)
class PBTObserved:
    """What the caller read: state, spec document and summary from storage, the population's
    Jobs by name, and the result.json of each running member's interval."""

    now: datetime
    state: tuple[Population, dict[str, float]] | None = None
    stored_spec: Mapping[str, Any] | None = None
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    results: Mapping[tuple[int, int], Mapping[str, Any]] = field(default_factory=dict)
    summary: Mapping[str, Any] | None = None


@dataclass
class PBTPlan:
    """What to do, in this order: write the spec document, save the state, create the Jobs,
    patch the status, post the Events."""

    status: dict[str, Any]
    status_patch: dict[str, Any]
    phase: JobPhase
    events: list[Event] = field(default_factory=list)
    jobs: list[ChildJob] = field(default_factory=list)
    state: tuple[Population, dict[str, float]] | None = None
    write_spec: dict[str, Any] | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    pop_dir: str | None = None


def population_dir(pop: PBTPopulation, namespace: str, config: OperatorConfig) -> str:
    """``<storage root>/<namespace>/pbtpopulations/<name>``."""
    root = pop.spec.template.storage.uri or config.storage_uri
    return storage.join(root, namespace, "pbtpopulations", pop.metadata.name)


def finish_job_name(name: str) -> str:
    """The deterministic name of the population's finish Job."""
    return fit_name(name, "-finish")


def spec_document(pop: PBTPopulation) -> dict[str, Any]:
    """What the trainer pods read as --population-spec (the resource without status)."""
    doc = pop.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc.pop("status", None)
    return doc


def _frozen(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec fields a running population cannot change (parallelism may change)."""
    return {k: v for k, v in spec.items() if k != "parallelism"}


def _seconds(job: Mapping[str, Any]) -> float | None:
    status = job.get("status") or {}
    start = parse_time(status.get("startTime"))
    end = parse_time(status.get("completionTime"))
    if start is None:
        return None
    _, _, _, failed_at = job_outcome(job)
    end = end or failed_at
    return None if end is None else max(0.0, (end - start).total_seconds())


def _outcomes(population: Population, observed: PBTObserved) -> tuple[list[Outcome], set[str]]:
    """Ended interval Jobs as outcomes; the names of running members' Jobs that exist."""
    found, alive = [], set()
    for action in running_actions(population):
        assert action.name is not None and action.member is not None
        assert action.interval is not None
        job = observed.jobs.get(action.name)
        if job is None:
            continue
        alive.add(action.name)
        phase, _, message, _ = job_outcome(job)
        if phase in ("Succeeded", "Failed"):
            result = observed.results.get((action.member, action.interval))
            found.append(
                Outcome(
                    name=action.name,
                    member=action.member,
                    interval=action.interval,
                    succeeded=phase == "Succeeded",
                    result=dict(result) if result is not None else None,
                    message=message,
                    seconds=_seconds(job),
                )
            )
    return found, alive


def reconcile_pbt(
    resource: Mapping[str, Any], observed: PBTObserved, config: OperatorConfig
) -> PBTPlan:
    """Plan for one PBTPopulation. Never raises on an invalid spec (Failed/InvalidSpec)."""
    meta = resource.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
    old_raw = resource.get("status") if isinstance(resource.get("status"), Mapping) else {}
    assert isinstance(old_raw, Mapping)
    old = PBTPopulationStatus.model_validate(dict(old_raw))
    pop = parse_resource(resource, PBTPopulation)
    if isinstance(pop, list):
        return _finish_plan(
            old_raw, old, "Failed", "InvalidSpec", "; ".join(pop), observed, generation
        )
    spec = pop.spec
    pop_dir = population_dir(pop, namespace, config)
    doc = spec_document(pop)
    write_spec = None
    if observed.stored_spec is None or observed.stored_spec.get("spec") != doc["spec"]:
        theirs = (observed.stored_spec or {}).get("spec")
        if isinstance(theirs, Mapping) and _frozen(theirs) != _frozen(doc["spec"]):
            message = (
                "the spec changed after the population started (only spec.parallelism may "
                f"change); delete and re-create it to start over. State: {pop_dir}"
            )
            keep = old.phase or "Running"
            change = ("SpecChanged", message)
            return _finish_plan(old_raw, old, keep, *change, observed, generation, degraded=change)
        write_spec = doc
    if observed.state is None:
        rng = np.random.default_rng([spec.template.seed, spec.population_size])
        population = new_population(pop.metadata.name, spec, rng)
        seconds: dict[str, float] = {}
    else:
        population, seconds = observed.state
    outcomes, alive = _outcomes(population, observed)
    events: list[Event] = []
    for outcome in outcomes:
        events += apply_outcome(population, spec, outcome, seconds)
    actions, decided = decide(population, spec)
    events += decided
    spec_uri = storage.join(pop_dir, SPEC_NAME)
    jobs: list[ChildJob] = []
    final = None
    for action in [*actions, *running_actions(population)]:
        if action.kind != "launch":
            final = action.kind
            continue
        assert action.name is not None and action.member is not None
        assert action.interval is not None
        if action.name in alive or any(j.name == action.name for j in jobs):
            continue
        args = interval_args(spec_uri, pop_dir, action)
        out = interval_uri(pop_dir, action.member, action.interval)
        jobs.append(ChildJob(action.name, args, out, action.member, action.interval))
    status = population_status(population, None, start_time=old.start_time or observed.now)
    phase: JobPhase = "Pending" if status.phase == "Pending" else "Running"
    reason, message = (
        "Training",
        _describe(population, spec.population_size * spec.stopping.max_intervals),
    )
    degraded = None
    if final is not None:
        phase, reason, message, degraded, job = _final(
            pop, population, final, observed, spec_uri, pop_dir
        )
        if job is not None:
            jobs.append(job)
        if phase in ("Succeeded", "Failed"):
            summary = dict(observed.summary) if observed.summary else None
            if summary is not None:
                summary.setdefault("uri", storage.join(pop_dir, "pbt_summary.json"))
            status = population_status(population, summary, start_time=status.start_time)
            status.completion_time = old.completion_time or observed.now
    status.phase = phase
    status.message = message
    status.conditions = old.conditions
    set_conditions(
        status, phase_conditions(phase, reason, message, degraded), generation, observed.now
    )
    status.observed_generation = generation
    if phase != old.phase and phase in ("Succeeded", "Failed"):
        ok = phase == "Succeeded"
        events.append(
            Event("Normal" if ok else "Warning", "PopulationSucceeded" if ok else reason, message)
        )
    new = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return PBTPlan(
        status=new,
        status_patch=merge_patch(old_raw, new),
        phase=phase,
        events=events,
        jobs=jobs,
        state=(population, seconds),
        write_spec=write_spec,
        outcomes=outcomes,
        pop_dir=pop_dir,
    )


def _describe(population: Population, target: int) -> str:
    running = sum(m.status == "running" for m in population.members)
    best = max((f for m in population.members for f in m.fitness_history), default=None)
    return (
        f"{population.intervals_completed}/{target} intervals, {running} running, "
        f"{population.exploits} exploits, best fitness "
        + ("n/a" if best is None else f"{best:.4f}")
    )


def _final(
    pop: PBTPopulation,
    population: Population,
    final: str,
    observed: PBTObserved,
    spec_uri: str,
    pop_dir: str,
) -> tuple[JobPhase, str, str, tuple[str, str] | None, ChildJob | None]:
    """Phase once every member is done or failed: the finish Job, then Succeeded."""
    target = pop.spec.population_size * pop.spec.stopping.max_intervals
    message = _describe(population, target)
    if final == "fail" or population.intervals_completed == 0:
        return "Failed", "AllMembersFailed", f"every member failed; {message}", None, None
    name = finish_job_name(pop.metadata.name)
    job = observed.jobs.get(name)
    if job is None:
        return (
            "Running",
            "Finishing",
            f"writing the summary; {message}",
            None,
            ChildJob(name, finish_args(spec_uri, pop_dir), pop_dir),
        )
    phase, _, job_message, _ = job_outcome(job)
    if phase == "Succeeded" and observed.summary is not None:
        best = observed.summary.get("best") or {}
        test = (best.get("test") or {}).get("best member") or {}
        sharpe = test.get("sharpe")
        note = "n/a" if sharpe is None else f"{sharpe:.2f}"
        return (
            "Succeeded",
            "PopulationSucceeded",
            (f"{message}; best member {best.get('member')} test Sharpe {note}"),
            None,
            None,
        )
    if phase == "Succeeded":
        why = f"Job {name} succeeded but pbt_summary.json could not be read"
        return "Succeeded", "PopulationSucceeded", message, ("SummaryUnavailable", why), None
    if phase == "Failed":
        return "Succeeded", "PopulationSucceeded", message, ("FinishFailed", job_message), None
    return "Running", "Finishing", f"writing the summary; {message}", None, None


def _finish_plan(
    old_raw: Mapping[str, Any],
    old: PBTPopulationStatus,
    phase: JobPhase,
    reason: str,
    message: str,
    observed: PBTObserved,
    generation: int | None,
    degraded: tuple[str, str] | None = None,
) -> PBTPlan:
    """A plan that only writes the status (invalid or changed spec)."""
    status = old.model_copy(deep=True)
    status.phase, status.message = phase, message
    status.observed_generation = generation
    set_conditions(
        status, phase_conditions(phase, reason, message, degraded), generation, observed.now
    )
    new = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    events = []
    changed = old.message != message
    if changed:
        events.append(Event("Warning", reason, message))
    return PBTPlan(status=new, status_patch=merge_patch(old_raw, new), phase=phase, events=events)
