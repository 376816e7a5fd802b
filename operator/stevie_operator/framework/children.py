"""The children a kind owns: their types, the ones observed, and how a Job's state is read.

Children are found by their labels (``stevie.dev/kind``, ``stevie.dev/name``, set by
:func:`~.pods.owner_labels`) and named deterministically, so a restarted operator finds them
again instead of creating duplicates.

A Job's status alone hides why its pod does not run (a Pending pod counts as ``active``):
the controller reads the owner's pods with its children and attaches to each Job and
Deployment what they say (:func:`with_pods`, a :class:`~.podstatus.PodReport`), so
:func:`job_outcome` and :func:`pod_problem`, which every kind calls, see it without any
kind reading pods itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stevie_api import exit_codes
from stevie_api.training import JobPhase
from stevie_operator.framework.podstatus import PodReport
from stevie_operator.framework.status import parse_time

__all__ = [
    "CHILD_TYPES",
    "DEPLOYMENTS",
    "JOBS",
    "PODS",
    "SERVICES",
    "ChildType",
    "Owned",
    "first_problem",
    "job_outcome",
    "job_seconds",
    "pod_problem",
    "pod_report",
    "with_pods",
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


PODS = "stevie.dev/pods"
"""The key of a listed Job or Deployment that holds its :class:`~.podstatus.PodReport`
(put there by the controller, :func:`with_pods`; not a Kubernetes field, never sent back)."""


def with_pods(child: Mapping[str, Any], report: PodReport) -> dict[str, Any]:
    """The child as listed, with what its pods say."""
    return {**child, PODS: report}


def pod_report(child: Mapping[str, Any]) -> PodReport | None:
    """What the child's pods say; None when nobody listed them (a Job built by a test, or
    read alone)."""
    found = child.get(PODS)
    return found if isinstance(found, PodReport) else None


def _name(child: Mapping[str, Any]) -> str:
    return str((child.get("metadata") or {}).get("name", "?"))


def _true_conditions(status: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
    return {
        c.get("type"): c
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True"
    }


def pod_problem(child: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when an unfinished Job's or a Deployment's pod cannot start or be
    created until someone acts (ImagePullBackOff, Unschedulable, FailedCreate...): a kind
    shows it as Degraded, in its phase (the Job keeps trying; fixed, it runs)."""
    report = pod_report(child)
    if report is None or report.problem is None:
        return None
    if child.get("kind", "Job") == "Job" and {"Complete", "Failed"} & set(
        _true_conditions(child.get("status") or {})
    ):
        return None
    reason, text = report.problem
    return reason, f"{child.get('kind', 'Job')} {_name(child)}: {text}"


def first_problem(children: Mapping[str, Mapping[str, Any]]) -> tuple[str, str] | None:
    """:func:`pod_problem` of the first child (by name) that has one, saying how many more
    do: the Degraded of a kind with many Jobs (trials, intervals)."""
    found = [p for _, child in sorted(children.items()) if (p := pod_problem(child))]
    if not found:
        return None
    reason, message = found[0]
    more = len(found) - 1
    return reason, message + (f"; {more} more Job(s) cannot start either" if more else "")


_EXIT_CODE = re.compile(r"exit code (\d+)")


def _failure(name: str, reason: str, message: str, report: PodReport | None) -> tuple[str, str]:
    """(reason, message) of a failed Job's condition, led by what the trainer's exit says
    when the Job failed on its podFailurePolicy (the Job controller's message names the
    exit code: "Container trainer for pod ns/p failed with exit code 3 matching FailJob
    rule..."), or by the kernel's OOM kill, which the Job only counts as a failed pod."""
    failure = report.failure if report is not None else None
    found = _EXIT_CODE.search(message) if reason == "PodFailurePolicy" else None
    if found is None and failure is not None and failure[0] == "OOMKilled":
        text = f"Job {name} failed: {failure[1]}; raise the memory in the spec's resources"
        return "OOMKilled", f"{text} ({reason}: {message})"
    pod = f"; {failure[1]}" if failure is not None else ""
    if found is None:
        return reason, f"Job {name} failed: {message}{pod}"
    code = int(found.group(1))
    return reason, (
        f"Job {name} failed: the trainer {exit_codes.describe(code)} (exit {code}), not "
        f"retried; its error is the last line of `kubectl logs job/{name}`: {message}{pod}"
    )


def _unfinished(
    name: str, status: Mapping[str, Any], report: PodReport | None
) -> tuple[JobPhase, str, str, None]:
    """Running only when a pod runs: the Job's ``ready`` count (Kubernetes >= 1.24) or the
    pods. Without either (an older cluster, ``stevie run``'s processes) ``active`` stands."""
    ready = status.get("ready")
    active = int(status.get("active") or 0)
    if (report is not None and report.running) or (isinstance(ready, int) and ready > 0):
        return "Running", "Training", f"Job {name} is running", None
    if report is not None and report.problem is not None:
        reason, text = report.problem
        return "Pending", reason, f"Job {name}: {text}", None
    listed = report is not None and report.pods > 0
    if active > 0 and ready is None and not listed:
        return "Running", "Training", f"Job {name} is running", None
    why = (report.waiting if report is not None else None) or (
        "not created yet" if active == 0 else "not ready yet"
    )
    return "Pending", "JobPending", f"Job {name}: waiting for its pod: {why}", None


def job_outcome(job: Mapping[str, Any]) -> tuple[JobPhase, str, str, datetime | None]:
    """(phase, reason, message, finished at) from a Job's status and, when the controller
    listed them, its pods (:func:`pod_report`)."""
    status = job.get("status") or {}
    name = _name(job)
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
        return "Failed", *_failure(name, reason, message, pod_report(job)), when
    return _unfinished(name, status, pod_report(job))


def job_seconds(job: Mapping[str, Any]) -> float | None:
    """Wall time of a finished Job (start to completion or failure), or None."""
    status = job.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return None
    end = parse_time(status.get("completionTime")) or job_outcome(job)[3]
    return None if end is None else max(0.0, (end - start).total_seconds())
