"""A kubelet for kmock: runs the Jobs the operator creates as local processes and writes
their progress back as Job status, as the kubelet and the Job controller would. With it,
the real operator against kmock trains for real, and its outputs can be compared with
``stevie run``'s.

The processes are the local launcher's (fresh interpreters, each Job's own command,
environment and Secret references), so what runs is exactly what the Job says.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from stevie_operator.local.launcher import LocalLauncher
from support.kmock import JOBS, Cluster

__all__ = ["Kubelet"]


class Kubelet:
    """Polls kmock's Jobs in a thread; use as a context manager around the operator."""

    def __init__(self, cluster: Cluster, logs: Path, every: float = 0.2) -> None:
        self.cluster = cluster
        self.logs = logs
        self.every = every
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
            self.launcher.start(job, lambda secret, key: None, self.logs / f"{name}.log")
        status = self.launcher.status(name)
        if status is not None and status != self.reported.get(name):
            self.cluster.api("PATCH", f"{JOBS}/{name}/status", {"status": status})
            self.reported[name] = status
