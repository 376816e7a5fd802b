"""The harness of ``bench/operator_scale.py``: kmock tuned for thousands of objects, the
operator in a child process, and what is measured of it (RSS, CPU, reconcile durations, API
calls).

The bench runs this file as the child (``python bench/_scale_harness.py --child OUT``), so the
operator's RSS is its own and kmock, in the bench's process, does not share its interpreter
lock. ``operator_scale.py`` keeps the scenarios (what the bench plays as the cluster) and the
report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

API = "/apis/stevie.dev/v1alpha1/namespaces/default"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
DONE = {
    "succeeded": 1,
    "completionTime": "2025-01-01T00:10:00Z",
    "startTime": "2025-01-01T00:00:00Z",
    "conditions": [{"type": "Complete", "status": "True"}],
}

Scenario = Callable[["World", argparse.Namespace], Any]


# --- the operator, in the child process ---------------------------------------------------


def child(out: str) -> None:
    """Run the operator until stdin closes; then write every reconcile's (start, seconds, kind)."""
    import kopf

    from stevie_operator.app import register
    from stevie_operator.framework import metrics

    samples: list[tuple[float, float, str]] = []
    timed = metrics.OperatorMetrics.reconciling

    @contextlib.contextmanager
    def reconciling(self: Any, kind: str) -> Iterator[None]:
        start, wall = time.perf_counter(), time.time()
        try:
            with timed(self, kind):
                yield
        finally:
            samples.append((wall, time.perf_counter() - start, kind))

    metrics.OperatorMetrics.reconciling = reconciling  # type: ignore[method-assign]
    logging.basicConfig(level=logging.WARNING)
    registry = kopf.OperatorRegistry()
    register(registry)
    stop = threading.Event()
    # Stop when the bench closes our stdin (kopf's own signal handling would need the loop).

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    kopf.run(registry=registry, standalone=True, clusterwide=True, stop_flag=stop)
    Path(out).write_text(json.dumps(samples))


# --- measuring the child -------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- playing the cluster -------------------------------------------------------------------


def selected(obj: Any, selector: str) -> bool:
    """Whether an object's labels match an equality-based label selector (``k=v``, ``k!=v``,
    ``k``); set-based terms (``k in (...)``) are not parsed and match everything."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, neq, value = term.partition("!=")
        if neq:
            if labels.get(key.strip()) == value.strip():
                return False
            continue
        key, eq, value = term.replace("==", "=").partition("=")
        if " " in key.strip():
            continue
        if (labels.get(key.strip()) != value.strip()) if eq else key.strip() not in labels:
            return False
    return True


def fast_kmock() -> None:
    """Two changes to kmock for thousands of objects, neither changing what the operator
    sees of a real API server. kmock keeps every request it served and, to route each new
    one, scans them all (``request in payload._source``): each request costs O(requests so
    far), 45 ms a GET after a few hundred; here each request is forgotten once served (only
    in-flight requests need routing). And kmock ignores label selectors, so every LIST
    returns the whole collection (the operator filters again, as it must anyway): here LISTs
    and watches honour equality-based ``labelSelector``, as an API server does."""
    from support import kmock as support

    class Emulator(support.Emulator):
        async def _handle(self, request: Any) -> Any:
            try:
                return await super()._handle(request)
            finally:
                with contextlib.suppress(ValueError):
                    self._requests.remove(request)

        async def _serve_list(self, request: Any) -> Any:
            payload = await super()._serve_list(request)
            wanted = str(request.params.get("labelSelector") or "")
            if wanted and isinstance(payload, dict):
                payload["items"] = [o for o in payload["items"] if selected(o, wanted)]
            return payload

        async def _serve_watch(self, request: Any) -> Any:
            wanted = str(request.params.get("labelSelector") or "")
            async for event in super()._serve_watch(request):
                if (
                    not wanted
                    or not isinstance(event, dict)
                    or selected(event.get("object"), wanted)
                ):
                    yield event

    support.Emulator = Emulator  # type: ignore[misc]  # what Cluster serves


class World:
    """kmock, plus the bench playing the kubelet and the trainers through it."""

    def __init__(self, cluster: Any, data: Path, pid: int) -> None:
        self.cluster = cluster
        self.data = data
        self.pid = pid  # the operator's
        self.running: dict[str, dict[str, Any]] = {}  # Jobs with a Running pod
        self.done: set[str] = set()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """kmock over HTTP, with patience: at a thousand objects an emulator in Python is
        slower than the operator it serves (tests/support's client gives up after 5 s)."""
        kind = "application/merge-patch+json" if method == "PATCH" else "application/json"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.cluster.url + path, data=data, method=method, headers={"Content-Type": kind}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def jobs(self) -> dict[str, dict[str, Any]]:
        items = (self.api("GET", JOBS) or {}).get("items", [])
        return {j["metadata"]["name"]: j for j in items}

    def items(self, plural: str) -> list[dict[str, Any]]:
        return list((self.api("GET", f"{API}/{plural}") or {}).get("items", []))

    def start(self, job: dict[str, Any]) -> None:
        """The Job's pod is scheduled and runs; the Job controller says so."""
        meta = job["metadata"]
        labels = dict(job["spec"]["template"]["metadata"].get("labels") or {})
        pod = {
            "metadata": {
                "name": f"{meta['name']}-pod",
                "labels": labels | {"batch.kubernetes.io/job-name": meta["name"]},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": job["spec"]["template"]["spec"],
            "status": {"phase": "Running", "startTime": "2025-01-01T00:00:00Z"},
        }
        self.api("POST", PODS, pod)
        status = {"active": 1, "ready": 1, "startTime": "2025-01-01T00:00:00Z"}
        self.api("PATCH", f"{JOBS}/{meta['name']}/status", {"status": status})
        self.running[meta["name"]] = job

    def finish(self, name: str) -> None:
        """The pod exits 0; the Job completes."""
        self.api("PATCH", f"{PODS}/{name}-pod/status", {"status": {"phase": "Succeeded"}})
        self.api("PATCH", f"{JOBS}/{name}/status", {"status": DONE})
        self.running.pop(name, None)
        self.done.add(name)

    def tend(self, complete: Callable[[str, dict[str, Any]], bool] | None) -> None:
        """One pass: start new Jobs' pods; complete the Jobs started in an earlier pass
        (``complete`` plays the trainer and says whether the Job may finish now)."""
        earlier = dict(self.running)
        for name, job in self.jobs().items():
            if name not in self.running and name not in self.done:
                self.start(job)
        for name, job in earlier.items():
            if complete is not None and complete(name, job):
                self.finish(name)


def arg(job: dict[str, Any], flag: str) -> str:
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = [*container.get("command", []), *container.get("args", [])]
    return str(args[args.index(flag) + 1])


def local(uri: str) -> Path:
    """The path of a file:// URI."""
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))


