"""Jobs as local processes: ``stevie run``'s stand-in for the kubelet.

:class:`LocalLauncher` starts a Job's container command (``python -m stevie_trainer ...``)
with the container's environment (``$(VAR)`` expanded as Kubernetes would, Secret
references resolved by the caller) and reports each process as a batch/v1 Job status:
active, then succeeded or failed with the exit code.

Two ways to start one, the same command either way:

* a fresh interpreter (``subprocess``): what a Job pays, imports and all;
* the fast path: when the trainer command has a warm-up (``stevie_trainer.__main__.warm_up``,
  e.g. ``pbt-interval``), this process does it once per owner and command (imports torch,
  prepares the data, runs one short training), then forks each child from itself. A short
  PBT interval would otherwise spend most of its time importing.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from stevie_api import exit_codes

__all__ = ["LocalLauncher", "Process"]

_POD_ONLY = ("HOME", "MPLCONFIGDIR", "STEVIE_METRICS_PORT")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_TRAINER = ["-m", "stevie_trainer"]
SecretLookup = Callable[[str, str], str | None]  # (secret name, key) -> value


def _forked_main(argv: list[str], env: dict[str, str], log: str | None) -> None:
    """Body of a forked child: the trainer's command line, output to its log. SIGINT was
    blocked around the fork: unblocked only once output goes to the log, with Python's own
    handler (the parent may have installed another, e.g. asyncio's)."""
    os.environ.update(env)
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        from stevie_trainer.__main__ import main

        code = main(argv)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


@dataclass
class Process:
    """One started Job: its process (forked or fresh) and when it started and ended."""

    name: str
    log: Path | None
    started: datetime
    popen: subprocess.Popen[bytes] | None = None
    forked: BaseProcess | None = None
    ended: datetime | None = field(default=None)
    pidfd: int | None = None  # a fresh process's exit as a readable file descriptor

    def exit_code(self) -> int | None:
        code = self.popen.poll() if self.popen is not None else None
        if self.forked is not None:
            code = self.forked.exitcode
        if code is not None and self.ended is None:
            self.ended = datetime.now(UTC)
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
        return code

    @property
    def sentinel(self) -> int | None:
        """Readable once the process has exited (None: poll it)."""
        return self.forked.sentinel if self.forked is not None else self.pidfd

    def signal(self, sig: int) -> None:
        pid = self.popen.pid if self.popen is not None else self.forked and self.forked.pid
        if pid and self.exit_code() is None:
            os.kill(pid, sig)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def status(self) -> dict[str, Any]:
        """The process as a batch/v1 Job status."""
        code = self.exit_code()
        status: dict[str, Any] = {"startTime": self.started.isoformat()}
        if code is None:
            return status | {"active": 1}
        ended = (self.ended or datetime.now(UTC)).isoformat()
        if code == 0:
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": ended}
            return status | {"succeeded": 1, "completionTime": ended, "conditions": [condition]}
        where = f" (log: {self.log})" if self.log is not None else ""
        condition = {
            "type": "Failed",
            "status": "True",
            "reason": "TrainerExited",
            "message": f"the trainer {exit_codes.describe(code)} (exit {code}){where}",
            "lastTransitionTime": ended,
        }
        return status | {"failed": 1, "conditions": [condition]}


class LocalLauncher:
    """Runs Jobs' first containers as local processes (see the module docstring)."""

    def __init__(self, *, fork: bool = True) -> None:
        self.fork = fork
        self.processes: dict[str, Process] = {}
        self._warm: dict[tuple[str, str], bool] = {}  # (owner, command) -> has a warm-up

    def start(self, job: Mapping[str, Any], secrets: SecretLookup, log: Path | None) -> None:
        """Start the Job's process (``log``: where its output goes; None: this terminal)."""
        name = str(job["metadata"]["name"])
        if name in self.processes:
            return
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = _environment(container, secrets)
        argv = [*container.get("command", []), *container.get("args", [])]
        argv = [_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]
        if argv and argv[0] == "python":
            argv[0] = sys.executable  # the same interpreter as `stevie`, so the same install
        # Pod-only settings stay in the pod: a local run keeps the user's HOME, and serves
        # metrics only if the user's own environment asks for it (no port clashes).
        local = {k: v for k, v in env.items() if k not in _POD_ONLY}
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        forkable = self._forkable(job, argv)  # warms up first: not part of the Job's time
        process = Process(name, log, datetime.now(UTC))
        if forkable:
            process.forked = self._fork(argv[3:], local, log)
        else:
            process.popen = self._spawn(argv, local, log)
            process.pidfd = _pidfd(process.popen.pid)
        self.processes[name] = process

    def _forkable(self, job: Mapping[str, Any], argv: list[str]) -> bool:
        """Whether to fork this trainer command from a warmed-up self (warming up first)."""
        if not self.fork or argv[1:3] != _TRAINER or len(argv) < 4:
            return False
        labels = job["metadata"].get("labels") or {}
        key = (f"{labels.get('stevie.dev/kind')}/{labels.get('stevie.dev/name')}", argv[3])
        if key not in self._warm:
            from stevie_trainer.__main__ import warm_up

            self._warm[key] = warm_up(argv[3:])
        return self._warm[key]

    @staticmethod
    def _fork(argv: list[str], env: dict[str, str], log: Path | None) -> BaseProcess:
        context = multiprocessing.get_context("fork")
        proc = context.Process(target=_forked_main, args=(argv, env, str(log) if log else None))
        # A Ctrl-C that lands inside fork() would be raised in an at-fork handler, where
        # Python prints and swallows it; blocked for the fork, it is raised just after.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return proc

    @staticmethod
    def _spawn(argv: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
        if log is None:
            return subprocess.Popen(argv, env=os.environ | env)
        with log.open("ab") as out:
            return subprocess.Popen(
                argv, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT
            )

    def status(self, name: str) -> dict[str, Any] | None:
        """The Job status of a started process, or None."""
        process = self.processes.get(name)
        return None if process is None else process.status()

    def running(self) -> list[Process]:
        """The processes still running."""
        return [p for p in self.processes.values() if p.exit_code() is None]

    def wait(self, timeout: float) -> None:
        """Until a process exits, or ``timeout`` seconds: no polling latency per child."""
        sentinels: list[int] = []
        deadline = time.monotonic() + timeout
        for process in self.running():
            if process.sentinel is None:  # no pidfd on this system: poll
                deadline = min(deadline, time.monotonic() + 0.2)
            else:
                sentinels.append(process.sentinel)
        remaining = max(0.0, deadline - time.monotonic())
        if sentinels:
            multiprocessing.connection.wait(sentinels, remaining)
        else:
            time.sleep(remaining)

    def stop(self, grace: float = 30.0) -> None:
        """Ctrl-C every running process (trainers checkpoint and exit), then kill what is
        left after ``grace`` seconds."""
        running = self.running()
        for process in running:
            process.signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            process.signal(signal.SIGKILL)
            process.join(5.0)


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits (Linux >= 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _environment(container: Mapping[str, Any], secrets: SecretLookup) -> dict[str, str]:
    """The container's env as a pod would see it: values, and Secret references resolved."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = (item.get("valueFrom") or {}).get("secretKeyRef") or {}
        value = secrets(str(ref.get("name")), str(ref.get("key")))
        if value is not None:
            env[item["name"]] = value
    return env
