"""Job statuses as the Job controller writes them, for tests that play the cluster."""

from __future__ import annotations

from typing import Any

__all__ = ["done", "failed"]


def done(completed: str = "2025-01-01T02:00:00Z", started: str | None = None) -> dict[str, Any]:
    """A Job that completed (its pod exited 0)."""
    status: dict[str, Any] = {"succeeded": 1, "completionTime": completed,
                              "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip
    return status if started is None else {"startTime": started, **status}


def failed(
    pods: int = 1,
    reason: str = "BackoffLimitExceeded",
    message: str = "Job has reached the backoff limit",
    started: str | None = None,
) -> dict[str, Any]:
    """A Job that failed after ``pods`` failed pods."""
    condition = {"type": "Failed", "status": "True", "reason": reason, "message": message}
    status: dict[str, Any] = {"failed": pods, "conditions": [condition]}
    return status if started is None else {"startTime": started, **status}
