"""What every kind's kopf handlers share: the operator's Runtime (settings, metrics, API
client, per-object locks) kept in kopf's memo, and small helpers around it.

One lock per object serialises its reconciles: create, update, the timer and child-Job
events may fire together, and two reconciles of one object at once could both decide to
create the same child (harmless: names are deterministic) or both ask trials (not harmless).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from stevie_api import API_VERSION, GROUP, VERSION
from stevie_operator.config import OperatorConfig
from stevie_operator.jobs import MANAGED_BY, label_value
from stevie_operator.kube import KubeClient, object_path
from stevie_operator.metrics import OperatorMetrics
from stevie_operator.status import Event

__all__ = [
    "RUNTIME_KEY",
    "Runtime",
    "live_object",
    "owned_jobs",
    "owner_name",
    "post_events",
    "register_kind",
    "runtime",
    "unfinished",
]

RUNTIME_KEY = "stevie"


@dataclass
class Runtime:
    """Per-operator state shared by all handlers (kept in kopf's memo)."""

    config: OperatorConfig
    metrics: OperatorMetrics
    connection: kopf.ConnectionInfo | None = None
    client: KubeClient | None = None
    locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    # Kind-specific state that must outlive one reconcile (e.g. open Optuna storages).
    extras: dict[str, Any] = field(default_factory=dict)

    def kube(self) -> KubeClient:
        """A client for the current credentials (re-created after a new login)."""
        if self.connection is None:
            raise kopf.TemporaryError("not logged in to the cluster yet", delay=1)
        if self.client is None or self.client.closed or self.client.info is not self.connection:
            self.client = KubeClient(self.connection)
        return self.client

    def lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        """The lock serialising the reconciles of one object."""
        return self.locks.setdefault((kind, namespace, name), asyncio.Lock())

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a deleted object's lock and metrics."""
        self.locks.pop((kind, namespace, name), None)
        self.metrics.forget(kind, namespace, name)


def runtime(memo: Any) -> Runtime:
    """The operator's Runtime, created on first use."""
    found = memo.get(RUNTIME_KEY)
    if not isinstance(found, Runtime):
        found = Runtime(OperatorConfig.from_env(), OperatorMetrics())
        memo[RUNTIME_KEY] = found
    return found


def owner_name(owners: Any, kind: str) -> str | None:
    """The name of the controlling owner of ``kind`` in a child's ownerReferences."""
    for ref in owners or []:
        if (
            isinstance(ref, Mapping)
            and ref.get("kind") == kind
            and ref.get("apiVersion") == API_VERSION
            and ref.get("controller")
        ):
            name = ref.get("name")
            return name if isinstance(name, str) else None
    return None


def unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    """kopf ``when=`` filter: the timer only ticks for objects not Succeeded or Failed."""
    return status.get("phase") not in ("Succeeded", "Failed")


def post_events(body: Mapping[str, Any], events: Iterable[Event]) -> None:
    """Post Events on the object (kopf queues them; it needs the body for the reference)."""
    for event in events:
        kopf.event(
            cast(kopf.Body, body), type=event.type, reason=event.reason, message=event.message
        )


Reconcile = Callable[[Runtime, str, str], Awaitable[object]]


def register_kind(
    registry: kopf.OperatorRegistry,
    *,
    kind: str,
    plural: str,
    reconcile: Reconcile,
    every: float,
    on_deleted: Callable[[Runtime, str, str], None] | None = None,
) -> None:
    """Register one kind's level-based handlers, all calling ``reconcile(rt, ns, name)``:
    create/resume/spec update, a timer while unfinished (every ``every`` s), any event of a
    Job it owns (found by the stevie.dev/kind label and the controller ownerReference), and
    forgetting a deleted object (``on_deleted`` drops kind-specific state too)."""

    async def changed(*, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        await reconcile(runtime(memo), namespace or "default", name)

    async def job_event(*, namespace: str | None, meta: kopf.Meta, memo: Any, **_: Any) -> None:
        owner = owner_name(meta.get("ownerReferences"), kind)
        if owner is not None:
            await reconcile(runtime(memo), namespace or "default", owner)

    def resource_event(*, type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        if type == "DELETED":
            rt = runtime(memo)
            rt.forget(kind, namespace or "default", name)
            if on_deleted is not None:
                on_deleted(rt, namespace or "default", name)

    common: dict[str, Any] = {"registry": registry}
    kopf.on.resume(GROUP, VERSION, plural, id=f"{kind}-resume", backoff=5, **common)(changed)
    kopf.on.create(GROUP, VERSION, plural, id=f"{kind}-create", backoff=5, **common)(changed)
    kopf.on.update(GROUP, VERSION, plural, id=f"{kind}-update", backoff=5, field="spec", **common)(
        changed
    )
    kopf.timer(
        GROUP, VERSION, plural, id=f"{kind}-tick", interval=every, initial_delay=every,
        when=unfinished, **common,
    )(changed)  # fmt: skip
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "stevie.dev/kind": kind}
    kopf.on.event("batch", "v1", "jobs", id=f"{kind}-jobs", labels=labels, **common)(job_event)
    kopf.on.event(GROUP, VERSION, plural, id=f"{kind}-events", **common)(resource_event)


async def live_object(
    client: KubeClient, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """The object as the API server has it now; None if it is gone or being deleted."""
    body = await client.get(object_path(API_VERSION, plural, namespace, name))
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return body


async def owned_jobs(
    client: KubeClient, kind: str, namespace: str, name: str
) -> dict[str, dict[str, Any]]:
    """The Jobs of one object, by name (found by their stevie.dev/kind and /name labels)."""
    path = object_path("batch/v1", "jobs", namespace)
    labels = {"stevie.dev/kind": kind, "stevie.dev/name": label_value(name)}
    return {j["metadata"]["name"]: j for j in await client.list(path, labels)}
