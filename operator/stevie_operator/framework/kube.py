"""The Kubernetes API as the controller sees it: four calls on object paths.

:class:`KubeAPI` is what :func:`~.controller.drive` talks to. The operator's implementation
is :class:`~.client.KubeClient` (HTTP to the API server); ``stevie run``'s is
:class:`stevie_operator.local.cluster.LocalCluster` (in memory, Jobs run as processes). Paths
are the API server's own (:func:`object_path`), so both read the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode

__all__ = ["KubeAPI", "KubeError", "ObjectPath", "field_selector", "object_path", "parse_path"]


class KubeError(Exception):
    """An API call failed: ``status`` is the HTTP status, the message Kubernetes' own."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class KubeAPI(Protocol):
    """The calls the controller makes itself (kopf does the watching)."""

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None if there is none (404)."""
        ...

    async def list(
        self, path: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The items of the collection at ``path`` that carry all of ``labels``."""
        ...

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create ``body`` in the collection at ``path``; None if it already exists (409)."""
        ...

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply a JSON merge patch; None if the object is gone (404)."""
        ...


def object_path(
    api_version: str,
    plural: str,
    namespace: str,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>[/<sub>]]`` (``/api/v1`` for
    the core group)."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{root}/namespaces/{quote(namespace)}/{plural}"
    if name is not None:
        path += f"/{quote(name)}"
        if subresource:
            path += f"/{subresource}"
    return path


def field_selector(path: str, fields: Mapping[str, str]) -> str:
    """A collection path whose LIST the API server filters by field (``involvedObject.uid``
    of Events). A request, like a label selector: emulators ignore it, so the caller
    filters what comes back too (:func:`parse_path` drops the query)."""
    selector = ",".join(f"{key}={value}" for key, value in fields.items())
    return f"{path}?{urlencode({'fieldSelector': selector})}"


@dataclass(frozen=True)
class ObjectPath:
    """An :func:`object_path`, taken apart."""

    api_version: str
    plural: str
    namespace: str
    name: str | None = None
    subresource: str | None = None


def parse_path(path: str) -> ObjectPath:
    """The inverse of :func:`object_path`; ValueError for any other path."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) >= 5:
        api_version, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 6:
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ValueError(f"not a namespaced object path: {path}")
    if rest[0] != "namespaces" or len(rest) > 5:
        raise ValueError(f"not a namespaced object path: {path}")
    names = [unquote(p) for p in rest[1:]]
    return ObjectPath(
        api_version=api_version,
        namespace=names[0],
        plural=names[1],
        name=names[2] if len(names) > 2 else None,
        subresource=names[3] if len(names) > 3 else None,
    )
