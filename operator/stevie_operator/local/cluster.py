"""An in-memory Kubernetes API for ``stevie run``: what the controller reads and writes
when there is no cluster.

It holds the resources of the file being run, the children the controller creates, and the
Secrets a resource needs (from the environment, see ``Kind.local_secrets``). Creating a Job
starts it with the :class:`~.launcher.LocalLauncher`; reading a Job reports its process's
status, as the kubelet and the Job controller would. It answers the same
:class:`~stevie_operator.framework.kube.KubeAPI` calls as the real client, on the same paths.
"""

from __future__ import annotations

import base64
import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stevie_api import API_VERSION
from stevie_operator.framework.artifacts import local_uid
from stevie_operator.framework.kube import ObjectPath, parse_path
from stevie_operator.local.launcher import LocalLauncher

__all__ = ["LocalCluster"]

Key = tuple[str, str, str, str]  # api version, plural, namespace, name
LogPlace = Callable[[Mapping[str, Any]], Path | None]  # a Job -> where its output goes


def _apply_merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386: null removes, objects merge, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _apply_merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class LocalCluster:
    """Objects in memory; Jobs as local processes."""

    def __init__(self, launcher: LocalLauncher, log_place: LogPlace) -> None:
        self.launcher = launcher
        self.log_place = log_place
        self.objects: dict[Key, dict[str, Any]] = {}
        self._versions = itertools.count(1)

    # -- what the runner puts in ------------------------------------------------------
    def add(self, api_version: str, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object with the metadata an API server would fill in."""
        doc = copy.deepcopy(dict(body))
        meta = doc.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", self._uid(api_version, plural, doc))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[(api_version, plural, meta["namespace"], meta["name"])] = doc
        return doc

    @staticmethod
    def _uid(api_version: str, plural: str, doc: Mapping[str, Any]) -> str:
        """A resource's uid keys its artifacts (``<name>/<uid>``): a resource of the file
        gets the same one on every run (:func:`.artifacts.local_uid`), so running the file
        again resumes; anything else (a Job) a fresh one, as from an API server."""
        if api_version != API_VERSION:
            return str(uuid.uuid4())
        meta = doc["metadata"]
        return local_uid(str(doc.get("kind") or plural), meta["namespace"], meta["name"])

    def add_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """A Secret, as ``kubectl create secret generic`` would store it (base64 values)."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": encoded,
        }
        self.add("v1", "secrets", body)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """A Secret's value (what a pod's secretKeyRef reads)."""
        secret = self.objects.get(("v1", "secrets", namespace, name))
        raw = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(raw).decode() if isinstance(raw, str) else None

    def obj(
        self, api_version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """An object as stored, Jobs with their processes' status."""
        found = self.objects.get((api_version, plural, namespace, name))
        if found is None:
            return None
        doc = copy.deepcopy(found)
        if plural == "jobs":
            doc["status"] = self.launcher.status(name) or {}
        return doc

    # -- the KubeAPI calls ------------------------------------------------------------
    async def get(self, path: str) -> dict[str, Any] | None:
        p = parse_path(path)
        assert p.name is not None, path
        return self.obj(p.api_version, p.plural, p.namespace, p.name)

    async def list(
        self, path: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        p = parse_path(path)
        wanted = dict(labels or {}).items()
        found = []
        for api_version, plural, namespace, name in list(self.objects):
            if (api_version, plural, namespace) != (p.api_version, p.plural, p.namespace):
                continue
            doc = self.obj(api_version, plural, namespace, name)
            if doc is not None and wanted <= (doc["metadata"].get("labels") or {}).items():
                found.append(doc)
        return found

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        p = parse_path(path)
        name = str(body["metadata"]["name"])
        if (p.api_version, p.plural, p.namespace, name) in self.objects:
            return None  # 409: it exists
        placed = {**body, "metadata": {**body["metadata"], "namespace": p.namespace}}
        doc = self.add(p.api_version, p.plural, placed)
        if p.plural == "jobs":
            secrets = lambda secret, key: self.secret_value(p.namespace, secret, key)  # noqa: E731
            self.launcher.start(doc, secrets, self.log_place(doc))
        return doc

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        p: ObjectPath = parse_path(path)
        assert p.name is not None, path
        found = self.objects.get((p.api_version, p.plural, p.namespace, p.name))
        if found is None:
            return None
        _apply_merge_patch(found, patch)
        found["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(found)
