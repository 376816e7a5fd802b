"""Pods as the Job controller creates them and the kubelet reports them, for the kubelet
emulator (:class:`support.kubelet.Kubelet` with ``pods=True``): the Job's pod (labels and
ownerReference from the Job), Running while its process runs, then its container
``terminated`` with the exit code and the termination message the kubelet would read."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MESSAGE_BYTES",
    "job_pod",
    "pod_status",
    "policy_of",
    "termination_message",
    "with_env",
]

MESSAGE_BYTES = 4096
"""The kubelet keeps the last 4096 bytes of a container's termination message file."""
LOG_BYTES, LOG_LINES = 2048, 80
"""What ``FallbackToLogsOnError`` takes of the logs: at most 80 lines, 2048 bytes."""


def _container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def with_env(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """A copy of the Job whose container also has ``env`` (what the kubelet adds for a
    process: here, where its termination message file is)."""
    job = copy.deepcopy(job)
    container = _container(job)
    container["env"] = [
        *container.get("env", []),
        *({"name": k, "value": v} for k, v in env.items()),
    ]
    return job


def job_pod(job: dict[str, Any], name: str, started: datetime) -> dict[str, Any]:
    """The Job's pod as the Job controller creates it from the template, running."""
    meta, template = job["metadata"], job["spec"]["template"]
    name_of_job = meta["name"]
    labels = {
        **template["metadata"].get("labels", {}),
        "batch.kubernetes.io/job-name": name_of_job,
        "job-name": name_of_job,
        "batch.kubernetes.io/controller-uid": meta["uid"],
    }
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name_of_job, "uid": meta["uid"],
             "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    running = {"running": {"startedAt": started.isoformat()}}
    status = {"phase": "Running", "startTime": started.isoformat(),
              "conditions": [{"type": "PodScheduled", "status": "True"},
                             {"type": "Ready", "status": "True"}],
              "containerStatuses": [{"name": _container(job)["name"], "ready": True,
                                     "restartCount": 0, "state": running}]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": meta.get("namespace", "default"),
                         "labels": labels, "ownerReferences": [owner]},
            "spec": template["spec"], "status": status}  # fmt: skip


def termination_message(file: Path, log: Path | None, code: int, policy: str) -> str:
    """What the kubelet puts in ``state.terminated.message``: the file's last 4096 bytes,
    else, for ``FallbackToLogsOnError`` and a failed container, the tail of its logs."""
    data = file.read_bytes()[-MESSAGE_BYTES:] if file.is_file() else b""
    if not data and code != 0 and policy == "FallbackToLogsOnError" and log and log.is_file():
        data = b"".join(log.read_bytes().splitlines(keepends=True)[-LOG_LINES:])[-LOG_BYTES:]
    return data.decode("utf-8", "replace")


def pod_status(
    job: dict[str, Any], code: int, message: str, started: datetime, ended: datetime
) -> dict[str, Any]:
    """The pod's status once its container exited with ``code``."""
    terminated: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                  "startedAt": started.isoformat(),
                                  "finishedAt": ended.isoformat()}  # fmt: skip
    if message:
        terminated["message"] = message
    container = {"name": _container(job)["name"], "ready": False, "restartCount": 0,
                 "state": {"terminated": terminated}}  # fmt: skip
    return {"phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": [container]}  # fmt: skip


def policy_of(job: dict[str, Any]) -> str:
    """The container's terminationMessagePolicy (``File`` by default)."""
    return str(_container(job).get("terminationMessagePolicy", "File"))
