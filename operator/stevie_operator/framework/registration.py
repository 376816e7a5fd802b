"""A kind's kopf handlers, and the operator's :class:`~.kind.Context` kept in kopf's memo.

Every handler of a kind calls the same level-based :func:`~.controller.drive`: create,
resume and spec updates of its objects, a timer while they are unfinished, any event of a
child it owns (found by the ``stevie.dev/kind`` label and the controlling ownerReference),
and any event of an object of a kind it watches (reconciling the objects that reference
it). A deleted object's state is forgotten.

Cost at scale (``bench/operator_scale.py``): kopf watches each child type once for every
kind, and its ``labels=`` filter is applied client-side, so by itself the operator would
stream every Job (Deployment, Service) of the cluster. A startup handler gives kopf a
server-side ``labelSelector`` for those watches (``settings.watching.label_selectors``,
kopf >= 1.38): only objects labelled ``app.kubernetes.io/managed-by=stevie-operator`` are
listed and streamed. A timer's first tick comes one interval after the object is seen plus
a fraction of an interval taken from its uid, so a thousand objects resumed at once tick
spread over the interval instead of all together, for ever after.

The children (and their pods) are also indexed by owner as they stream (``@kopf.index``,
:func:`register_indexes`): a reconcile reads them from memory (:mod:`.informer`), and kopf
runs no resource handler before each index has had its initial listing.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

import kopf

from stevie_api import API_VERSION, GROUP, VERSION
from stevie_api.kinds import kind_info
from stevie_operator.framework.children import ChildType
from stevie_operator.framework.client import KubeClient
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.controller import drive
from stevie_operator.framework.informer import POD_PLURAL, ChildIndex, index_key
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import KubeAPI
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.framework.pods import KIND_LABEL, MANAGED_BY
from stevie_operator.framework.status import TERMINAL, Event

__all__ = [
    "CHILD_SELECTOR",
    "OperatorContext",
    "context_of",
    "first_tick",
    "owner_name",
    "register_indexes",
    "register_kind",
    "unfinished",
]

CONTEXT_KEY = "stevie"
CHILD_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
"""The server-side label selector of the children's watches (every child carries it)."""
P = ParamSpec("P")
T = TypeVar("T")


class OperatorContext(Context):
    """The operator's context: the API server through the login's credentials, Events
    through kopf, blocking calls in threads."""

    def __init__(self, config: OperatorConfig, metrics: OperatorMetrics) -> None:
        super().__init__(config, metrics)
        self.connection: kopf.ConnectionInfo | None = None
        self.client: KubeClient | None = None

    def api(self) -> KubeAPI:
        """A client for the current credentials (re-created after a new login)."""
        if self.connection is None:
            raise kopf.TemporaryError("not logged in to the cluster yet", delay=1)
        if self.client is None or self.client.closed or self.client.info is not self.connection:
            self.client = KubeClient(self.connection)
        return self.client

    def post(self, body: Body, events: Iterable[Event]) -> None:
        """kopf queues the Events (it needs the body for the object reference)."""
        for event in events:
            kopf.event(
                cast(kopf.Body, body), type=event.type, reason=event.reason, message=event.message
            )

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """In a thread: Optuna blocks on file locks and SQL, storage on I/O."""
        return await asyncio.to_thread(fn, *args, **kwargs)


def context_of(memo: Any) -> OperatorContext:
    """The operator's context, created on first use."""
    found = memo.get(CONTEXT_KEY)
    if not isinstance(found, OperatorContext):
        found = OperatorContext(OperatorConfig.from_env(), OperatorMetrics())
        memo[CONTEXT_KEY] = found
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
    return status.get("phase") not in TERMINAL


def first_tick(every: float) -> Callable[..., float]:
    """kopf ``initial_delay=``: ``every`` plus a fraction of ``every`` that is fixed for each
    object (from its uid; its name without one), so the timers of many objects started
    together (an operator restart resumes them all at once) tick spread over the interval."""

    def delay(*, meta: kopf.Meta, **_: Any) -> float:
        key = str(meta.get("uid") or meta.get("name") or "")
        return every * (1.0 + zlib.crc32(key.encode()) / 2**32)

    return delay


