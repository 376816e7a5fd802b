"""The real operator (kopf, via KopfRunner in a thread) against kmock over HTTP on loopback.

kmock is an emulator, not a cluster: :class:`Emulator` fills uid / resourceVersion /
generation / generateName as the API server would; Job progress is simulated by patching
the Job's status; nothing runs the pods. Shared by the e2e tests of every kind (the
``cluster`` fixture is in conftest.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import jsonpatch
import kmock
import kopf
from kopf.testing import KopfRunner

from stevie_api import API_VERSION
from stevie_api.kinds import KINDS
from stevie_operator.app import register

EVENTS = "/api/v1/namespaces/default/events"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
LEASE_GROUP = "coordination.k8s.io"  # leader election's Leases
T = TypeVar("T")


class Call(NamedTuple):
    """One request the emulator served, as RBAC sees it (``group`` "" is the core group;
    ``resource`` None for a non-resource URL such as discovery)."""

    method: str
    action: str | None
    group: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    user_agent: str


class Emulator(kmock.KubernetesEmulator):
    """kmock plus what an API server does that kmock leaves out: metadata (uid,
    resourceVersion, generation, generateName), 422 for a failed JSON-patch test, and 409 for
    a merge patch whose ``metadata.resourceVersion`` is not the object's (a precondition: the
    Lease of leader election relies on it). ``calls`` records every request (the RBAC test
    derives the permissions from them)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.created: Counter[str] = Counter()
        self.calls: list[Call] = []
        self.last_write = time.monotonic()
        self._versions = itertools.count(1)
        self._writing = asyncio.Lock()  # a precondition is checked and applied at once

    def _record(self, request: Any) -> None:
        res = request.resource
        action = getattr(request.action, "value", None)
        self.calls.append(
            Call(
                method=str(getattr(request.method, "value", request.method)).upper(),
                action=str(action) if action is not None else None,
                group=res.group if res is not None else None,
                resource=res.plural if res is not None else None,
                subresource=request.subresource,
                namespace=request.namespace,
                name=request.name,
                user_agent=str(request.headers.get("User-Agent", "")),
            )
        )

    async def _handle(self, request: Any) -> Any:
        self._record(request)
        if request.action not in (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            return await self._serve(request)
        if getattr(request.resource, "group", None) != LEASE_GROUP:  # renewals are no work
            self.last_write = time.monotonic()
        async with self._writing:
            self._check_precondition(request)
            return await self._serve(request)

    def _check_precondition(self, request: Any) -> None:
        """409 Conflict for a stale ``metadata.resourceVersion`` in a merge patch, as the API
        server answers (kmock applies the patch regardless)."""
        data = request.data
        if request.action != kmock.action.UPDATE or not isinstance(data, dict):
            return
        wanted = (data.get("metadata") or {}).get("resourceVersion")
        key = (request.resource, request.namespace, request.name)
        if wanted is None or key not in self.objects:
            return
        current = self.objects[key].get("metadata", {}).get("resourceVersion")
        if str(wanted) != str(current):
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=f"the object has been modified (resourceVersion {current}, not {wanted})",
            )

    async def _serve(self, request: Any) -> Any:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("namespace", request.namespace)
                meta["uid"] = str(uuid.uuid4())
                meta["generation"] = 1
                meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                meta["resourceVersion"] = str(next(self._versions))
                self.created[f"{request.resource.plural}/{meta['name']}"] += 1
            elif request.action == kmock.action.UPDATE:
                meta["resourceVersion"] = str(next(self._versions))
                key = (request.resource, request.namespace, request.name)
                if "spec" in data and request.subresource is None and key in self.objects:
                    old = self.objects[key].get("metadata", {}).get("generation") or 1
                    meta["generation"] = old + 1
        elif request.action == kmock.action.UPDATE and isinstance(data, list):  # JSON patch
            version = str(next(self._versions))
            data.append({"op": "replace", "path": "/metadata/resourceVersion", "value": version})
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as err:  # kopf's optimistic concurrency
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(err)) from None


class Cluster:
    """kmock served from its own thread and loop; the test talks to it over HTTP."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: Emulator | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources.load_bundled()
            for info in KINDS.values():  # the project's kinds, as their CRDs declare them
                emulator.resources[f"{API_VERSION}/{info.plural}"] = kmock.ResourceInfo(
                    kind=info.kind,
                    singular=info.singular,
                    namespaced=True,
                    shortnames={info.short_name},
                    verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
                    subresources={"status"},
                )
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Cluster:
        self._thread.start()
        assert self._ready.wait(10), "kmock did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def events(self, name: str, kind: str = "TrainingRun") -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events posted on one object, oldest first."""
        items = (self.api("GET", EVENTS) or {}).get("items", [])
        return [
            (e["type"], e["reason"], e["message"])
            for e in items
            if e.get("involvedObject", {}).get("name") == name
            and e.get("involvedObject", {}).get("kind") == kind
        ]

    def settle(self, quiet: float = 0.3, timeout: float = 5.0) -> None:
        """Wait until nothing (but Lease renewals) was written for ``quiet`` s: no event left to
        process. Stop an operator only then: a timer that kopf spawns while it is already
        stopping would hang the exit for 5 s."""
        assert self.emulator is not None
        emulator = self.emulator
        wait_for(lambda: time.monotonic() - emulator.last_write > quiet, timeout, "quiet")

    def created(self, key: str) -> int:
        """How many times ``plural/name`` was created."""
        assert self.emulator is not None
        return self.emulator.created[key]


def wait_for(fetch: Callable[[], T | None], timeout: float = 10.0, what: str = "") -> T:
    """Poll ``fetch`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or fetch}")
        time.sleep(0.05)


def operator(registry: kopf.OperatorRegistry | None = None, **options: Any) -> KopfRunner:
    """Stevie's operator (every kind), ready to run in a thread with ``with operator():``;
    ``options`` go to :func:`stevie_operator.app.register` (e.g. a leader ``identity``)."""
    registry = registry or kopf.OperatorRegistry()
    register(registry, **({"interval": 1.0} | options))
    settings = kopf.OperatorSettings()
    settings.networking.request_timeout = 10
    # Per-object workers linger this long after their last event, and a stopping operator
    # waits for them: kopf's 5 s default would dominate the test's duration.
    settings.queueing.idle_timeout = 0.5
    return KopfRunner(
        ["run", "--standalone", "--all-namespaces"],
        registry=registry,
        settings=settings,
        timeout=30,
    )


def handled(cluster: Cluster, path: str, spec: str = "") -> bool:
    """Whether kopf recorded the object's spec (one containing ``spec``) as handled, in its
    diff-base annotation. Stop an operator only then: a timer that kopf spawns while it
    is already stopping would hang the exit for 5 s."""
    annotations = (cluster.api("GET", path) or {}).get("metadata", {}).get("annotations", {})
    return spec in annotations.get("stevie.dev/last-handled-configuration", "\0")


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Condition type -> (status, reason)."""
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
