"""The PBTPopulation reconciler: a pure function (resource + observed world -> plan).

The population's state lives in storage (``population.json``, see :mod:`.control`); the
status is a summary of it. Each reconcile: interval Jobs that ended become outcomes
(result.json read by the controller), the controller step decides exploits and launches, and
the new state is the plan's work, SAVED BEFORE the planned Jobs are created. Running members
whose Job is missing (an operator that crashed between saving and creating) get it created
again: Job names are deterministic, so that is idempotent. When every member is done, one
finish Job writes pbt_summary.json, plots and the best member's test backtest.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from stevie_api.changes import (
    IMMUTABLE_FIELD_CHANGED,
    changed_paths,
    effective,
    immutable_message,
    refused,
)
from stevie_api.pbt import PBTPopulation, PBTPopulationSpec, PBTPopulationStatus
from stevie_operator.framework.admission import refusal
from stevie_operator.framework.children import (
    first_problem,
    job_outcome,
    job_seconds,
    pod_problem,
)
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Child, Decision, Plan, conclude, transition_events
from stevie_operator.framework.resource import Subject, read_subject, spec_document
from stevie_operator.framework.status import INVALID_SPEC, TERMINAL, Event
from stevie_operator.kinds.pbtpopulation.children import (
    SUMMARY_NAME,
    finish_job,
    finish_job_name,
    interval_job,
    population_dir,
)
from stevie_operator.kinds.pbtpopulation.control import (
    Outcome,
    apply_outcome,
    decide,
    population_status,
    unpublished_exploits,
)
from stevie_trainer.common import storage
from stevie_trainer.pbt.evolution import new_population
from stevie_trainer.pbt.state import Action, Population, running_actions

__all__ = ["Observed", "PopulationWork", "reconcile_pbt"]

State = tuple[Population, dict[str, float]]
Pop = Subject[PBTPopulation, PBTPopulationStatus]


@dataclass(frozen=True)
class Observed:
    """What the controller read: state, spec document and summary from storage, the
    population's Jobs by name, and the result.json of each running member's interval."""

    now: datetime
    state: State | None = None
    stored_spec: Mapping[str, Any] | None = None
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    results: Mapping[tuple[int, int], Mapping[str, Any]] = field(default_factory=dict)
    summary: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PopulationWork:
    """What persist writes before any Job is created: the spec document (if new or changed
    where allowed) and the state; ``outcomes`` are the intervals that ended (for metrics)."""

    pop_dir: str
    state: State
    write_spec: dict[str, Any] | None = None
    outcomes: tuple[Outcome, ...] = ()


def _outcomes(population: Population, observed: Observed) -> tuple[list[Outcome], set[str]]:
    """Ended interval Jobs as outcomes; the names of running members' Jobs that exist."""
    found, alive = [], set()
    for action in running_actions(population):
        assert action.name is not None and action.member is not None
        assert action.interval is not None
        job = observed.jobs.get(action.name)
        result = observed.results.get((action.member, action.interval))
        if job is None and result is not None:
            # Finished (result.json is written last) and deleted (ttlSecondsAfterFinished)
            # before the outcome was recorded: record it; never run the interval again.
            message = f"Job {action.name} completed (deleted since; its result.json is kept)"
            found.append(Outcome(action.name, action.member, action.interval, True,
                                 dict(result), message))  # fmt: skip
            continue
        if job is None:
            continue
        alive.add(action.name)
        phase, _, message, _ = job_outcome(job)
        if phase in TERMINAL:
            found.append(
                Outcome(
                    name=action.name,
                    member=action.member,
                    interval=action.interval,
                    succeeded=phase == "Succeeded",
                    result=dict(result) if result is not None else None,
                    message=message,
                    seconds=job_seconds(job),
                )
            )
    return found, alive


def _describe(population: Population, target: int) -> str:
    running = sum(m.status == "running" for m in population.members)
    best = max((f for m in population.members for f in m.fitness_history), default=None)
    return (
        f"{population.intervals_completed}/{target} intervals, {running} running, "
        f"{population.exploits} exploits, best fitness "
        + ("n/a" if best is None else f"{best:.4f}")
    )