def _watch(registry: kopf.OperatorRegistry, kind: Kind[Any, Any, Any], every: float) -> None:
    """The handlers of the kind's own objects."""
    plural, name = kind.info.plural, kind.name

    async def changed(*, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        await drive(context_of(memo), kind, namespace or "default", name)

    def resource_event(*, type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        if type == "DELETED":
            context_of(memo).forget(kind, namespace or "default", name)

    on: dict[str, Any] = {"registry": registry, "backoff": 5}
    kopf.on.resume(GROUP, VERSION, plural, id=f"{name}-resume", **on)(changed)
    kopf.on.create(GROUP, VERSION, plural, id=f"{name}-create", **on)(changed)
    kopf.on.update(GROUP, VERSION, plural, id=f"{name}-update", field="spec", **on)(changed)
    kopf.timer(
        GROUP, VERSION, plural, id=f"{name}-tick", interval=every, initial_delay=first_tick(every),
        when=unfinished, registry=registry,
    )(changed)  # fmt: skip
    kopf.on.event(GROUP, VERSION, plural, id=f"{name}-events", registry=registry)(resource_event)


def _watch_children(registry: kopf.OperatorRegistry, kind: Kind[Any, Any, Any]) -> None:
    """Any event of a child it owns reconciles the owner."""

    async def child_event(*, namespace: str | None, meta: kopf.Meta, memo: Any, **_: Any) -> None:
        owner = owner_name(meta.get("ownerReferences"), kind.name)
        if owner is not None:
            await drive(context_of(memo), kind, namespace or "default", owner)

    @kopf.on.startup(id=f"{kind.name}-child-selectors", registry=registry)
    def select(settings: kopf.OperatorSettings, **_: Any) -> None:
        """Only the operator's children are listed and streamed (kopf starts watching after
        the startup handlers); other kinds with the same child types set the same value."""
        for child in kind.children:
            key = (child.group, child.version, child.plural)
            settings.watching.label_selectors[key] = CHILD_SELECTOR

    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, KIND_LABEL: kind.name}
    for child in kind.children:
        kopf.on.event(
            child.group, child.version, child.plural, id=f"{kind.name}-{child.plural}",
            labels=labels, registry=registry,
        )(child_event)  # fmt: skip


def _watch_references(registry: kopf.OperatorRegistry, kind: Kind[Any, Any, Any]) -> None:
    """Any event of an object of a watched kind reconciles the objects referencing it."""
    for watched in kind.watches:

        async def referenced(
            *, namespace: str | None, name: str, memo: Any, watched: str = watched, **_: Any
        ) -> None:
            ctx = context_of(memo)
            found = ctx.references.referrers(watched, namespace or "default", name)
            for _kind, ns, referrer in found:
                await drive(ctx, kind, ns, referrer)

        plural = kind_info(watched).plural
        kopf.on.event(
            GROUP, VERSION, plural, id=f"{kind.name}-watches-{plural}", registry=registry
        )(referenced)


def _index_id(plural: str) -> str:
    return f"stevie_{plural}_by_owner"


def register_indexes(registry: kopf.OperatorRegistry, kinds: Iterable[Kind[Any, Any, Any]]) -> None:
    """Index every child type of ``kinds``, and the pods of their Jobs and Deployments, by
    owner (:func:`~.informer.index_key`), from streams that carry only the operator's
    objects (the server-side selector :data:`CHILD_SELECTOR`); hand the indexes to the
    context at startup (kopf gives every handler the indexes, filled or not)."""
    types = {t.plural: t for kind in kinds for t in kind.children}
    types[POD_PLURAL] = ChildType("v1", "Pod", POD_PLURAL)
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY}

    def by_owner(
        *, namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Any, dict[str, Any]]:
        key = index_key(namespace, labels)
        return {} if key is None else {key: dict(body)}

    for plural, type_ in types.items():
        kopf.index(
            type_.group, type_.version, plural, id=_index_id(plural), labels=labels,
            registry=registry,
        )(by_owner)  # fmt: skip

    @kopf.on.startup(id="stevie-child-indexes", registry=registry)
    def indexes(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
        """The indexes to the context; the pods' stream is label-selected like the rest."""
        settings.watching.label_selectors[("", "v1", POD_PLURAL)] = CHILD_SELECTOR
        stores = {plural: kwargs[_index_id(plural)] for plural in types}
        context_of(memo).children = ChildIndex(stores)


def register_kind(registry: kopf.OperatorRegistry, kind: Kind[Any, Any, Any], every: float) -> None:
    """Register one kind's handlers (its timer ticks every ``every`` seconds)."""
    _watch(registry, kind, every)
    _watch_children(registry, kind)
    _watch_references(registry, kind)
