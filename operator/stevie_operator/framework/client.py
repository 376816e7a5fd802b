"""A minimal Kubernetes API client on aiohttp: the :class:`~.kube.KubeAPI` calls the
controller makes itself.

kopf watches and posts Events; creating and listing children, reading a child, a Secret or a
resource by name and patching status go through this client, with the credentials of the
``@kopf.on.login`` handler (``kopf.ConnectionInfo``). No dependency on the ``kubernetes``
package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kopf

from stevie_operator.framework.kube import KubeError

__all__ = ["KubeClient"]


class KubeClient:
    """An aiohttp session bound to one API server and its credentials."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 30.0) -> None:
        self.info = info
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
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._session.request(
            method, self._server + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                try:
                    message = str(json.loads(text).get("message") or text)
                except (ValueError, AttributeError):
                    message = text
                raise KubeError(response.status, message.strip()[:500])
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                raise KubeError(response.status, f"not JSON: {text[:200]}") from None
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
        query = "?" + urlencode({"labelSelector": ",".join(f"{k}={v}" for k, v in wanted.items())})
        payload = await self._call("GET", path + (query if wanted else ""))
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
