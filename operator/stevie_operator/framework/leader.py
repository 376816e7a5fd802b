"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection``
(and so controller-runtime) does it: one operator reconciles, the others wait.

The rules (client-go's ``tryAcquireOrRenew``):

- a candidate takes the Lease when there is none, when it is released (empty holder), or
  when its record has not changed for ``leaseDurationSeconds`` *as this candidate's own
  clock measured it* since it first saw that record: another node's clock (the holder's
  ``renewTime``) is never trusted, so clock skew cannot make two leaders;
- every write carries the ``resourceVersion`` it was decided on (a merge patch with
  ``metadata.resourceVersion`` is a precondition: the API server answers 409 to a stale one),
  and a first Lease is a create (409 if someone was quicker): two candidates cannot both win;
- the leader renews every ``retry_period``; if no renewal succeeded for ``renew_deadline``
  (shorter than the lease duration, so it gives up before anyone may take over), or the Lease
  names someone else, it has lost: the caller exits the process (client-go's
  ``OnStoppedLeading`` -> ``os.Exit``) so nothing runs twice, and the pod restarts as a
  follower;
- a leader that stops gracefully releases the Lease, and the next candidate takes it at
  its next try instead of a lease duration later.

:func:`decide` and the record helpers are pure (tested with no server);
:class:`LeaderElector` runs them against a :class:`~.kube.KubeAPI`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stevie_operator.framework.kube import KubeAPI, KubeError, object_path

__all__ = [
    "LEASE_API_VERSION",
    "Action",
    "LeaderElector",
    "LeaseRecord",
    "LeaseTimings",
    "Observation",
    "decide",
    "default_identity",
    "default_namespace",
    "lost_leadership",
    "microtime",
]

logger = logging.getLogger(__name__)

LEASE_API_VERSION = "coordination.k8s.io/v1"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
JITTER = 1.2  # client-go's JitterFactor: a candidate retries every retry_period * [1, 1.2)


@dataclass(frozen=True)
class LeaseTimings:
    """client-go's defaults (and controller-runtime's): a 15 s lease, a 10 s renew deadline,
    a try every 2 s. The deadline must be shorter than the lease (the leader gives up before
    the others may take over), and leave room for a few tries."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if self.lease_duration < 1 or self.lease_duration != int(self.lease_duration):
            raise ValueError("the lease duration must be whole seconds (the Lease stores them)")
        if not 0 < self.renew_deadline < self.lease_duration:
            raise ValueError("the renew deadline must be > 0 and shorter than the lease duration")
        if not 0 < self.retry_period * JITTER < self.renew_deadline:
            raise ValueError(f"the retry period * {JITTER} must be shorter than the renew deadline")


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says (``spec``), and the ``resourceVersion`` a write must carry."""

    holder: str
    lease_duration: float
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str | None

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        """The record of a Lease object as the API server returns it."""
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    def key(self) -> tuple[object, ...]:
        """What changes when anyone writes the Lease (its spec, or its version)."""
        return (self.holder, self.lease_duration, self.acquire_time, self.renew_time,
                self.transitions, self.resource_version)  # fmt: skip


@dataclass(frozen=True)
class Observation:
    """A record, and when (this process's monotonic clock) it was first seen as it is."""

    record: LeaseRecord
    since: float


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """The observation after reading ``record`` at ``now``: the clock restarts only when the
    record changed (the holder renewed, or someone else wrote it)."""
    if previous is not None and previous.record.key() == record.key():
        return previous
    return Observation(record, now)


class Action(enum.Enum):
    """What a candidate does with the Lease it read."""

    CREATE = "create"  # there is no Lease yet
    ACQUIRE = "acquire"  # free (released) or expired: take it over
    RENEW = "renew"  # ours: refresh renewTime
    WAIT = "wait"  # someone else holds it and renews it


def decide(observation: Observation | None, identity: str, now: float) -> Action:
    """The next step of candidate ``identity`` at monotonic time ``now``, given the Lease
    as last observed (None: there is none)."""
    if observation is None:
        return Action.CREATE
    record = observation.record
    if record.holder == identity:
        return Action.RENEW
    if not record.holder:
        return Action.ACQUIRE
    if now - observation.since >= record.lease_duration:
        return Action.ACQUIRE
    return Action.WAIT


def lost_leadership(last_renewed: float, now: float, timings: LeaseTimings) -> bool:
    """Whether a leader whose last successful write was at ``last_renewed`` must stop: past
    the renew deadline another candidate may soon see the Lease as expired."""
    return now - last_renewed > timings.renew_deadline


def microtime(moment: datetime) -> str:
    """A ``metav1.MicroTime`` (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(
    identity: str, previous: LeaseRecord | None, timings: LeaseTimings, moment: datetime
) -> dict[str, Any]:
    """The spec that makes ``identity`` the holder (a renewal keeps acquireTime; a takeover
    counts a transition)."""
    stamp = microtime(moment)
    ours = previous is not None and previous.holder == identity
    transitions = previous.transitions if previous is not None else 0
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": int(timings.lease_duration),
        "acquireTime": previous.acquire_time if ours and previous else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions + (1 if previous and previous.holder and not ours else 0),
    }


def release_spec(previous: LeaseRecord, moment: datetime) -> dict[str, Any]:
    """client-go's release: no holder, a 1 s lease, so the next candidate takes it at once."""
    stamp = microtime(moment)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": previous.transitions,
    }


