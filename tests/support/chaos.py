"""What the chaos tests (tests/operator_tests/chaos) break, and the cluster parts they need
to survive it.

- :class:`OperatorProcess`: ``stevie operator`` as a child process against kmock (a thread's
  kopf cannot be SIGKILLed without killing the test), its log in a file per start;
- :class:`RetryingKubelet`: the kubelet of :mod:`support.kubelet` plus what the Job
  controller does with a failed pod: count it, apply the Job's ``podFailurePolicy``
  (``FailJob`` on the trainer's hopeless exit codes), replace the pod after the controller's
  backoff (``base`` s, doubling) while ``backoffLimit`` allows, else fail the Job. A pod
  killed by a signal exits 128 + signal, as a container does (137 for SIGKILL);
- :class:`CreateGate`: holds the first POST of chosen Jobs in the emulator, so a test can
  SIGKILL the operator exactly between saving its state and creating the Job; a held request
  is then refused (the Job was never created);
- :class:`S3Endpoint`: a moto server that can be stopped (connections refused) and started
  again on the same port with the same objects: moto keeps its backends per process, not per
  server, so the data outlives the listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock

from stevie_operator.local.launcher import Process
from stevie_trainer.common import storage
from support.kmock import JOBS, Cluster
from support.kubelet import Kubelet

__all__ = [
    "CreateGate",
    "OperatorProcess",
    "RetryingKubelet",
    "S3Endpoint",
    "check_population",
    "finished",
    "job_names",
]

HANDLER_ERROR = re.compile(r"failed with an exception|Traceback")


class OperatorProcess:
    """``python -m stevie_operator.cli operator`` (kopf, every kind) in a child process; the
    environment is the test's (``STEVIE_KUBE_SERVER`` etc. from the ``cluster`` fixture) plus
    ``env``. Each :meth:`start` writes ``<logs>/operator-<n>.log``."""

    def __init__(self, logs: Path, env: Mapping[str, str] | None = None) -> None:
        self.logs = logs
        self.env = {"STEVIE_RECONCILE_INTERVAL": "1", **(env or {})}
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "stevie_operator.cli", "operator", "--standalone", "-A"]
        with (self.logs / f"operator-{self.starts}.log").open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=os.environ | self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup handler, no Lease or finalizer released, writes cut short."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (kopf's graceful exit), SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def handler_errors(self) -> int:
        """Handler failures kopf logged (each one a retry of kopf's backoff loop), over every
        start so far."""
        return sum(
            len(HANDLER_ERROR.findall(log.read_text(errors="replace")))
            for log in self.logs.glob("operator-*.log")
        )

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class _Job:
    """One Job as the Job controller tracks it: its pods (processes), failures, outcome."""

    manifest: dict[str, Any]
    started: str = field(default_factory=_now)
    pods: list[Process] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # monotonic time of each pod's start
    failed: int = 0
    next_pod: float = 0.0  # monotonic time the next pod may start
    outcome: dict[str, Any] | None = None  # the terminal part of the status

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"startTime": self.started}
        if self.failed:
            status["failed"] = self.failed
        if self.outcome is not None:
            return status | self.outcome
        running = bool(self.pods) and self.pods[-1].exit_code() is None
        return status | {"active": 1 if running else 0}


def exit_status(process: Process) -> int | None:
    """A container's exit code: a process killed by signal N exits 128 + N."""
    code = process.exit_code()
    return None if code is None else (128 - code if code < 0 else code)


def fail_job_codes(job: Mapping[str, Any]) -> set[int]:
    """The exit codes of the Job's ``podFailurePolicy`` ``FailJob`` rules."""
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    codes: set[int] = set()
    for rule in rules:
        on = rule.get("onExitCodes") or {}
        if rule.get("action") == "FailJob" and on.get("operator") == "In":
            codes |= {int(v) for v in on.get("values") or []}
    return codes


class RetryingKubelet(Kubelet):
    """The kubelet, with the Job controller's pod retries (see the module docstring).
    ``backoff``: seconds before the first replacement pod (the Job controller's 10 s),
    doubling per failure up to 6 min."""

    def __init__(self, cluster: Cluster, logs: Path, backoff: float = 10.0) -> None:
        super().__init__(cluster, logs)
        self.backoff = backoff
        self.jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def _tend(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        with self._lock:
            record = self.jobs.setdefault(name, _Job(job))
            self._step(name, record)
            status = record.status()
        if status != self.reported.get(name):
            self.cluster.api("PATCH", f"{JOBS}/{name}/status", {"status": status})
            self.reported[name] = status

    def _step(self, name: str, record: _Job) -> None:
        if record.outcome is not None:
            return
        if not record.pods:
            self._start_pod(name, record)
            return
        code = exit_status(record.pods[-1])
        if code is None:
            return  # running
        if len(record.codes) < len(record.pods):
            record.codes.append(code)
            self._ended(name, record, code)
        elif time.monotonic() >= record.next_pod:  # failed, and its backoff is over
            self._start_pod(name, record)

    def _start_pod(self, name: str, record: _Job) -> None:
        self.launcher.processes.pop(name, None)  # the failed pod: a new one replaces it
        log = self.logs / f"{name}-pod{len(record.pods)}.log"
        self.launcher.start(record.manifest, lambda secret, key: None, log)
        record.pods.append(self.launcher.processes[name])
        record.starts.append(time.monotonic())

    def _ended(self, name: str, record: _Job, code: int) -> None:
        """A pod exited with ``code``: the Job completes, fails, or gets another pod."""
        ended = _now()
        if code == 0:
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": ended}
            record.outcome = {"succeeded": 1, "completionTime": ended, "conditions": [condition]}
            return
        pod = f"default/{name}-pod{len(record.pods) - 1}"
        if code in fail_job_codes(record.manifest):
            message = (
                f"Container trainer for pod {pod} failed with exit code {code} matching "
                "FailJob rule at index 1"
            )
            record.outcome = _failed("PodFailurePolicy", message, ended)
            return
        record.failed += 1
        limit = int((record.manifest.get("spec") or {}).get("backoffLimit", 6))
        if record.failed > limit:
            message = "Job has reached the specified backoff limit"
            record.outcome = _failed("BackoffLimitExceeded", message, ended)
            return
        record.next_pod = time.monotonic() + min(360.0, self.backoff * 2 ** (record.failed - 1))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill the running pod of Job ``name`` (its trainer process) with ``sig``."""
        with self._lock:
            self.jobs[name].pods[-1].signal(sig)

    def pods(self, name: str) -> int:
        """How many pods Job ``name`` has had."""
        with self._lock:
            record = self.jobs.get(name)
            return len(record.pods) if record is not None else 0


def _failed(reason: str, message: str, when: str) -> dict[str, Any]:
    condition = {"type": "Failed", "status": "True", "reason": reason, "message": message,
                 "lastTransitionTime": when}  # fmt: skip
    return {"conditions": [condition]}


class CreateGate:
    """Holds the first POST of a Job whose name ``match`` accepts, until :meth:`release`;
    the held POST is then answered 503 without creating anything (its client is gone by
    then: the test SIGKILLed it). Every other POST passes."""

    def __init__(self, cluster: Cluster, match: Callable[[str], bool]) -> None:
        assert cluster.emulator is not None
        self.match = match
        self.held: list[str] = []
        self._released = threading.Event()
        emulator = cluster.emulator
        original = emulator._handle

        async def handle(request: Any) -> Any:
            name = self._job_created(request)
            if name is not None and not self.held and self.match(name):
                self.held.append(name)
                while not self._released.is_set():
                    await asyncio.sleep(0.05)
                raise kmock.KubernetesError(
                    status=503, reason="ServiceUnavailable", message="held by the chaos test"
                )
            return await original(request)

        emulator._handle = handle  # type: ignore[method-assign]

    @staticmethod
    def _job_created(request: Any) -> str | None:
        resource = request.resource
        if request.action != kmock.action.CREATE or getattr(resource, "plural", None) != "jobs":
            return None
        data = request.data if isinstance(request.data, dict) else {}
        name = (data.get("metadata") or {}).get("name")
        return name if isinstance(name, str) else None

    def release(self) -> None:
        self._released.set()


class S3Endpoint:
    """moto's S3 on 127.0.0.1:``port`` (0: a free one, kept across restarts)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]

    def stop(self) -> None:
        """Stop serving and close the listening socket: connections are refused (moto's own
        stop leaves the socket open, and clients would hang in its backlog instead)."""
        if self._server is not None:
            wsgi = self._server._server
            self._server.stop()
            wsgi.server_close()
            self._server = None

    def __enter__(self) -> S3Endpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def job_names(cluster: Cluster) -> set[str]:
    """The Jobs that exist now."""
    return {j["metadata"]["name"] for j in (cluster.api("GET", JOBS) or {}).get("items", [])}


def finished(cluster: Cluster, path: str) -> dict[str, Any] | None:
    """The status of the object at ``path`` once Succeeded or Failed, else None."""
    status = (cluster.api("GET", path) or {}).get("status") or {}
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def _json(uri: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(storage.read_text(uri))
    return doc


def _check_interval(
    folder: str, member: dict[str, Any], i: int, exploits: dict[tuple[int, int], Any], steps: int
) -> int:
    """One interval's result.json against population.json: the member's own result, one
    interval of steps on top of exactly what its starting checkpoint had trained (its own
    previous interval, or the donor's of an exploit); the model's timesteps after it."""
    m = member["index"]
    out = storage.join(folder, "members", f"m{m}", f"i{i}")
    result = _json(storage.join(out, "result.json"))
    assert (result["member"], result["interval"], result["checkpoint"]) == (m, i, out)
    assert member["checkpoint_history"][i] == out
    value = result["fitness"]
    if isinstance(value, float) and math.isfinite(value):
        assert member["fitness_history"][i] == value
    assert result["timesteps"] - result["timesteps_start"] == steps, result
    exploit = exploits.get((m, i))
    own = member["checkpoint_history"][i - 1] if i else None
    init = exploit["checkpoint"] if exploit else own
    assert result["init_checkpoint"] == init, (m, i, result["init_checkpoint"], init)
    before = _json(storage.join(init, "result.json"))["timesteps"] if init else 0
    assert result["timesteps_start"] == before, (m, i, result["timesteps_start"], before)
    return int(result["timesteps"])


def check_population(
    cluster: Cluster, kubelet: RetryingKubelet, name: str, folder: str, members: int,
    intervals: int, steps: int,
) -> dict[str, Any]:  # fmt: skip
    """Assert that a finished population lost and repeated nothing: exactly one Job per
    member interval (no retry Job) and the finish Job; population.json counting every
    interval once; each exploit's checkpoint a donor's completed interval, and each interval
    starting from the checkpoint the state says. Returns the figures (``posts`` and ``pods``
    per Job, for the caller's assertions)."""
    doc = _json(storage.join(folder, "population.json"))
    expected = {f"{name}-m{m}-i{i}" for m in range(members) for i in range(intervals)}
    jobs = {n for n in job_names(cluster) if n.startswith(f"{name}-")}
    assert jobs == expected | {f"{name}-finish"}, sorted(jobs)
    assert doc["intervals_completed"] == members * intervals
    exploits = {(e["member"], e["interval"]): e for e in doc["events"]}
    assert len(exploits) == len(doc["events"])  # one exploit per member interval at most
    for e in doc["events"]:
        donor = doc["members"][e["copied_from"]]
        assert donor["checkpoint_history"][e["copied_interval"] - 1] == e["checkpoint"], e
    timesteps = {}
    for member in doc["members"]:
        assert (member["status"], member["intervals_done"]) == ("done", intervals), member
        assert len(member["fitness_history"]) == len(member["checkpoint_history"]) == intervals
        for i in range(intervals):
            timesteps[member["index"]] = _check_interval(folder, member, i, exploits, steps)
    return {
        "intervals": doc["intervals_completed"],
        "exploits": len(doc["events"]),
        "final timesteps per member": timesteps,
        "posts": {n: cluster.created(f"jobs/{n}") for n in sorted(jobs)},
        "pods": {n: kubelet.pods(n) for n in sorted(jobs)},
    }
