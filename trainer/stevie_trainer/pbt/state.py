"""State of a PBT population: JSON-serialisable dataclasses and deterministic child names.

Torch-free (the operator imports it). The decisions that change this state are in
:mod:`stevie_trainer.pbt.evolution`; the readers here (ranking, phase, lineage schedule,
summary) only look at it.

Member lifecycle::

    pending --launch--> running --result--> ready --decide (exploit/explore)--> pending
                           |                  '--maxIntervals / target reached--> done
                           '--failure--> pending (retry, same inputs) | failed (retries spent)

Intervals are numbered from 0: interval ``i`` of a member is its ``i + 1``-th training
interval, and ``fitness_history[i]`` / ``param_history[i]`` / ``checkpoint_history[i]`` are its
result, hyperparameters and output checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from stevie_api.common import ParamValue
from stevie_api.naming import child_name

__all__ = [
    "Action",
    "ActionKind",
    "LineageEvent",
    "Member",
    "MemberStatus",
    "Population",
    "interval_name",
    "launch_action",
    "phase",
    "rank",
    "running_actions",
    "schedule",
    "summary",
]

MemberStatus = Literal["pending", "running", "ready", "done", "failed"]
ActionKind = Literal["launch", "done", "fail"]
PopulationPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass
class Member:
    """One member: a chain of intervals, each resuming from a checkpoint."""

    index: int
    hyperparameters: dict[str, ParamValue]
    """Overrides of the template's hyperparameters for the next (or running) interval."""
    intervals_done: int = 0
    checkpoint: str | None = None
    """Output checkpoint of the member's last completed interval (what others may copy)."""
    init_checkpoint: str | None = None
    """Checkpoint the next (or running) interval starts from (None: a fresh model)."""
    fitness_history: list[float] = field(default_factory=list)
    param_history: list[dict[str, ParamValue]] = field(default_factory=list)
    checkpoint_history: list[str | None] = field(default_factory=list)
    status: MemberStatus = "pending"
    retries: int = 0
    """Failed attempts of the current interval."""
    parents: list[int] = field(default_factory=list)
    """Members this one copied from, in order (details in Population.events)."""

    @property
    def fitness(self) -> float | None:
        """Latest fitness (None before the first result)."""
        return self.fitness_history[-1] if self.fitness_history else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Member:
        """Inverse of :meth:`to_dict`."""
        return cls(
            index=int(data["index"]),
            hyperparameters=dict(data.get("hyperparameters", {})),
            intervals_done=int(data.get("intervals_done", 0)),
            checkpoint=data.get("checkpoint"),
            init_checkpoint=data.get("init_checkpoint"),
            fitness_history=[float(f) for f in data.get("fitness_history", [])],
            param_history=[dict(p) for p in data.get("param_history", [])],
            checkpoint_history=list(data.get("checkpoint_history", [])),
            status=data.get("status", "pending"),
            retries=int(data.get("retries", 0)),
            parents=[int(p) for p in data.get("parents", [])],
        )


@dataclass
class LineageEvent:
    """An exploit: ``member`` copied ``copied_from`` (weights and hyperparameters), then explored.

    ``interval`` is the member's interval that starts from the copy; ``copied_interval`` is how
    many intervals the copied checkpoint had trained; ``explore`` says what happened to each
    hyperparameter ("resample", "x0.8", "choice+1", ...).
    """

    interval: int
    member: int
    copied_from: int
    copied_interval: int
    checkpoint: str
    old_params: dict[str, ParamValue]
    new_params: dict[str, ParamValue]
    reason: str
    old_fitness: float | None = None
    donor_fitness: float | None = None
    explore: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageEvent:
        """Inverse of :meth:`to_dict`."""
        return cls(
            interval=int(data["interval"]),
            member=int(data["member"]),
            copied_from=int(data["copied_from"]),
            copied_interval=int(data["copied_interval"]),
            checkpoint=str(data["checkpoint"]),
            old_params=dict(data.get("old_params", {})),
            new_params=dict(data.get("new_params", {})),
            reason=str(data.get("reason", "")),
            old_fitness=data.get("old_fitness"),
            donor_fitness=data.get("donor_fitness"),
            explore=dict(data.get("explore", {})),
        )


@dataclass
class Population:
    """The whole population's state (persisted in storage between reconciles)."""

    name: str
    members: list[Member]
    intervals_completed: int = 0
    """Member intervals completed, over all members."""
    events: list[LineageEvent] = field(default_factory=list)
    stopped: str | None = None
    """Why launching stopped early (target fitness reached), or None."""

    @property
    def exploits(self) -> int:
        """Exploit decisions so far."""
        return len(self.events)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "name": self.name,
            "members": [m.to_dict() for m in self.members],
            "intervals_completed": self.intervals_completed,
            "events": [e.to_dict() for e in self.events],
            "stopped": self.stopped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Population:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            members=[Member.from_dict(m) for m in data["members"]],
            intervals_completed=int(data.get("intervals_completed", 0)),
            events=[LineageEvent.from_dict(e) for e in data.get("events", [])],
            stopped=data.get("stopped"),
        )


