"""Whose child is it: a child is an object's only when its controlling ownerReference
carries that object's uid.

Names and labels are not enough. Delete a TrainingRun and create it again under the same
name: the new object plans the same child names, while the old object's Job still exists
until the garbage collector (asynchronous, seconds to minutes) deletes it; it carries the
same labels. Adopting it would show the previous run's outcome ("already finished") as
the new one's. So, as Kubernetes' own controllers do (ControllerRefManager: adopt only what
no other controller owns), a listed child with another controller is left out of what the
kind observes, and a planned child whose name is taken by one is not created: the object
is Degraded (:data:`FOREIGN_CHILD`), waiting, and the old child's deletion (an event of a
child with this name) reconciles it again.

A child with no controller at all (orphaned by ``kubectl delete --cascade=orphan``, or made
by hand) is not adopted either: nothing says it ran this object's spec. An object with no
uid (built by a test, never seen by an API server) owns every child found for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stevie_operator.framework.plan import Plan, degraded_of, with_degraded
from stevie_operator.framework.status import Event, merge_patch

__all__ = ["FOREIGN_CHILD", "controller_ref", "foreign_owner", "split_owned", "with_foreign"]

FOREIGN_CHILD = "ForeignChild"
"""The Degraded reason of an object a child name of which is taken by another owner's."""

Found = dict[str, dict[str, dict[str, Any]]]  # child kind -> name -> object


def controller_ref(child: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The child's controlling ownerReference (``controller: true``), if any."""
    for ref in (child.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def foreign_owner(child: Mapping[str, Any], kind: str, name: str, uid: str | None) -> str | None:
    """None when ``child`` is the object's (``kind``/``name``, ``uid``); otherwise what the
    object's status says about it."""
    if not uid:
        return None
    ref = controller_ref(child)
    if ref is not None and ref.get("uid") == uid:
        return None
    what = f"{child.get('kind') or 'Job'} {(child.get('metadata') or {}).get('name')}"
    if ref is None:
        return (
            f"{what} exists but no {kind} owns it (orphaned, or made by hand): nothing says "
            f"it ran this spec; delete it to let this {kind} create its own"
        )
    if ref.get("kind") == kind and ref.get("name") == name:
        return (
            f"{what} belongs to a previous {kind} of this name (uid {ref.get('uid')}); "
            "waiting for Kubernetes to delete it (garbage collection)"
        )
    return (
        f"{what} belongs to {ref.get('kind')}/{ref.get('name')} (uid {ref.get('uid')}), not "
        f"to this {kind}; delete or rename one of them"
    )


def split_owned(
    found: Found, kind: str, name: str, uid: str | None
) -> tuple[Found, dict[tuple[str, str], str]]:
    """The listed children that are the object's, and the others: (child kind, name) ->
    :func:`foreign_owner`'s message."""
    mine: Found = {}
    foreign: dict[tuple[str, str], str] = {}
    for child_kind, objs in found.items():
        mine[child_kind] = {}
        for child_name, obj in objs.items():
            why = foreign_owner({"kind": child_kind, **obj}, kind, name, uid)
            if why is None:
                mine[child_kind][child_name] = obj
            else:
                foreign[(child_kind, child_name)] = why
    return mine, foreign


def with_foreign(
    plan: Plan[Any], stored: Mapping[str, Any], generation: Any, problems: list[str]
) -> Plan[Any]:
    """``plan`` with Degraded True (:data:`FOREIGN_CHILD`) saying which planned children
    could not be created, the status message saying so too, and a Warning Event the first
    time (the status merge patch is recomputed against ``stored``)."""
    message = "; ".join(problems)
    old = degraded_of(stored)
    conditions = with_degraded(
        plan.status.get("conditions"), old, FOREIGN_CHILD, message, generation, datetime.now(UTC)
    )
    status = {**plan.status, "message": message, "conditions": conditions}
    again = old.get("reason") == FOREIGN_CHILD and old.get("message") == message
    events = plan.events if again else (*plan.events, Event("Warning", FOREIGN_CHILD, message))
    return dataclasses.replace(
        plan, status=status, status_patch=merge_patch(stored, status), events=events
    )
