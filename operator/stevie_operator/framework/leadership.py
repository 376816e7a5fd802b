"""Leader election's kopf side: the Lease (:mod:`.leader`) taken before kopf watches and
released after it stops; what app.py's startup and cleanup handlers call.

- :func:`take_lead` blocks until this process holds the Lease, answering ``/healthz`` while
  it waits (kopf's liveness endpoint starts only after the startup handlers), then renews it
  in a background task; losing it calls ``on_lost`` (by default :func:`exit_process`);
- :func:`step_down` stops renewing and releases the Lease, so the next leader starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import kopf
from aiohttp import web

from stevie_operator.framework.client import KubeClient, RetryPolicy
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kube import KubeError
from stevie_operator.framework.leader import (
    LeaderElector,
    LeaseTimings,
    default_identity,
    default_namespace,
)

__all__ = ["Leadership", "connection", "exit_process", "step_down", "take_lead"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def exit_process(reason: str) -> None:
    """client-go's ``OnStoppedLeading``: exit at once, with no graceful shutdown in which a
    handler could still write while the next leader starts. The pod restarts as a follower."""
    logger.critical("Lost the leader Lease (%s): exiting, so that nothing runs twice", reason)
    logging.shutdown()
    os._exit(1)


def connection(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """The credentials: ``STEVIE_KUBE_SERVER`` as is, else the pod's ServiceAccount, else the
    kubeconfig."""
    server = OperatorConfig.from_env().kube_server
    if server:
        return kopf.ConnectionInfo(server=server, default_namespace="default")
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )


@contextlib.asynccontextmanager
async def standby_health(port: int) -> AsyncIterator[None]:
    """``GET /healthz`` -> 200 on ``port`` (0: nothing served) while a follower waits: kopf's
    liveness endpoint starts only after the startup handlers, and a probe failing all the
    while would restart every follower. Closed before kopf binds its own there."""
    if port <= 0:
        yield
        return

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"leader": False, "state": "waiting for the Lease"})

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


class _LeaseClient:
    """The Lease's calls (:class:`~.framework.kube.KubeAPI`) on their own client, logging in
    again after a 401 as kopf does (a rotated ServiceAccount token): the Lease is renewed
    for the process's whole life, and it needs no login of kopf's (it starts before one)."""

    def __init__(self, settings: kopf.OperatorSettings) -> None:
        self._settings = settings
        self._client: KubeClient | None = None

    async def _fresh(self, again: bool = False) -> KubeClient:
        if self._client is None or again:
            info = connection(self._settings)
            if info is None:
                raise kopf.PermanentError("leader election: no credentials for the API server")
            await self.close()
            # Short calls, one retry: a renewal must fit in the renew deadline (10 s), and
            # the elector tries again every retry period anyway.
            self._client = KubeClient(info, timeout=5.0, retry=RetryPolicy(attempts=2))
        return self._client

    async def _retry(self, call: Callable[[KubeClient], Awaitable[T]]) -> T:
        try:
            return await call(await self._fresh())
        except KubeError as err:
            if err.status != 401:
                raise
            return await call(await self._fresh(again=True))

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self._retry(lambda c: c.get(path))

    async def list(self, path: str, labels: Mapping[str, str] | None = None) -> list[Any]:
        return await self._retry(lambda c: c.list(path, labels))

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self._retry(lambda c: c.create(path, body))

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self._retry(lambda c: c.merge_patch(path, patch))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


@dataclass
class Leadership:
    """A held Lease: its elector, the client it writes with, the task that renews it."""

    elector: LeaderElector
    client: _LeaseClient
    renewing: asyncio.Task[None]


async def _renew(elector: LeaderElector, on_lost: Callable[[str], None]) -> None:
    try:
        reason = await elector.hold()
    except Exception as err:  # a bug in renewing is a lost Lease too: nobody renews it now
        reason = f"renewing failed: {err!r}"
    on_lost(reason)


async def take_lead(
    settings: kopf.OperatorSettings,
    config: OperatorConfig,
    identity: str | None,
    on_lost: Callable[[str], None],
) -> Leadership:
    """Block until this process holds the Lease, then renew it in the background."""
    client = _LeaseClient(settings)
    timings = LeaseTimings(config.lease_duration, config.renew_deadline, config.retry_period)
    namespace = config.leader_election_namespace or default_namespace()
    lease = config.leader_election_lease
    elector = LeaderElector(client, namespace, lease, identity or default_identity(), timings)
    try:
        async with standby_health(config.leader_election_health_port):
            await elector.acquire()
    except BaseException:  # stopped while waiting: nothing to release
        await client.close()
        raise
    renewing = asyncio.create_task(_renew(elector, on_lost), name="stevie leader lease")
    return Leadership(elector, client, renewing)


async def step_down(held: Leadership) -> None:
    """Stop renewing and release the Lease (after kopf stopped every handler)."""
    held.renewing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await held.renewing
    await held.elector.release()
    await held.client.close()
