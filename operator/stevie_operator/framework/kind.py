"""The contract every kind implements, and the context the controller gives it.

A kind is one :class:`Kind` subclass (``kinds/<kind>/controller.py``). The controller
(:func:`~.controller.drive`) calls it in this order on every reconcile, level-based::

    observe(ctx, body, owned)  -> Obs      read the world (storage, Secrets, Optuna...)
    plan(body, observed, cfg)  -> Plan[W]  PURE: status, patch, events, phase, children
    persist(ctx, observed, plan) -> bool   save plan.work BEFORE children exist; True: the
                                           world changed, observe and plan again
    record(metrics, own, ns, name, plan, observed)   the kind's Prometheus series

``stevie run`` calls the same methods through the same ``drive()``, with a local API and a
local launcher behind the :class:`Context`: the status, conditions and messages are the
same locally and on a cluster.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry

from stevie_api.kinds import KindInfo
from stevie_operator.framework.children import JOBS, ChildType, Owned
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.informer import ChildIndex, owner_key
from stevie_operator.framework.kube import KubeAPI
from stevie_operator.framework.metrics import KindMetrics, OperatorMetrics
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.status import Event

__all__ = ["Body", "Context", "Kind", "References"]

Body = Mapping[str, Any]
Obs = TypeVar("Obs")  # what a kind observes
W = TypeVar("W")  # what its persist step saves
KM = TypeVar("KM", bound=KindMetrics)
P = ParamSpec("P")
T = TypeVar("T")
ObjectKey = tuple[str, str, str]  # kind, namespace, name


class References:
    """Which resources reference which (an Ensemble its members): resources of a watching
    kind are reconciled when an object they reference changes."""

    def __init__(self) -> None:
        self._refs: dict[ObjectKey, frozenset[tuple[str, str]]] = {}

    def update(self, key: ObjectKey, refs: Iterable[tuple[str, str]]) -> None:
        """``key`` references these (kind, name) pairs in its namespace."""
        found = frozenset(refs)
        if found:
            self._refs[key] = found
        else:
            self._refs.pop(key, None)

    def forget(self, key: ObjectKey) -> None:
        """``key`` is gone."""
        self._refs.pop(key, None)

    def referrers(self, kind: str, namespace: str, name: str) -> list[ObjectKey]:
        """The resources that reference ``kind``/``name`` in ``namespace``."""
        return sorted(
            k for k, refs in self._refs.items() if k[1] == namespace and (kind, name) in refs
        )


class Context(ABC):
    """What a reconcile may use beyond the resource: settings, metrics, the API, Event
    posting, a way to run blocking calls, per-object locks and per-kind state that must
    outlive one reconcile (open Optuna storages). One per operator (or ``stevie run``)."""

    def __init__(self, config: OperatorConfig, metrics: OperatorMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.locks: dict[ObjectKey, asyncio.Lock] = {}
        self.state: dict[str, Any] = {}
        self.references = References()
        self.children: ChildIndex | None = None
        """The children as the watches index them (the operator); None: list them
        (``stevie run``)."""

    @abstractmethod
    def api(self) -> KubeAPI:
        """The API to read and write through."""

    @abstractmethod
    def post(self, body: Body, events: Iterable[Event]) -> None:
        """Post Events on the resource ``body``."""

    @abstractmethod
    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call (storage, Optuna) without stalling other reconciles."""

    def lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        """The lock serialising the reconciles of one object: create, update, the timer and
        child events may fire together, and two reconciles of one object at once could both
        decide to create the same child (harmless: names are deterministic) or both ask
        trials (not harmless)."""
        return self.locks.setdefault((kind, namespace, name), asyncio.Lock())

    def forget(self, kind: Kind[Any, Any, Any], namespace: str, name: str) -> None:
        """Drop a deleted object's lock, metrics, references and kind state."""
        key = (kind.name, namespace, name)
        self.locks.pop(key, None)
        self.metrics.forget(kind.name, namespace, name)
        self.references.forget(key)
        if self.children is not None:
            self.children.forget(owner_key(namespace, kind.name, name))
        kind.forget(self, namespace, name)


class Kind(ABC, Generic[Obs, W, KM]):
    """One kind of resource: its identity, its children, how it observes, plans, persists
    and records. Subclasses set :attr:`info` and implement :meth:`observe` and :meth:`plan`."""

    info: ClassVar[KindInfo]
    children: ClassVar[tuple[ChildType, ...]] = (JOBS,)
    """The child types it creates and watches (their events reconcile the owner)."""
    watches: ClassVar[tuple[str, ...]] = ()
    """Stevie kinds whose objects it references (their events reconcile the referrers)."""
    parallel_roles: ClassVar[frozenset[str]] = frozenset()
    """Child roles (``stevie.dev/role``) that run side by side: ``stevie run`` writes their
    output to log files instead of the terminal."""

    @property
    def name(self) -> str:
        """The kind's name (``TrainingRun``)."""
        return self.info.kind

    @abstractmethod
    async def observe(self, ctx: Context, body: Body, owned: Owned) -> Obs:
        """What the plan needs beyond the resource and its children (storage, Secrets)."""

    @abstractmethod
    def plan(self, body: Body, observed: Obs, config: OperatorConfig) -> Plan[W]:
        """PURE: what to do. Never raises on an invalid spec (that is a status)."""

    def persist(self, ctx: Context, observed: Obs, plan: Plan[W]) -> bool:
        """Save ``plan.work`` before any child is created (blocking; called off the event
        loop). True when that changed what was observed: observe and plan again."""
        return False

    def make_metrics(self, registry: CollectorRegistry) -> KM:
        """The kind's own metric families."""
        return KindMetrics(registry)  # type: ignore[return-value]

    def record(
        self,
        metrics: OperatorMetrics,
        own: KM,
        namespace: str,
        name: str,
        plan: Plan[W],
        observed: Obs,
    ) -> None:
        """Record the reconcile's outcome in the kind's metrics (phases are recorded by the
        controller)."""

    def location(self, body: Body, config: OperatorConfig) -> str | None:
        """The resource's folder in storage (None when its spec is invalid)."""
        return None

    def describe(
        self, body: Body, config: OperatorConfig, secrets: Mapping[str, Mapping[str, str]]
    ) -> str:
        """Where the resource's outputs live, in one line (``stevie run`` starts with it);
        ``secrets`` are what :meth:`local_secrets` gave, to name but never show."""
        return f"artifacts in {self.location(body, config)}"

    def references(self, body: Body) -> set[tuple[str, str]]:
        """The (kind, name) pairs this resource references in its namespace."""
        return set()

    def forget(self, ctx: Context, namespace: str, name: str) -> None:
        """Drop kind state of a deleted resource (e.g. close its storage)."""

    def local_secrets(self, body: Body, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """The Secrets (name -> key -> value) this resource reads, taken from ``environ``
        when there is no cluster (``stevie run``); ValueError says what to set."""
        return {}