@dataclass(frozen=True)
class Action:
    """What the controller asks for.

    - ``launch``: train ``member``'s ``interval`` with ``hyperparameters`` (template overrides),
      starting from ``init_checkpoint`` (None: a fresh model), as child ``name``.
    - ``done`` / ``fail``: the population finished (member and interval None).
    """

    kind: ActionKind
    member: int | None = None
    interval: int | None = None
    hyperparameters: dict[str, ParamValue] = field(default_factory=dict)
    init_checkpoint: str | None = None
    name: str | None = None
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return asdict(self)


def interval_name(pop: str, member: int, interval: int, attempt: int = 0) -> str:
    """Deterministic child name ``<pop>-m<member>-i<interval>`` (``-r<attempt>`` for retries),
    a DNS-1123 label fitted by :func:`stevie_api.naming.child_name`."""
    suffix = f"-m{member}-i{interval}" + (f"-r{attempt}" if attempt else "")
    return child_name(pop, suffix)


# --------------------------------------------------------------------------- readers


def rank(population: Population) -> list[Member]:
    """Members with at least one result and not failed, best latest fitness first (ties: by
    index)."""
    ranked = [m for m in population.members if m.status != "failed" and m.fitness_history]
    return sorted(ranked, key=lambda m: (-m.fitness_history[-1], m.index))


def launch_action(population: Population, m: Member) -> Action:
    """Mark ``m`` running and return the launch of its next interval (or retry)."""
    m.status = "running"
    return _launch(population, m)


def _launch(population: Population, m: Member) -> Action:
    return Action(
        kind="launch",
        member=m.index,
        interval=m.intervals_done,
        hyperparameters=dict(m.hyperparameters),
        init_checkpoint=m.init_checkpoint,
        name=interval_name(population.name, m.index, m.intervals_done, m.retries),
        attempt=m.retries,
    )


def running_actions(population: Population) -> list[Action]:
    """The launch actions of the running members (to re-create children lost in a crash:
    names are deterministic, so creating them again is idempotent)."""
    return [_launch(population, m) for m in population.members if m.status == "running"]


def phase(population: Population) -> PopulationPhase:
    """Pending (nothing finished or running yet), Running, Succeeded or Failed."""
    statuses = {m.status for m in population.members}
    if statuses <= {"failed"}:
        return "Failed"
    if statuses <= {"done", "failed"}:
        return "Succeeded"
    if population.intervals_completed == 0 and "running" not in statuses:
        return "Pending"
    return "Running"


# --------------------------------------------------------------------------- summary


def schedule(population: Population, member: int, interval: int) -> list[dict[str, Any]]:
    """The history of the weights of ``member`` after its ``interval``: one entry per interval
    they trained, following exploits back to the members they were copied from."""
    steps: list[dict[str, Any]] = []
    limit = len(population.events)
    m, upto = member, interval
    while upto >= 0:
        found = None
        for k in range(limit - 1, -1, -1):
            ev = population.events[k]
            if ev.member == m and ev.interval <= upto:
                found = k
                break
        start = population.events[found].interval if found is not None else 0
        owner = population.members[m]
        for i in range(upto, start - 1, -1):
            steps.append(
                {
                    "member": m,
                    "interval": i,
                    "hyperparameters": owner.param_history[i],
                    "fitness": owner.fitness_history[i],
                }
            )
        if found is None:
            break
        ev = population.events[found]
        m, upto, limit = ev.copied_from, ev.copied_interval - 1, found
    steps.reverse()
    return steps


def _leader(members: Iterable[Member]) -> list[dict[str, Any]]:
    return [
        {
            "member": m.index,
            "fitness": m.fitness,
            "interval": m.intervals_done,
            "hyperparameters": m.hyperparameters,
        }
        for m in members
    ]


def summary(population: Population, top: int = 5) -> dict[str, Any]:
    """pbt_summary.json: the best result so far (member, interval, fitness, checkpoint and its
    hyperparameter schedule), the top members by latest fitness, and every member's history."""
    results = [
        (f, -m.index, -i, m)
        for m in population.members
        for i, f in enumerate(m.fitness_history)
        if m.checkpoint_history[i] is not None
    ]
    best: dict[str, Any] | None = None
    if results:
        f, _, neg_i, m = max(results, key=lambda r: r[:3])
        best = {
            "member": m.index,
            "interval": -neg_i,
            "fitness": f,
            "checkpoint": m.checkpoint_history[-neg_i],
            "hyperparameters": m.param_history[-neg_i],
            "schedule": schedule(population, m.index, -neg_i),
        }
    return {
        "name": population.name,
        "phase": phase(population),
        "stopped": population.stopped,
        "intervals_completed": population.intervals_completed,
        "exploits": population.exploits,
        "members_running": sum(m.status == "running" for m in population.members),
        "members_failed": sum(m.status == "failed" for m in population.members),
        "best": best,
        "top": _leader(rank(population)[:top]),
        "members": [
            {
                "member": m.index,
                "status": m.status,
                "intervals_done": m.intervals_done,
                "fitness_history": m.fitness_history,
                "hyperparameters": m.hyperparameters,
                "parents": m.parents,
            }
            for m in population.members
        ],
    }
