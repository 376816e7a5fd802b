"""The real operator (kopf, via KopfRunner in a thread) against kmock over HTTP on loopback.

kmock is an emulator, not a cluster: the subclass below fills uid / resourceVersion /
generation / generateName as the API server would; Job progress is simulated by patching
the Job's status; nothing runs the pods.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import jsonpatch
import kmock
import kopf
import pytest
import yaml
from kopf.testing import KopfRunner

from stevie_operator.handlers import register
from stevie_trainer import storage

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = yaml.safe_load((REPO / "examples" / "trainingrun-quickstart.yaml").read_text())
TR = "/apis/stevie.dev/v1alpha1/namespaces/default/trainingruns"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
EVENTS = "/api/v1/namespaces/default/events"
T = TypeVar("T")


class Emulator(kmock.KubernetesEmulator):
    """kmock plus what an API server does that kmock leaves out: metadata (uid,
    resourceVersion, generation, generateName) and 422 for a failed JSON-patch test."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.created: Counter[str] = Counter()
        self._versions = itertools.count(1)

    async def _handle(self, request: Any) -> Any:
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
            emulator.resources["stevie.dev/v1alpha1/trainingruns"] = kmock.ResourceInfo(
                kind="TrainingRun",
                singular="trainingrun",
                namespaced=True,
                shortnames={"tr"},
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

    def events(self, name: str) -> list[tuple[str, str, str]]:
        items = (self.api("GET", EVENTS) or {}).get("items", [])
        return [
            (e["type"], e["reason"], e["message"])
            for e in items
            if e.get("involvedObject", {}).get("name") == name
            and e.get("involvedObject", {}).get("kind") == "TrainingRun"
        ]


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


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    with Cluster() as c:
        monkeypatch.setenv("STEVIE_KUBE_SERVER", c.url)
        monkeypatch.setenv("STEVIE_STORAGE_URI", (tmp_path / "data").as_uri())
        monkeypatch.setenv("STEVIE_METRICS_PORT", "0")
        yield c


def operator() -> KopfRunner:
    registry = kopf.OperatorRegistry()
    register(registry, interval=1.0)
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


def training_run(name: str, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(QUICKSTART)
    doc["metadata"] = {"name": name, "namespace": "default"}
    doc["spec"].update(spec)
    return doc


def phase_is(cluster: Cluster, name: str, phase: str) -> Callable[[], dict[str, Any] | None]:
    def fetch() -> dict[str, Any] | None:
        body = cluster.api("GET", f"{TR}/{name}")
        status = (body or {}).get("status") or {}
        return status if status.get("phase") == phase else None

    return fetch


def handled(cluster: Cluster, name: str) -> bool:
    annotations = (
        (cluster.api("GET", f"{TR}/{name}") or {}).get("metadata", {}).get("annotations", {})
    )
    return "stevie.dev/last-handled-configuration" in annotations


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_training_run_job_progress_success(cluster: Cluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "data" / "default" / "trainingruns" / "quick"
    with operator() as runner:
        created = cluster.api("POST", TR, training_run("quick"))
        job = wait_for(lambda: cluster.api("GET", f"{JOBS}/quick-train"), what="the Job")
        # The Job: owned by the run, the trainer command, the storage volume.
        assert job["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "stevie.dev/v1alpha1",
                "kind": "TrainingRun",
                "name": "quick",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == ["--spec-json", "$(STEVIE_SPEC)", "--out", run_dir.as_uri()]
        spec_env = next(e["value"] for e in container["env"] if e["name"] == "STEVIE_SPEC")
        assert json.loads(spec_env)["totalTimesteps"] == 20480
        assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
        status = wait_for(phase_is(cluster, "quick", "Pending"), what="Pending")
        assert status["jobName"] == "quick-train"
        assert status["observedGeneration"] == 1
        assert conditions(status)["Progressing"] in (("True", "JobCreated"), ("True", "JobPending"))

        # The pod runs and reports progress.
        storage.write_text(
            storage.join(run_dir.as_uri(), "progress.json"),
            json.dumps({"timesteps": 10240, "total_timesteps": 20480, "stage": None}),
        )
        started = "2025-01-01T00:00:00Z"
        cluster.api(
            "PATCH", f"{JOBS}/quick-train/status", {"status": {"active": 1, "startTime": started}}
        )
        status = wait_for(phase_is(cluster, "quick", "Running"), what="Running")
        assert status["progress"] == {"timesteps": 10240, "totalTimesteps": 20480, "percent": 50}
        assert status["startTime"] == started

        # The trainer writes result.json and exits 0.
        result = {
            "status": "succeeded",
            "timesteps": 20480,
            "validation": {"sharpe": 1.25, "sortino": 2.0, "total_return": 0.1, "trades": 7},
            "test": {"agent": {"sharpe": 0.5, "max_drawdown": 0.2}, "random": {"sharpe": -1}},
            "artifacts": {"model": run_dir.as_uri() + "/model.zip"},
        }
        storage.write_text(storage.join(run_dir.as_uri(), "result.json"), json.dumps(result))
        done = "2025-01-01T01:00:00Z"
        cluster.api(
            "PATCH",
            f"{JOBS}/quick-train/status",
            {
                "status": {
                    "active": None,
                    "succeeded": 1,
                    "completionTime": done,
                    "conditions": [{"type": "Complete", "status": "True"}],
                }
            },
        )
        status = wait_for(phase_is(cluster, "quick", "Succeeded"), what="Succeeded")
        assert status["validation"] == {
            "sharpe": 1.25,
            "sortino": 2.0,
            "totalReturn": 0.1,
            "trades": 7,
        }
        assert status["test"] == {"sharpe": 0.5, "maxDrawdown": 0.2}
        assert status["artifacts"]["model"] == run_dir.as_uri() + "/model.zip"
        assert status["progress"]["percent"] == 100
        assert status["completionTime"] == done
        assert conditions(status) == {
            "Ready": ("True", "TrainingSucceeded"),
            "Progressing": ("False", "TrainingSucceeded"),
            "Degraded": ("False", "AsExpected"),
            "Succeeded": ("True", "TrainingSucceeded"),
            "Failed": ("False", "TrainingSucceeded"),
        }
        reasons = [
            reason
            for _, reason, _ in wait_for(
                lambda: (
                    [e for e in cluster.events("quick") if e[1] == "TrainingSucceeded"]
                    and cluster.events("quick")
                ),
                what="events",
            )
        ]
        assert reasons == ["JobCreated", "TrainingStarted", "TrainingSucceeded"]
    assert runner.exception is None
    assert cluster.emulator is not None
    assert cluster.emulator.created["jobs/quick-train"] == 1


def test_failure_restart_and_invalid_spec(cluster: Cluster) -> None:
    with operator() as first:
        cluster.api("POST", TR, training_run("flaky"))
        wait_for(lambda: cluster.api("GET", f"{JOBS}/flaky-train"), what="the Job")
        wait_for(phase_is(cluster, "flaky", "Pending"), what="Pending")
        # Stop only once kopf has recorded the creation as handled: a timer that kopf spawns
        # after that, while the operator is already stopping, would hang the exit for 5 s.
        wait_for(lambda: handled(cluster, "flaky"), what="the creation handled")
    assert first.exception is None

    # A restarted operator resumes the run: it sees the Job and creates no other.
    with operator() as second:
        cluster.api(
            "PATCH",
            f"{JOBS}/flaky-train/status",
            {
                "status": {
                    "failed": 4,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        }
                    ],
                }
            },
        )
        status = wait_for(phase_is(cluster, "flaky", "Failed"), what="Failed")
        assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")
        assert conditions(status)["Degraded"] == ("True", "BackoffLimitExceeded")
        assert "backoff limit" in status["message"]
        events = wait_for(
            lambda: [e for e in cluster.events("flaky") if e[0] == "Warning"], what="warning"
        )
        assert [e[1] for e in events] == ["BackoffLimitExceeded"]

        # An invalid spec: a clear condition and Event, no Job, no crash.
        bad = training_run("broken", totalTimesteps=0)
        bad["spec"]["env"]["window"] = 1
        cluster.api("POST", TR, bad)
        status = wait_for(phase_is(cluster, "broken", "Failed"), what="InvalidSpec")
        failed = next(c for c in status["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "InvalidSpec"
        assert "spec.totalTimesteps: must be > 0 (got 0)" in failed["message"]
        assert "spec.env.window" in failed["message"]
        wait_for(lambda: [e for e in cluster.events("broken") if e[1] == "InvalidSpec"])
        assert cluster.api("GET", f"{JOBS}/broken-train") is None
    assert second.exception is None
    assert cluster.emulator is not None
    assert cluster.emulator.created["jobs/flaky-train"] == 1
    assert [e[1] for e in cluster.events("flaky")].count("JobCreated") == 1
