"""A minimal Kubernetes API client on aiohttp: the :class:`~.kube.KubeAPI` calls the
controller makes itself.

kopf watches and posts Events; creating and listing children, reading a child, a Secret or a
resource by name and patching status go through this client, with the credentials of the
``@kopf.on.login`` handler (``kopf.ConnectionInfo``). No dependency on the ``kubernetes``
package.

Every call is retried, a bounded number of times, when the API server could not take it:
429 Too Many Requests (API Priority and Fairness shedding load, or a webhook's rate limit),
5xx (an apiserver restarting behind its load balancer, etcd leader election), a refused or
dropped connection and a timeout; the wait honours ``Retry-After`` (whole seconds, as the
API server sends it) and otherwise backs off exponentially with full jitter, as client-go's
``WithRetry`` and controller-runtime's rate limiters do. Retrying a create that had in fact
succeeded answers 409, which :meth:`KubeClient.create` already reads as "exists".
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kopf

from stevie_operator.framework.kube import KubeError

__all__ = ["RETRIED_STATUSES", "KubeClient", "RetryPolicy"]

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers that say "not now" rather than "no": the request may succeed if sent again."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a call the API server could not take.

    ``attempts`` is the total number of tries (1: no retry). The n-th wait (from 0) is
    ``Retry-After`` if the answer has one (at most ``max_delay``), else a uniformly random
    time up to ``min(max_delay, base * 2**n)`` (full jitter: many reconciles refused at once
    do not come back at once). With the defaults a call gives up after about 6 s of backoff
    at worst (0.2 + 0.4 + 0.8 + 1.6 + 3.2), well inside kopf's handler retry (5 s later)."""

    attempts: int = 6
    base: float = 0.2
    max_delay: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: the API server sends seconds; back off instead
        return random.uniform(0.0, min(self.max_delay, self.base * 2**attempt))


class _RetryableError(Exception):
    """A try that may be repeated (internal)."""

    def __init__(self, error: Exception, retry_after: str | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


class KubeClient:
    """An aiohttp session bound to one API server and its credentials."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.info = info
        self.retry = retry or RetryPolicy()
        self._server = info.server.rstrip("/")
        headers = {"Accept": "application/json", **info.as_http_headers()}
        ssl: Any = info.as_ssl_context() if self._server.startswith("https") else None
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(ssl=ssl) if ssl is not None else None,
            trust_env=info.trust_env,
        )

    async def close(self) -> None:
        """Close the session."""
        await self._session.close()

    @property
    def closed(self) -> bool:
        """Whether the session was closed."""
        return self._session.closed

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One call, retried per :attr:`retry`; the last error is raised when every try
        failed (a :class:`KubeError`, or aiohttp's / asyncio's for a connection that never
        answered)."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        for attempt in range(self.retry.attempts):
            try:
                return await self._try(method, path, data, headers)
            except _RetryableError as again:
                if attempt + 1 >= self.retry.attempts:
                    raise again.error from None
                await self.retry.sleep(self.retry.delay(attempt, again.retry_after))
        raise AssertionError("unreachable: RetryPolicy.attempts must be >= 1")

    async def _try(
        self, method: str, path: str, data: str | None, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method, self._server + path, data=data, headers=headers
            ) as response:
                text = await response.text()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientConnectionError) as err:
            raise _RetryableError(err) from err
        if status >= 400:
            try:
                message = str(json.loads(text).get("message") or text)
            except (ValueError, AttributeError):
                message = text
            error = KubeError(status, message.strip()[:500])
            if status in RETRIED_STATUSES:
                raise _RetryableError(error, retry_after)
            raise error
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            raise KubeError(status, f"not JSON: {text[:200]}") from None
        return payload if isinstance(payload, dict) else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None if there is none (404)."""
        try:
            return await self._call("GET", path)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    async def list(
        self, path: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The items of the collection at ``path`` with all of ``labels`` (filtered here too:
        a selector is a request, and emulators ignore it)."""
        wanted = dict(labels or {})
        query = urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in wanted.items())})
        sep = "&" if "?" in path else "?"  # a path may carry a fieldSelector already
        payload = await self._call("GET", path + (sep + query if wanted else ""))
        items = payload.get("items")
        return [
            item
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict)
            and wanted.items() <= ((item.get("metadata") or {}).get("labels") or {}).items()
        ]

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create ``body`` in the collection at ``path``; None if it already exists (409)."""
        try:
            return await self._call("POST", path, body)
        except KubeError as err:
            if err.status == 409:
                return None
            raise

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply a JSON merge patch; None if the object is gone (404)."""
        try:
            return await self._call("PATCH", path, patch, "application/merge-patch+json")
        except KubeError as err:
            if err.status == 404:
                return None
            raise