def _kept(before: PBTPopulationStatus, message: str) -> Decision:
    """Succeeded, and the finish Job is gone (``ttlSecondsAfterFinished``): keep the outcome
    (a failed finish is not run again)."""
    old = before.get_condition("Degraded")
    degraded = (old.reason, old.message) if old is not None and old.status == "True" else None
    return Decision("Succeeded", "PopulationSucceeded", before.message or message, degraded)


def _final(
    pop: PBTPopulation, population: Population, final: str, observed: Observed, namespace: str,
    config: OperatorConfig, before: PBTPopulationStatus,
) -> tuple[Decision, Child | None]:  # fmt: skip
    """Once every member is done or failed: the finish Job, then Succeeded."""
    target = pop.spec.population_size * pop.spec.stopping.max_intervals
    message = _describe(population, target)
    if final == "fail" or population.intervals_completed == 0:
        return Decision("Failed", "AllMembersFailed", f"every member failed; {message}"), None
    name = finish_job_name(pop.metadata.name)
    job = observed.jobs.get(name)
    writing = Decision("Running", "Finishing", f"writing the summary; {message}")
    if job is None and observed.summary is None:
        if before.phase == "Succeeded":
            return _kept(before, message), None
        return writing, Child(finish_job(pop, namespace, config))
    # A summary with no Job: it finished and was deleted before its end was recorded.
    phase, _, job_message, _ = ("Succeeded", "", "", None) if job is None else job_outcome(job)
    if phase == "Succeeded" and observed.summary is not None:
        best = observed.summary.get("best") or {}
        sharpe = ((best.get("test") or {}).get("best member") or {}).get("sharpe")
        note = "n/a" if sharpe is None else f"{sharpe:.2f}"
        text = f"{message}; best member {best.get('member')} test Sharpe {note}"
        return Decision("Succeeded", "PopulationSucceeded", text), None
    if phase == "Succeeded":
        why = f"Job {name} succeeded but pbt_summary.json could not be read"
        return Decision(
            "Succeeded", "PopulationSucceeded", message, ("SummaryUnavailable", why)
        ), None
    if phase == "Failed":
        return Decision(
            "Succeeded", "PopulationSucceeded", message, ("FinishFailed", job_message)
        ), None
    writing.degraded = pod_problem(job) if job is not None else None
    return writing, None


@dataclass(frozen=True)
class _SpecCheck:
    """What the stored spec document says about an edit: the population to run (the applied
    spec, with the edit's mutable fields), the spec document to write (new or changed where
    allowed), and the immutable paths the edit changed (refused: Degraded names them)."""

    pop: PBTPopulation
    write_spec: dict[str, Any] | None = None
    refused: tuple[str, ...] = ()
    stuck: bool = False


def _spec_check(pop: PBTPopulation, observed: Observed) -> _SpecCheck:
    """Compare the spec with the stored one, normalised (an added defaulted field is no
    change); only spec.parallelism may change once the population has started (its state
    is saved after its spec: a spec without a state never started)."""
    doc = spec_document(pop)
    stored = observed.stored_spec
    theirs = (stored or {}).get("spec")
    if not isinstance(theirs, Mapping):
        return _SpecCheck(pop, doc)
    if not changed_paths(theirs, pop.spec, PBTPopulationSpec):
        return _SpecCheck(pop)
    started = observed.state is not None
    paths = refused("PBTPopulation", theirs, pop.spec, PBTPopulationSpec) if started else []
    if not paths:
        return _SpecCheck(pop, doc)
    try:
        spec = effective("PBTPopulation", theirs, pop.spec)
    except ValidationError:  # the stored spec no longer validates: nothing to go on with
        return _SpecCheck(pop, None, tuple(paths), stuck=True)
    return _SpecCheck(pop.model_copy(update={"spec": spec}), None, tuple(paths))


def _step(
    pop: PBTPopulation, observed: Observed, published: int
) -> tuple[State, list[Outcome], set[str], list[Event], list[Action]]:
    """Apply the ended intervals to the state and decide what comes next; the Events of
    exploits saved earlier that the status (``published`` of them) never counted come first
    (:func:`~.control.unpublished_exploits`)."""
    spec = pop.spec
    seconds: dict[str, float]
    if observed.state is None:
        rng = np.random.default_rng([spec.template.seed, spec.population_size])
        population, seconds = new_population(pop.metadata.name, spec, rng), {}
    else:  # a copy: planning twice from the same observation plans the same
        population, seconds = copy.deepcopy(observed.state)
    outcomes, alive = _outcomes(population, observed)
    events = unpublished_exploits(population, published, len(population.events))
    for outcome in outcomes:
        events += apply_outcome(population, spec, outcome, seconds)
    actions, decided = decide(population, spec)
    return (population, seconds), outcomes, alive, events + decided, actions


