"""The PBT controller step: the population's state in storage, and how it moves::

    state = load_state(...) or new_population(...)   # population.json in storage
    for each child that ended:  events += apply_outcome(state, spec, outcome)
    actions, events2 = decide(state, spec)            # exploit/explore, launches
    save_state(...)                                   # BEFORE acting: a crash replays
    create each launched interval's Job / the finish Job

Children are named and placed deterministically (``<pop>-m<M>-i<I>[-r<attempt>]`` under
``<pop dir>/members/m<M>/i<I>``), and decisions draw from an RNG seeded by the state's
progress, so replaying a step from the saved state makes the same decisions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stevie_api.common import MetricSummary
from stevie_api.pbt import (
    PBTMemberSummary,
    PBTOverfittingStatus,
    PBTPopulationSpec,
    PBTPopulationStatus,
)
from stevie_operator.framework.status import (
    Event,
    count,
    finite,
    metric_summary,
    notes_line,
    probability,
)
from stevie_operator.kinds.pbtpopulation.children import STATE_NAME
from stevie_trainer.common import storage
from stevie_trainer.pbt.evolution import decision_rng, next_actions, record_failure, record_result
from stevie_trainer.pbt.state import Action, LineageEvent, Population, phase, rank

__all__ = [
    "Outcome",
    "apply_outcome",
    "decide",
    "exploit_event",
    "load_state",
    "overfitting_status",
    "population_status",
    "save_state",
    "unpublished_exploits",
]

MAX_REPLAYED_EXPLOITS = 5
"""Exploit Events posted again at most when a reconcile finds unpublished ones (a status
wiped by a restore would otherwise post every exploit of a long run at once)."""


@dataclass(frozen=True)
class Outcome:
    """How one child (interval) ended, as observed by the controller."""

    name: str
    member: int
    interval: int
    succeeded: bool
    result: dict[str, Any] | None = None
    """The interval's result.json (None if missing: counted as a failure)."""
    message: str = ""
    seconds: float | None = None
    """Wall time from launch to exit (process or Job), for the overhead account."""


def load_state(pop_dir: str) -> tuple[Population, dict[str, float]] | None:
    """The saved population and the children's wall times, or None for a new population."""
    uri = storage.join(pop_dir, STATE_NAME)
    if not storage.exists(uri):
        return None
    doc = json.loads(storage.read_text(uri))
    seconds = {str(k): float(v) for k, v in (doc.get("child_seconds") or {}).items()}
    return Population.from_dict(doc), seconds


def save_state(pop_dir: str, population: Population, child_seconds: dict[str, float]) -> None:
    """Persist the state (atomically: storage writes are)."""
    doc = population.to_dict() | {"child_seconds": child_seconds}
    storage.write_text(storage.join(pop_dir, STATE_NAME), json.dumps(doc, indent=1) + "\n")


def apply_outcome(
    population: Population,
    spec: PBTPopulationSpec,
    outcome: Outcome,
    child_seconds: dict[str, float],
) -> list[Event]:
    """Record a child's end in the state (idempotent: a stale outcome changes nothing)."""
    if outcome.seconds is not None:
        child_seconds[outcome.name] = round(outcome.seconds, 3)
    m, i = outcome.member, outcome.interval
    result = outcome.result
    if outcome.succeeded and result is not None and result.get("status") == "succeeded":
        value = finite(result.get("fitness"))
        checkpoint = result.get("checkpoint")
        record_result(population, m, i, float("nan") if value is None else value, str(checkpoint))
        return []
    why = outcome.message or "the interval ended without a result.json"
    before = population.members[m].status
    if before != "running" or population.members[m].intervals_done != i:
        return []
    if record_failure(population, spec, m, i):
        return [Event("Warning", "MemberFailed", f"member {m} failed in interval {i}: {why}")]
    retry = population.members[m].retries
    message = f"member {m} interval {i} failed ({why}); retry {retry}"
    return [Event("Warning", "IntervalRetried", f"{message} of {spec.max_interval_retries}")]


def decide(population: Population, spec: PBTPopulationSpec) -> tuple[list[Action], list[Event]]:
    """Exploit/explore and launch decisions (recorded in ``population``: save it before
    acting), with one Event per exploit."""
    before = len(population.events)
    actions = next_actions(population, spec, decision_rng(spec.template.seed, population))
    return actions, [exploit_event(ev) for ev in population.events[before:]]


def exploit_event(ev: LineageEvent) -> Event:
    """The Event of one exploit: who copied whom, and how it explored."""
    changes = ", ".join(
        f"{k} {_value(ev.new_params.get(k))} ({ev.explore[k]})"
        for k in sorted(ev.new_params)
        if k in ev.explore
    )
    return Event(
        "Normal",
        "Exploit",
        f"member {ev.member} ({_num(ev.old_fitness)}) copied member {ev.copied_from} "
        f"({_num(ev.donor_fitness)}) before its interval {ev.interval}; {changes}",
    )


def unpublished_exploits(population: Population, published: int, known: int) -> list[Event]:
    """The Events of exploits saved in an earlier reconcile that the status does not count
    yet (``published``, status.exploits, < ``known``, those in the state as read): that
    reconcile saved the state and stopped before its Events went out and its status was
    patched (the operator was killed, or the API server failed). The latest
    :data:`MAX_REPLAYED_EXPLOITS` at most."""
    missed = population.events[max(0, published) : known]
    return [exploit_event(ev) for ev in missed[-MAX_REPLAYED_EXPLOITS:]]


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def overfitting_status(section: Any) -> PBTOverfittingStatus | None:
    """pbt_summary.json's ``overfitting`` section (stevie_trainer.pbt.luck) as the status'
    summary; None if absent (a finish Job of an older trainer)."""
    if not isinstance(section, Mapping):
        return None
    dsr = section.get("deflated_sharpe")
    return PBTOverfittingStatus(
        deflated_sharpe=probability(dsr.get("dsr")) if isinstance(dsr, Mapping) else None,
        trials=count(section.get("evaluations")),
        note=notes_line(section.get("notes")),
    )


def population_status(
    population: Population,
    summary: dict[str, Any] | None = None,
    *,
    start_time: datetime | None = None,
    completion_time: datetime | None = None,
) -> PBTPopulationStatus:
    """The status fields the state (and pbt_summary.json, once written) determine; the caller
    adds conditions and observedGeneration."""
    members = population.members
    ranked = rank(population)
    best_value, best_member = None, None
    for m in members:
        for f in m.fitness_history:
            if best_value is None or f > best_value:
                best_value, best_member = f, m.index
    test: MetricSummary | None = None
    overfitting: PBTOverfittingStatus | None = None
    summary_uri = best_model = None
    if summary is not None:
        best = summary.get("best") or {}
        test = metric_summary((best.get("test") or {}).get("best member"))
        overfitting = overfitting_status(summary.get("overfitting"))
        summary_uri = summary.get("uri")
        best_model = best.get("model")
    return PBTPopulationStatus(
        phase=phase(population),
        intervals_completed=population.intervals_completed,
        members_running=sum(m.status == "running" for m in members),
        members_failed=sum(m.status == "failed" for m in members),
        exploits=population.exploits,
        best_fitness=best_value,
        best_member=best_member,
        top=[
            PBTMemberSummary(
                member=m.index,
                fitness=m.fitness,
                interval=m.intervals_done,
                hyperparameters=m.hyperparameters,
            )
            for m in ranked[:5]
        ],
        test=test,
        overfitting=overfitting,
        summary_uri=summary_uri,
        best_model_uri=best_model,
        start_time=start_time,
        completion_time=completion_time,
    )
