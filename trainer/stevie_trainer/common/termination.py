"""A small result summary in the pod's termination message, so a run's status survives an
artifact store the operator cannot read.

When a container ends, the kubelet copies the file at its ``terminationMessagePath``
(``/dev/termination-log`` by default) into the pod's
``status.containerStatuses[].state.terminated.message``, which lives in the API server, not
in the store. It keeps at most 4096 bytes, the file's *last* ones: a longer summary would
arrive cut at the front, no longer JSON. So the summary is one compact JSON object of at
most :data:`MAX_BYTES`, dropping whole parts (artifact URIs first, the only unbounded
strings) until it fits, never cutting one.

It is marked ``{"stevie": 1, ...}`` (:data:`SCHEMA_KEY`, :data:`SCHEMA`): with
``terminationMessagePolicy: FallbackToLogsOnError`` the message of a failed container is
the tail of its logs, which the operator must never mistake for a summary.

Where it goes (:func:`destination`): ``$STEVIE_TERMINATION_LOG`` when set (empty: nowhere),
else ``/dev/termination-log`` only where it exists and is writable, i.e. in a pod. On a
laptop (``stevie run``, the plain CLI) nothing is written, and a summary that cannot be
written is one warning on stderr: never a failed run.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PATH",
    "ENV",
    "MAX_BYTES",
    "METRICS",
    "SCHEMA",
    "SCHEMA_KEY",
    "destination",
    "encode",
    "training_summary",
    "write",
]

ENV = "STEVIE_TERMINATION_LOG"
DEFAULT_PATH = Path("/dev/termination-log")
SCHEMA_KEY = "stevie"
SCHEMA = 1
MAX_BYTES = 3072
"""Well under the kubelet's 4096 bytes per container (and its 12 KiB per pod)."""
METRICS = ("sharpe", "sortino", "total_return", "max_drawdown", "win_rate", "trades")
"""The headline metrics of a result.json performance dict: what a status shows."""
_DROP_FIRST = ("artifacts", "validation", "test")
"""Optional parts of a TrainingRun summary, in the order they give way when it is too long."""


def destination() -> Path | None:
    """Where the summary goes, or None: nowhere to write it (not in a pod)."""
    configured = os.environ.get(ENV)
    if configured is not None:
        return Path(configured) if configured else None
    if DEFAULT_PATH.is_file() and os.access(DEFAULT_PATH, os.W_OK):
        return DEFAULT_PATH
    return None


def _number(value: Any) -> int | float | None:
    """A finite JSON number (not a bool), else None: a summary is strict JSON."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _metrics(data: Any) -> dict[str, int | float] | None:
    if not isinstance(data, Mapping):
        return None
    found = {k: n for k in METRICS if (n := _number(data.get(k))) is not None}
    return found or None


def training_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a TrainingRun's status takes from its result.json, in result.json's own shape
    (the operator applies either the same way): timesteps, the headline validation and test
    metrics of the agent, and the best model's URI."""
    summary: dict[str, Any] = {SCHEMA_KEY: SCHEMA, "status": result.get("status")}
    steps = _number(result.get("timesteps"))
    if steps is not None:
        summary["timesteps"] = int(steps)
    validation = _metrics(result.get("validation"))
    if validation is not None:
        summary["validation"] = validation
    test = result.get("test")
    agent = _metrics(test.get("agent")) if isinstance(test, Mapping) else None
    if agent is not None:
        summary["test"] = {"agent": agent}
    artifacts = result.get("artifacts")
    model = artifacts.get("model") if isinstance(artifacts, Mapping) else None
    if isinstance(model, str):
        summary["artifacts"] = {"model": model}
    return summary


def encode(
    summary: Mapping[str, Any], limit: int = MAX_BYTES, optional: Sequence[str] = _DROP_FIRST
) -> str | None:
    """Compact, strict, ASCII JSON of ``summary`` in at most ``limit`` bytes, dropping the
    ``optional`` keys in order until it fits; None when it does not fit even then."""
    doc = dict(summary)
    for drop in (None, *optional):
        if drop is not None:
            doc.pop(drop, None)
        text = json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
        if len(text) <= limit:  # ASCII: one byte per character
            return text
    return None


def write(summary: Mapping[str, Any], path: Path | None = None) -> Path | None:
    """Write ``summary`` to the termination message file (:func:`destination` unless
    ``path``); the file written, or None. Never raises: the run has succeeded whatever
    happens here, and the summary is only a fallback for its status."""
    try:
        target = path if path is not None else destination()
        if target is None:
            return None
        text = encode(summary)
        if text is None:
            raise ValueError(f"the summary does not fit in {MAX_BYTES} bytes")
        # Not a temporary file and a rename: in a pod the path is a file bind-mounted by the
        # kubelet, which a rename cannot replace.
        target.write_text(text, encoding="ascii")
        return target
    except (OSError, ValueError, TypeError) as err:
        print(f"stevie-trainer: warning: no result summary in the termination message: {err}",
              file=sys.stderr)  # fmt: skip
        return None