def write(uri: str, name: str, doc: Any) -> None:
    from stevie_trainer.common import storage

    storage.write_text(storage.join(uri, name), json.dumps(doc))


def until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


def phases(world: World, plural: str) -> Counter[str]:
    return Counter((o.get("status") or {}).get("phase") or "-" for o in world.items(plural))


# --- one scenario, measured ----------------------------------------------------------------


def watching(cluster: Any) -> bool:
    """Whether the operator watches Jobs yet (it started)."""
    calls = emulator_of(cluster).calls
    return any((c.action or "").lower() == "watch" and c.resource == "jobs" for c in calls)


def emulator_of(cluster: Any) -> Any:
    assert cluster.emulator is not None
    return cluster.emulator


def operator_calls(cluster: Any, since: int) -> Counter[str]:
    """The operator's requests since call ``since``, by verb (watch streams left out)."""
    found: Counter[str] = Counter()
    for c in emulator_of(cluster).calls[since:]:
        if c.user_agent.startswith("Python-urllib") or (c.action or "").lower() == "watch":
            continue
        what = c.resource if c.subresource is None else f"{c.resource}/{c.subresource}"
        found[f"{(c.action or c.method).lower()} {what}"] += 1
    return found


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Close its stdin (kopf stops its workers, the child writes its samples); SIGKILL after
    60 s."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def operator(cluster: Any, tmp: Path, interval: float | None) -> Iterator[subprocess.Popen[bytes]]:
    """The operator in a child process against ``cluster``, its output in ``tmp``'s
    operator.log and its reconcile samples in samples.json once stopped."""
    env = os.environ | {
        "STEVIE_KUBE_SERVER": cluster.url,
        "STEVIE_METRICS_PORT": "0",
        "STEVIE_STORAGE_URI": (tmp / "data").as_uri(),
    }
    if interval:
        env["STEVIE_RECONCILE_INTERVAL"] = str(interval)
    with (tmp / "operator.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(tmp / "samples.json")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            stop(proc)


def measure(name: str, scenario: Scenario, opts: argparse.Namespace) -> dict[str, Any]:
    """One scenario against a fresh kmock and a fresh operator: the report's row."""
    from support.kmock import Cluster

    fast_kmock()
    with tempfile.TemporaryDirectory() as tmp, Cluster() as cluster:
        folder = Path(tmp)
        with operator(cluster, folder, opts.interval) as proc:
            until("the operator's watches", lambda: watching(cluster), 60, every=0.2)
            time.sleep(1.0)
            base = proc_status(proc.pid)["VmRSS"]
            first = len(emulator_of(cluster).calls)
            start, began = time.monotonic(), time.time()
            window = scenario(World(cluster, folder / "data", proc.pid), opts)
            wall, ended = time.monotonic() - start, time.time()
            memory = proc_status(proc.pid)
            calls = operator_calls(cluster, first)
        out = folder / "samples.json"
        if not out.exists():
            tail = (folder / "operator.log").read_text()[-3000:]
            sys.exit(f"the operator wrote no samples; the end of its log:\n{tail}")
        samples = [x for x in json.loads(out.read_text()) if began <= x[0] <= ended]
    row = {
        "scenario": name,
        "wall": wall,
        "rss_start": base,
        "rss_peak": memory["VmHWM"],
        "rss_end": memory["VmRSS"],
        "calls": calls,
    }
    return row | durations(samples, window)


def durations(
    samples: list[tuple[float, float, str]], window: tuple[float, float, float] | None
) -> dict[str, Any]:
    """Reconcile count and duration quantiles, overall and (if the scenario returned a
    steady window: start, end, operator CPU seconds) within the window."""
    taken = [d for _, d, _ in samples]
    found: dict[str, Any] = {
        "reconciles": len(samples),
        "p50": quantile(taken, 0.5),
        "p99": quantile(taken, 0.99),
        "max": max(taken, default=float("nan")),
    }
    if window is not None:
        steady = [d for t, d, _ in samples if window[0] <= t < window[1]]
        seconds = window[1] - window[0]
        found |= {
            "steady_rate": len(steady) / seconds,
            "steady_p50": quantile(steady, 0.5),
            "steady_p99": quantile(steady, 0.99),
            "steady_cpu": window[2] / seconds,
        }
    return found


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    child(sys.argv[2])
