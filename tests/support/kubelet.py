"""A kubelet for kmock: runs the Jobs the operator creates as local processes and writes
their progress back as Job status, as the kubelet and the Job controller would. With it,
the real operator against kmock trains for real, and its outputs can be compared with
``stevie run``'s.

The processes are the local launcher's (fresh interpreters, each Job's own command,
environment and Secret references), so what runs is exactly what the Job says.

Opt-in, ``pods=True``: it also creates each Job's pod in kmock, Running while the process
runs, then terminated with its exit code and the termination message the kubelet would
read (:mod:`support.pods`): the process writes it to the file ``STEVIE_TERMINATION_LOG``
names. ``exited(job)`` runs once a process has exited, before its pod and Job say so (a
test's way to break something the trainer left behind).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stevie_operator.local.launcher import LocalLauncher
from support.kmock import JOBS, Cluster
from support.pods import job_pod, pod_status, policy_of, termination_message, with_env

__all__ = ["Kubelet"]


class Kubelet:
    """Polls kmock's Jobs in a thread; use as a context manager around the operator."""

    def __init__(
        self,
        cluster: Cluster,
        logs: Path,
        every: float = 0.2,
        *,
        pods: bool = False,
        exited: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.logs = logs
        self.every = every
        self.creates_pods = pods
        self.exited = exited
        self.launcher = LocalLauncher(fork=False)  # never fork a process that runs kopf
        self.reported: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.launcher.stop(grace=10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for job in (self.cluster.api("GET", JOBS) or {}).get("items", []):
                self._tend(job)

    def _tend(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        if name not in self.launcher.processes:
            env = {"STEVIE_TERMINATION_LOG": str(self._message_file(name))}
            run = with_env(job, env) if self.creates_pods else job
            self.launcher.start(run, lambda secret, key: None, self.logs / f"{name}.log")
            if self.creates_pods:
                started = self.launcher.processes[name].started
                self.cluster.api("POST", self._pods_path(job), job_pod(job, f"{name}-pod", started))
        status = self.launcher.status(name)
        if status is not None and status != self.reported.get(name):
            if "active" not in status:  # exited: the kubelet reports the pod, then the Job
                self._report_exit(job)
            self.cluster.api("PATCH", f"{JOBS}/{name}/status", {"status": status})
            self.reported[name] = status

    def _message_file(self, name: str) -> Path:
        return self.logs / f"{name}.termination-log"

    @staticmethod
    def _pods_path(job: dict[str, Any]) -> str:
        return f"/api/v1/namespaces/{job['metadata'].get('namespace', 'default')}/pods"

    def _report_exit(self, job: dict[str, Any]) -> None:
        if self.exited is not None:
            self.exited(job)
        if not self.creates_pods:
            return
        name = job["metadata"]["name"]
        process = self.launcher.processes[name]
        code = process.exit_code()
        assert code is not None and process.ended is not None
        message = termination_message(self._message_file(name), process.log, code, policy_of(job))
        status = pod_status(job, code, message, process.started, process.ended)
        self.cluster.api("PATCH", f"{self._pods_path(job)}/{name}-pod/status", {"status": status})
