"""KubeClient's retries against a tiny aiohttp server that answers from a script: 429 and
5xx are retried (Retry-After honoured), other errors are not, and the tries are bounded."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import kopf
import pytest
from aiohttp import web

from stevie_operator.framework.client import KubeClient, RetryPolicy
from stevie_operator.framework.kube import KubeError

Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers
PATH = "/apis/batch/v1/namespaces/default/jobs/j"


def ok(body: dict[str, Any] | None = None) -> Answer:
    return 200, body or {"metadata": {"name": "j"}}, {}


def refused(status: int, retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return status, {"kind": "Status", "message": f"refused with {status}"}, headers


class Sleeps:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@asynccontextmanager
async def server(answers: list[Answer], seen: list[str]) -> AsyncIterator[str]:
    """An API server that gives ``answers`` in order (the last one again once they run out)."""

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.method)
        status, body, headers = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client(url: str, sleeps: Sleeps, attempts: int = 6) -> KubeClient:
    info = kopf.ConnectionInfo(server=url, default_namespace="default")
    return KubeClient(info, timeout=5, retry=RetryPolicy(attempts=attempts, sleep=sleeps))


def run(
    answers: list[Answer], call: Callable[[KubeClient], Any], attempts: int = 6
) -> tuple[Any, list[str], list[float]]:
    """(what the call returned or raised, the methods the server saw, the waits)."""
    seen: list[str] = []
    sleeps = Sleeps()

    async def scenario() -> Any:
        async with server(answers, seen) as url:
            kube = client(url, sleeps, attempts)
            try:
                return await call(kube)
            except Exception as err:  # returned, for the test to look at
                return err
            finally:
                await kube.close()

    return asyncio.run(scenario()), seen, sleeps.delays


def test_429_then_200_waits_as_long_as_retry_after_says() -> None:
    found, seen, delays = run([refused(429, "3"), ok()], lambda k: k.get(PATH))
    assert found == {"metadata": {"name": "j"}}
    assert seen == ["GET", "GET"] and delays == [3.0]


def test_5xx_are_retried_with_growing_jittered_backoff() -> None:
    answers = [refused(503), refused(500), refused(502), refused(504), ok()]
    found, seen, delays = run(answers, lambda k: k.merge_patch(PATH, {"spec": {}}))
    assert found == {"metadata": {"name": "j"}} and seen == ["PATCH"] * 5
    policy = RetryPolicy()
    assert all(0 <= d <= policy.base * 2**n for n, d in enumerate(delays)) and len(delays) == 4


def test_tries_are_bounded_and_the_last_error_is_raised() -> None:
    found, seen, delays = run([refused(503)], lambda k: k.get(PATH), attempts=3)
    assert isinstance(found, KubeError) and found.status == 503
    assert "refused with 503" in str(found)
    assert len(seen) == 3 and len(delays) == 2


def test_a_retried_create_that_had_succeeded_reads_as_existing() -> None:
    """The first POST reached etcd but its answer was a 504; the retry finds the object."""
    answers = [refused(504), refused(409)]
    found, seen, _ = run(answers, lambda k: k.create(PATH.rsplit("/", 1)[0], {"kind": "Job"}))
    assert found is None and seen == ["POST", "POST"]


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_errors_are_not_retried(status: int) -> None:
    found, seen, delays = run([refused(status), ok()], lambda k: k.list(PATH))
    assert isinstance(found, KubeError) and found.status == status
    assert seen == ["GET"] and delays == []


def test_a_refused_connection_is_retried_then_raised() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()

    async def scenario() -> None:
        kube = client(f"http://127.0.0.1:{port}", sleeps, attempts=4)
        try:
            with pytest.raises(OSError):  # aiohttp's ClientConnectorError is one
                await kube.get(PATH)
        finally:
            await kube.close()

    asyncio.run(scenario())
    assert len(sleeps.delays) == 3


def test_retry_after_is_capped_and_a_date_falls_back_to_backoff() -> None:
    policy = RetryPolicy(max_delay=10.0)
    assert policy.delay(0, "120") == 10.0
    assert 0 <= policy.delay(2, "Wed, 21 Oct 2015 07:28:00 GMT") <= policy.base * 4
