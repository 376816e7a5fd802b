"""The result summary a trainer leaves in its pod's termination message: a pure function of
the pods the API server holds.

A trainer that succeeds writes a small JSON summary of its result to its termination
message file (:mod:`stevie_trainer.common.termination`); the kubelet copies it into the
pod's ``status.containerStatuses[].state.terminated.message``. It is read here so a kind can
fill its status when the artifact store does not answer (the store is down, its credentials
expired, the file was lost): the API server still holds it until the Job and its pod are
deleted (``ttlSecondsAfterFinished``).

Only a container that exited 0 in a pod that succeeded, and only a message that is, whole,
one JSON object marked ``{"stevie": 1, ...}``: a failed container's message is the tail of
its logs (``FallbackToLogsOnError``), and a message the kubelet cut (it keeps the last 4096
bytes) is no longer JSON. Anything else is no summary, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from stevie_operator.framework.pods import CONTAINER
from stevie_trainer.common.termination import SCHEMA, SCHEMA_KEY

__all__ = ["MAX_MESSAGE", "parse", "pod_summary", "summary"]

MAX_MESSAGE = 4096
"""The kubelet's limit on one container's message: anything longer is not its copy."""


def parse(message: Any) -> dict[str, Any] | None:
    """The summary in one termination message, or None (absent, log text, cut, garbage,
    oversize, another schema)."""
    if not isinstance(message, str) or len(message.encode("utf-8", "replace")) > MAX_MESSAGE:
        return None
    text = message.strip()
    if not text.startswith("{"):
        return None  # log lines, an error from the kubelet: not worth a parse
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get(SCHEMA_KEY) != SCHEMA:
        return None
    return doc


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_summary(pod: Mapping[str, Any], container: str = CONTAINER) -> dict[str, Any] | None:
    """The summary of one pod: it succeeded and ``container`` exited 0 with one."""
    status = _mapping(pod.get("status"))
    if status.get("phase") != "Succeeded":
        return None
    statuses = status.get("containerStatuses")
    for cs in statuses if isinstance(statuses, list) else []:
        if not isinstance(cs, Mapping) or cs.get("name") != container:
            continue
        terminated = _mapping(_mapping(cs.get("state")).get("terminated"))
        if terminated.get("exitCode") == 0:
            return parse(terminated.get("message"))
    return None


def summary(pods: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The summary of the first of ``pods`` that has one (give them newest first: a Job's
    pod that succeeded is its last)."""
    return next((found for pod in pods if (found := pod_summary(pod)) is not None), None)