def default_identity(env: Mapping[str, str] | None = None) -> str:
    """The pod's name (``POD_NAME`` from the downward API, else the host name) and a random
    suffix: a restarted process is a new candidate, never mistaken for the old leader."""
    env = os.environ if env is None else env
    base = env.get("POD_NAME", "").strip() or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


def default_namespace(env: Mapping[str, str] | None = None) -> str:
    """The pod's namespace: ``POD_NAMESPACE``, else the ServiceAccount's namespace file,
    else ``default``."""
    env = os.environ if env is None else env
    found = env.get("POD_NAMESPACE", "").strip()
    if not found and SERVICE_ACCOUNT_NAMESPACE.is_file():
        found = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return found or "default"


class LeaderElector:
    """One candidate for one Lease: :meth:`acquire` waits until it leads, :meth:`hold`
    renews until it stops leading, :meth:`release` hands the Lease on."""

    def __init__(
        self,
        api: KubeAPI,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timings = timings or LeaseTimings()
        self._clock, self._sleep = clock, sleep
        self._seen: Observation | None = None
        self._renewed: float | None = None  # when the last write of ours began, while leader

    @property
    def leading(self) -> bool:
        """Whether this candidate holds the Lease (as of its last successful write)."""
        return self._renewed is not None

    @property
    def path(self) -> str:
        """The Lease's object path."""
        return object_path(LEASE_API_VERSION, "leases", self.namespace, self.name)

    async def try_acquire_or_renew(self) -> bool:
        """One try: read the Lease, then create, take over or renew it if :func:`decide`
        says so. True if this candidate leads afterwards."""
        started = self._clock()
        found = await self.api.get(self.path)
        self._seen = None if found is None else observe(self._seen, LeaseRecord.of(found), started)
        action = decide(self._seen, self.identity, started)
        if action is Action.WAIT:
            self._renewed = None
            return False
        previous = self._seen.record if self._seen else None
        spec = lease_spec(self.identity, previous, self.timings, datetime.now(UTC))
        written: dict[str, Any] | None
        if action is Action.CREATE:
            meta = {"name": self.name, "namespace": self.namespace}
            body = {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": meta,
                "spec": spec,
            }
            collection = object_path(LEASE_API_VERSION, "leases", self.namespace)
            written = await self.api.create(collection, body)
        else:
            written = await self._write(spec)
        if written is None:  # someone created it first, or it is gone: read again next time
            self._renewed = None
            return False
        if action is not Action.RENEW:
            logger.info("Leading as %s (Lease %s/%s)", self.identity, self.namespace, self.name)
        self._seen = observe(self._seen, LeaseRecord.of(written), started)
        self._renewed = started
        return True

    async def _write(self, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """A merge patch guarded by the version it was decided on; None on a conflict (the
        API server's 409: someone wrote the Lease since it was read)."""
        assert self._seen is not None
        guard = {"resourceVersion": self._seen.record.resource_version}
        try:
            return await self.api.merge_patch(self.path, {"metadata": guard, "spec": spec})
        except KubeError as err:
            if err.status == 409:
                return None
            raise

    async def _try(self, timeout: float) -> bool:
        """One :meth:`try_acquire_or_renew` within ``timeout``; False on any failure, logged:
        the API server unreachable, refused or slow is a failed try like any other, and the
        deadline decides when failed tries mean a lost Lease."""
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout)
        except Exception as err:
            logger.warning("Lease %s/%s: %s", self.namespace, self.name, err or type(err).__name__)
            return False

    def _pause(self) -> Awaitable[None]:
        return self._sleep(self.timings.retry_period * random.uniform(1.0, JITTER))

    async def acquire(self) -> None:
        """Return once this candidate leads (tries every retry period, jittered)."""
        logger.info("Waiting for Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not await self._try(self.timings.renew_deadline):
            await self._pause()

    async def hold(self) -> str:
        """Renew every retry period while leading; return why leadership was lost (the Lease
        went to someone else, or the renew deadline passed without a successful renewal)."""
        while True:
            await self._sleep(self.timings.retry_period)
            last = self._renewed
            if last is None:
                return "not leading"
            remaining = self.timings.renew_deadline - (self._clock() - last)
            if await self._try(max(remaining, 0.01)):
                continue
            if self._seen is not None and self._seen.record.holder not in ("", self.identity):
                return f"the Lease is held by {self._seen.record.holder}"
            if lost_leadership(last, self._clock(), self.timings):
                return f"no renewal for {self.timings.renew_deadline:g} s (renew deadline)"
            self._renewed = last  # a failed try is not a loss until the deadline passes

    async def release(self) -> None:
        """Hand the Lease on (graceful stop): the next candidate takes it at its next try."""
        if self._renewed is None or self._seen is None:
            return
        self._renewed = None
        try:
            await asyncio.wait_for(self._release(), self.timings.renew_deadline)
        except Exception as err:  # the Lease then expires: the next leader only waits longer
            logger.warning("Could not release Lease %s/%s: %s", self.namespace, self.name, err)

    async def _release(self) -> None:
        """On a conflict, read again: a renewal cancelled in flight may have been written
        (a newer version, still ours). Released only while the Lease still names us."""
        for _ in range(3):
            assert self._seen is not None
            if await self._write(release_spec(self._seen.record, datetime.now(UTC))):
                logger.info("Released Lease %s/%s", self.namespace, self.name)
                return
            found = await self.api.get(self.path)
            if found is None or LeaseRecord.of(found).holder != self.identity:
                return
            self._seen = Observation(LeaseRecord.of(found), self._clock())
