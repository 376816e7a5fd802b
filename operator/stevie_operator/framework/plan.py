"""The one plan shape every kind's reconciler returns, and how a reconciler writes one.

A reconciler reads a :class:`~.resource.Subject`, decides a :class:`Decision` (phase,
reason, message, degradation) and the children to create, then calls :func:`conclude`,
which sets observedGeneration and the five conditions, computes the status merge patch and
adds the Events of the transition. Plans are frozen: the same inputs give equal plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from stevie_api.common import Condition, StatusBase
from stevie_operator.framework.admission import REFUSED_SPEC
from stevie_operator.framework.resource import Subject
from stevie_operator.framework.status import (
    TERMINAL,
    Event,
    merge_patch,
    phase_conditions,
    set_conditions,
)

__all__ = [
    "STORAGE_UNAVAILABLE",
    "Child",
    "Decision",
    "Plan",
    "conclude",
    "transition_events",
    "unsaved",
]

STORAGE_UNAVAILABLE = "StorageUnavailable"
"""The Degraded reason of an object whose state could not be saved (so nothing was created)."""

W = TypeVar("W")


@dataclass(frozen=True)
class Child:
    """A child object to create, and the Event to post once it is created (not if it
    already existed)."""

    manifest: Mapping[str, Any]
    event: Event | None = None

    @property
    def name(self) -> str:
        """The child's (deterministic) name."""
        return str(self.manifest["metadata"]["name"])

    @property
    def kind(self) -> str:
        """The child's kind (Job, Deployment, Service)."""
        return str(self.manifest["kind"])


@dataclass(frozen=True)
class Plan(Generic[W]):
    """What to do, in this order: ``persist`` the kind's ``work`` (state that must be saved
    before children exist), create ``children``, patch the status with ``status_patch``,
    post ``events``. ``status`` is the whole new status; ``phase`` its phase. ``updates`` are
    existing children whose desired state changed (a Deployment's pod template): each is
    merge-patched with its manifest's ``spec``."""

    status: dict[str, Any]
    status_patch: dict[str, Any]
    phase: str | None
    events: tuple[Event, ...] = ()
    children: tuple[Child, ...] = ()
    work: W | None = None
    problems: tuple[str, ...] = ()
    updates: tuple[Child, ...] = ()

    @property
    def finished(self) -> bool:
        """Whether the resource reached Succeeded or Failed."""
        return self.phase in TERMINAL


@dataclass
class Decision:
    """A reconciler's verdict: the phase, its reason and message, Degraded's (reason,
    message) if degraded, and ``stuck`` when nothing progresses until someone acts
    (Progressing False)."""

    phase: str
    reason: str
    message: str
    degraded: tuple[str, str] | None = None
    stuck: bool = False


def transition_events(
    before: StatusBase, decision: Decision, *, succeeded: str, failed: str | None = None
) -> list[Event]:
    """One Event per transition: into Succeeded (``succeeded``) or Failed (``failed``, or the
    decision's reason; a refused spec -- InvalidSpec, an image or ServiceAccount not allowed --
    under its own reason, again whenever its message changes), and into Degraded (or
    Degraded for another reason)."""
    events: list[Event] = []
    d = decision
    old_failed = before.get_condition("Failed")
    invalid_again = (
        d.reason in REFUSED_SPEC and old_failed is not None and old_failed.message != d.message
    )
    if d.phase != before.phase or (d.phase == "Failed" and invalid_again):
        if d.phase == "Succeeded":
            events.append(Event("Normal", succeeded, d.message))
        elif d.phase == "Failed":
            reason = d.reason if d.reason in REFUSED_SPEC or failed is None else failed
            events.append(Event("Warning", reason, d.message))
    old = before.get_condition("Degraded")
    if d.degraded is not None and (
        old is None or old.status != "True" or old.reason != d.degraded[0]
    ):
        events.append(Event("Warning", *d.degraded))
    return events


def conclude(
    subject: Subject[Any, Any],
    decision: Decision,
    now: datetime,
    *,
    status: StatusBase | None = None,
    events: Iterable[Event] = (),
    children: Iterable[Child] = (),
    updates: Iterable[Child] = (),
    work: W | None = None,
    refused: bool = False,
) -> Plan[W]:
    """The plan that writes ``decision`` into ``status`` (default: the subject's status) with
    observedGeneration and the five conditions, creates ``children`` and posts ``events``.

    ``refused``: the resource's latest generation was not applied (an immutable field was
    edited; the decision's Degraded says which). As in kubebuilder, status.observedGeneration
    is the generation the status reflects, so it keeps the applied one; the conditions carry
    the latest generation (they are what the operator concluded from it)."""
    new = subject.status if status is None else status
    if status is not None:
        new.conditions = subject.status.conditions
    new.phase = decision.phase
    new.message = decision.message
    new.observed_generation = subject.before.observed_generation if refused else subject.generation
    conditions = phase_conditions(
        decision.phase, decision.reason, decision.message, decision.degraded
    )
    if decision.stuck:
        conditions["Progressing"] = (False, decision.reason, decision.message)
    set_conditions(new, conditions, subject.generation, now)
    doc = new.to_dict()
    return Plan(
        status=doc,
        status_patch=merge_patch(subject.stored, doc),
        phase=decision.phase,
        events=tuple(events),
        children=tuple(children),
        updates=tuple(updates),
        work=work,
        problems=tuple(subject.problems),
    )


def degraded_of(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Degraded condition of a status ({} if none)."""
    found = next(
        (c for c in status.get("conditions") or [] if isinstance(c, Mapping)
         and c.get("type") == "Degraded"),
        None,
    )  # fmt: skip
    return found if found is not None else {}


def with_degraded(
    conditions: Any,
    old: Mapping[str, Any],
    reason: str,
    message: str,
    generation: Any,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with Degraded True for ``reason``, keeping the transition time of an
    ``old`` Degraded that was already True."""
    found = [dict(c) for c in conditions or [] if isinstance(c, Mapping)]
    degraded = Condition(
        type="Degraded",
        status="True",
        reason=reason,
        message=message,
        observed_generation=generation if isinstance(generation, int) else None,
        last_transition_time=(
            old.get("lastTransitionTime") if old.get("status") == "True" else None
        )
        or now,
    ).to_dict()
    at = next((i for i, c in enumerate(found) if c.get("type") == "Degraded"), None)
    if at is None:
        found.append(degraded)
    else:
        found[at] = degraded
    return found


def unsaved(
    stored: Mapping[str, Any],
    generation: Any,
    message: str,
    now: datetime,
    *,
    reason: str = STORAGE_UNAVAILABLE,
) -> Plan[Any]:
    """The plan of a reconcile whose persist failed (or that could not reach its storage
    at all: ``reason`` says why, :mod:`.s3access`): create nothing (saving first is what
    makes creating safe after a crash), keep the stored status (phase, observedGeneration:
    nothing of the new plan was applied) with Degraded True (``reason``) and ``message``,
    and a Warning Event on the transition into it only, not every retry.
    The next plan that persists sets Degraded from its own decision again."""
    old = degraded_of(stored)
    again = old.get("status") == "True"
    conditions = with_degraded(stored.get("conditions"), old, reason, message, generation, now)
    phase = stored.get("phase") if isinstance(stored.get("phase"), str) else "Pending"
    status = {**stored, "phase": phase, "message": message, "conditions": conditions}
    first = not (again and old.get("reason") == reason)
    events = (Event("Warning", reason, message),) if first else ()
    return Plan(status, merge_patch(stored, status), phase, events)
