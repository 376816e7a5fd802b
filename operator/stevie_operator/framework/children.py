"""The children a kind owns: their types, the ones observed, and how a Job's state is read.

Children are found by their labels (``stevie.dev/kind``, ``stevie.dev/name``, set by
:func:`~.pods.owner_labels`) and named deterministically, so a restarted operator finds them
again instead of creating duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stevie_api.training import JobPhase
from stevie_operator.framework.status import parse_time

__all__ = [
    "CHILD_TYPES",
    "DEPLOYMENTS",
    "JOBS",
    "SERVICES",
    "ChildType",
    "Owned",
    "job_outcome",
    "job_seconds",
]

Objects = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ChildType:
    """A built-in kind of child object."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        """API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        """API version within the group."""
        return self.api_version.rpartition("/")[2]


JOBS = ChildType("batch/v1", "Job", "jobs")
DEPLOYMENTS = ChildType("apps/v1", "Deployment", "deployments")
SERVICES = ChildType("v1", "Service", "services")
CHILD_TYPES: dict[str, ChildType] = {t.kind: t for t in (JOBS, DEPLOYMENTS, SERVICES)}


@dataclass(frozen=True)
class Owned:
    """The children of one resource as listed just now: child kind -> name -> object."""

    by_kind: Mapping[str, Objects] = field(default_factory=dict)

    def of(self, child: ChildType) -> Objects:
        """The children of one type, by name."""
        return self.by_kind.get(child.kind, {})

    @property
    def jobs(self) -> Objects:
        """The Jobs, by name."""
        return self.of(JOBS)


def _true_conditions(status: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
    return {
        c.get("type"): c
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True"
    }


def job_outcome(job: Mapping[str, Any]) -> tuple[JobPhase, str, str, datetime | None]:
    """(phase, reason, message, finished at) from a Job's status."""
    status = job.get("status") or {}
    name = (job.get("metadata") or {}).get("name", "?")
    true = _true_conditions(status)
    if "Complete" in true or int(status.get("succeeded") or 0) > 0:
        when = parse_time(status.get("completionTime")) or parse_time(
            (true.get("Complete") or {}).get("lastTransitionTime")
        )
        return "Succeeded", "TrainingSucceeded", f"Job {name} completed", when
    failed = true.get("Failed") or true.get("FailureTarget")
    if failed is not None:
        reason = str(failed.get("reason") or "JobFailed")
        message = str(failed.get("message") or f"Job {name} failed")
        when = parse_time(failed.get("lastTransitionTime"))
        return "Failed", reason, f"Job {name} failed: {message}", when
    if int(status.get("active") or 0) > 0:
        return "Running", "Training", f"Job {name} is running", None
    return "Pending", "JobPending", f"Job {name} is waiting for its pod to start", None


def job_seconds(job: Mapping[str, Any]) -> float | None:
    """Wall time of a finished Job (start to completion or failure), or None."""
    status = job.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return None
    end = parse_time(status.get("completionTime")) or job_outcome(job)[3]
    return None if end is None else max(0.0, (end - start).total_seconds())