def _population(
    sub: Pop, pop: PBTPopulation, observed: Observed, config: OperatorConfig
) -> Plan[PopulationWork]:
    pop_dir = population_dir(pop, sub.namespace, config)
    check = _spec_check(pop, observed)
    edit = None
    if check.refused:
        message = immutable_message(list(check.refused), "population")
        edit = (IMMUTABLE_FIELD_CHANGED, f"{message}. State: {pop_dir}")
    if check.stuck:
        message = (
            f"the population's stored spec ({pop_dir}/population-spec.json) no longer "
            "validates, so it cannot go on, and the spec cannot change while it exists: "
            "delete and re-create it to start over"
        )
        edit = (IMMUTABLE_FIELD_CHANGED, message)
        keep = Decision(sub.before.phase or "Running", IMMUTABLE_FIELD_CHANGED, message, edit)
        events = transition_events(sub.before, keep, succeeded="PopulationSucceeded")
        return conclude(sub, keep, observed.now, events=events, refused=True)
    pop, write_spec = check.pop, check.write_spec
    if refused_by := refusal(config, ("spec.template", pop.spec.template)):
        d = Decision("Failed", *refused_by)  # nothing saved, no Job: as for an invalid spec
        events = transition_events(sub.before, d, succeeded="PopulationSucceeded")
        return conclude(sub, d, observed.now, events=events, refused=edit is not None)
    state, outcomes, alive, events, actions = _step(pop, observed, sub.before.exploits)
    population = state[0]
    children: list[Child] = []
    final = None
    for action in [*actions, *running_actions(population)]:
        if action.kind != "launch":
            final = action.kind
        elif action.name not in alive and not any(c.name == action.name for c in children):
            children.append(Child(interval_job(pop, sub.namespace, action, config)))
    status = population_status(population, None, start_time=sub.before.start_time or observed.now)
    target = pop.spec.population_size * pop.spec.stopping.max_intervals
    d = Decision(
        "Pending" if status.phase == "Pending" else "Running",
        "Training",
        _describe(population, target),
        first_problem(observed.jobs),  # an interval's pod cannot start (ImagePullBackOff...)
    )
    if final is not None:
        d, finish = _final(pop, population, final, observed, sub.namespace, config, sub.before)
        children += [finish] if finish is not None else []
        if d.phase in TERMINAL:
            summary = dict(observed.summary) if observed.summary else None
            if summary is not None:
                summary.setdefault("uri", storage.join(pop_dir, SUMMARY_NAME))
            status = population_status(population, summary, start_time=status.start_time)
            status.completion_time = sub.before.completion_time or observed.now
    if edit is not None and d.degraded is None:  # a pod that cannot start says so first
        d.degraded = edit  # goes on with the applied spec, and says why
    events += transition_events(sub.before, d, succeeded="PopulationSucceeded")
    work = PopulationWork(pop_dir, state, write_spec, tuple(outcomes))
    return conclude(
        sub, d, observed.now, status=status, events=events, children=children, work=work,
        refused=edit is not None,
    )  # fmt: skip


def reconcile_pbt(
    body: Mapping[str, Any], observed: Observed, config: OperatorConfig
) -> Plan[PopulationWork]:
    """Plan for one PBTPopulation. Never raises on an invalid spec (Failed/InvalidSpec) or a
    stale status (fields that no longer validate are dropped)."""
    sub = read_subject(body, PBTPopulation, PBTPopulationStatus)
    if sub.resource is None:
        d = Decision("Failed", INVALID_SPEC, "; ".join(sub.problems))
        return conclude(
            sub,
            d,
            observed.now,
            events=transition_events(sub.before, d, succeeded="PopulationSucceeded"),
        )
    return _population(sub, sub.resource, observed, config)
