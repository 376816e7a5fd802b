"""The TrainingRun reconciler: a pure function (resource + observed Job and files -> plan).

Level-based: the same inputs give the same plan, and an existing Job is never created
again (its name is deterministic). The trainer writes progress.json while it trains and
result.json when it is done; the status is a summary of both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from stevie_api.changes import IMMUTABLE_FIELD_CHANGED, effective, immutable_message, refused
from stevie_api.training import (
    ArtifactsStatus,
    ProgressStatus,
    TrainingRun,
    TrainingRunSpec,
    TrainingRunStatus,
)
from stevie_operator.framework.admission import REFUSED_SPEC, refusal
from stevie_operator.framework.children import job_outcome, pod_problem, pod_report
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Child, Decision, Plan, conclude, transition_events
from stevie_operator.framework.resource import Subject, read_subject
from stevie_operator.framework.status import (
    INVALID_SPEC,
    TERMINAL,
    Event,
    finite,
    metric_summary,
    parse_time,
)
from stevie_operator.kinds.trainingrun.children import job_name, run_uri, training_job
from stevie_trainer.common import storage

__all__ = ["RESULT_FROM_POD", "Observed", "reconcile_training_run"]

Run = Subject[TrainingRun, TrainingRunStatus]
RESULT_FROM_POD = "ResultFromTerminationMessage"
"""Degraded's reason when result.json cannot be read and the status comes from the summary
the trainer left in its pod's termination message (:mod:`.framework.termination`)."""


@dataclass(frozen=True)
class Observed:
    """What the world looks like: the run's Jobs by name, the trainer's progress and result
    files."""

    now: datetime
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    progress: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None
    spec: Mapping[str, Any] | None = None
    """The spec.json the trainer recorded in the run folder (what it trained)."""


def _job_spec(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The spec the Job's pods train: its STEVIE_SPEC (None for a Job without one)."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        for var in container.get("env") or []:
            if var.get("name") == "STEVIE_SPEC" and isinstance(var.get("value"), str):
                try:
                    doc = json.loads(var["value"])
                except ValueError:
                    return None
                return doc if isinstance(doc, Mapping) else None
    return None


def _was_invalid(sub: Run) -> bool:
    failed = sub.before.get_condition("Failed")
    return failed is not None and failed.status == "True" and failed.reason in REFUSED_SPEC


def _applied(
    sub: Run, run: TrainingRun, observed: Observed
) -> tuple[TrainingRun, tuple[str, str] | None]:
    """The run as it was applied (its Job's spec, or once the Job is gone the spec.json of a
    finished run) with the edit's mutable fields, and Degraded's (reason, message) when the
    edit changed immutable fields. No applied spec yet: every field may change."""
    job = observed.jobs.get(job_name(run.metadata.name))
    if job is not None:
        applied = _job_spec(job)
    elif sub.before.phase in TERMINAL and not _was_invalid(sub):
        applied = observed.spec
    else:
        applied = None
    if applied is None:
        return run, None
    paths = refused("TrainingRun", applied, run.spec, TrainingRunSpec)
    if not paths:
        return run, None
    edit = (IMMUTABLE_FIELD_CHANGED, immutable_message(paths))
    try:
        spec = effective("TrainingRun", applied, run.spec)
    except ValidationError:  # written by an older model that no longer validates
        return run, edit
    return run.model_copy(update={"spec": spec}), edit


def _deadline(run: TrainingRun, job: Mapping[str, Any] | None) -> list[Child]:
    """The Job update that applies an edited activeDeadlineSeconds (the one Job field a
    running Job takes)."""
    if job is None or job_outcome(job)[0] in TERMINAL:
        return []
    want = run.spec.active_deadline_seconds
    if (job.get("spec") or {}).get("activeDeadlineSeconds") == want:
        return []
    meta = {"name": job_name(run.metadata.name)}
    patch = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
             "spec": {"activeDeadlineSeconds": want}}  # fmt: skip
    return [Child(patch, Event("Normal", "DeadlineUpdated", f"activeDeadlineSeconds: {want}"))]


def _steps(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and value >= 0 else None


def _progress(
    run: TrainingRun, old: ProgressStatus | None, progress: Mapping[str, Any] | None
) -> ProgressStatus:
    total = run.spec.total_timesteps
    if not isinstance(progress, Mapping):
        return old or ProgressStatus(timesteps=0, total_timesteps=total, percent=0)
    steps = _steps(progress.get("timesteps")) or 0
    raw_total = progress.get("total_timesteps")
    if isinstance(raw_total, int | float) and raw_total > 0:
        total = int(raw_total)
    stage = progress.get("stage")
    return ProgressStatus(
        timesteps=steps,
        total_timesteps=total,
        percent=max(0, min(100, steps * 100 // total)),
        stage=stage if isinstance(stage, str) else None,
        fold=_fold(progress.get("fold")),
    )


def _fold(fold: Any) -> str | None:
    """progress.json's walk-forward fold ({"index": 0-based, "count": K}) as "i/K"."""
    if not isinstance(fold, Mapping):
        return None
    index, count = fold.get("index"), fold.get("count")
    if isinstance(index, int) and isinstance(count, int) and 0 <= index < count:
        return f"{index + 1}/{count}"
    return None


def _apply_result(
    status: TrainingRunStatus, run: TrainingRun, result: Mapping[str, Any], uri: str
) -> None:
    status.validation = metric_summary(result.get("validation"))
    test = result.get("test")
    status.test = metric_summary(test.get("agent")) if isinstance(test, Mapping) else None
    artifacts = result.get("artifacts")
    model = artifacts.get("model") if isinstance(artifacts, Mapping) else None
    status.artifacts = ArtifactsStatus(
        uri=uri,
        model=model if isinstance(model, str) else None,
        result=storage.join(uri, "result.json"),
    )
    steps = _steps(result.get("timesteps"))
    total = run.spec.total_timesteps
    if steps is None:
        steps = status.progress.timesteps if status.progress else total
    status.progress = ProgressStatus(
        timesteps=steps,
        total_timesteps=total,
        percent=100,
        stage=status.progress.stage if status.progress else None,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _kept(sub: Run) -> Decision:
    """Finished, and the Job is gone (deleted or collected): keep the outcome."""
    status = sub.status
    phase = str(status.phase)
    cond = status.get_condition("Ready" if phase == "Succeeded" else "Failed")
    old = sub.before.get_condition("Degraded")
    degraded = None
    if old is not None and old.status == "True" and phase != "Failed":
        degraded = (old.reason, old.message)
    return Decision(phase, cond.reason if cond else phase, status.message or "", degraded)


def _gone_after_success(sub: Run, observed: Observed, name: str) -> bool:
    """The Job this status started is gone, and result.json says the run succeeded: the Job
    finished and was deleted (``ttlSecondsAfterFinished``, or by hand) before its end was
    recorded. Its outcome is the result; running it again would redo nothing. (A resource
    with no status yet still gets its Job: the trainer decides what an old result means.)"""
    result = observed.result
    started = sub.before.phase in ("Pending", "Running") and sub.before.job_name == name
    return started and isinstance(result, Mapping) and result.get("status") == "succeeded"


def _succeeded(
    sub: Run, run: TrainingRun, observed: Observed, uri: str, job: Mapping[str, Any] | None = None
) -> Decision:
    """Succeeded, with the result in the status: result.json's, else the summary the pod left
    in its termination message (the same shape, fewer fields), else none (Degraded either
    way: the store did not answer)."""
    status, name = sub.status, job_name(run.metadata.name)
    result, degraded = observed.result, None
    if not isinstance(result, Mapping):
        why = f"Job {name} succeeded but {storage.join(uri, 'result.json')} could not be read"
        report = pod_report(job) if job is not None else None
        result = report.summary if report is not None else None
        if result is None:
            return Decision("Succeeded", "TrainingSucceeded", f"Job {name} completed",
                            ("ResultUnavailable", why))  # fmt: skip
        # Its own reason: the status has the metrics, only the store is amiss.
        text = "the status comes from its pod's termination message (headline metrics only)"
        degraded = (RESULT_FROM_POD, f"{why}; {text}")
    _apply_result(status, run, result, uri)
    assert status.progress is not None
    val = status.validation.sharpe if status.validation else None
    test = status.test.sharpe if status.test else None
    message = (
        f"Trained {status.progress.timesteps} steps: validation Sharpe {_fmt(val)}, "
        f"test Sharpe {_fmt(test)}"
    )
    return Decision("Succeeded", "TrainingSucceeded", message, degraded)


def _running(sub: Run, run: TrainingRun, job: Mapping[str, Any]) -> Decision:
    failures = int((job.get("status") or {}).get("failed") or 0)
    degraded = pod_problem(job)
    if failures and degraded is None:
        report = pod_report(job)
        last = f" (the latest, {report.failure[1]})" if report and report.failure else ""
        degraded = (
            "PodRetrying",
            f"{failures} trainer pod(s) failed{last}; retrying from the latest checkpoint "
            f"(backoffLimit {run.spec.backoff_limit})",
        )
    p = sub.status.progress
    assert p is not None
    message = f"Training: {p.timesteps}/{p.total_timesteps} steps ({p.percent}%)" + (
        f", stage {p.stage}" if p.stage else ""
    )
    return Decision("Running", "Training", message, degraded)


def _observe_job(
    sub: Run, run: TrainingRun, observed: Observed, job: Mapping[str, Any], uri: str
) -> Decision:
    phase, reason, message, finished_at = job_outcome(job)
    status = sub.status
    status.start_time = parse_time((job.get("status") or {}).get("startTime")) or status.start_time
    status.progress = _progress(run, status.progress, observed.progress)
    if phase in TERMINAL:
        status.completion_time = finished_at or status.completion_time or observed.now
    if phase == "Succeeded":
        return _succeeded(sub, run, observed, uri, job)
    if phase == "Running":
        return _running(sub, run, job)
    return Decision(phase, reason, message, pod_problem(job))


def _events(sub: Run, d: Decision, children: list[Child]) -> list[Event]:
    if children:
        return []  # the Job's own Event (JobCreated) is posted once it is created
    events = []
    if d.phase == "Running" and sub.before.phase != "Running":
        events.append(Event("Normal", "TrainingStarted", f"Job {sub.status.job_name} is running"))
    return events + transition_events(sub.before, d, succeeded="TrainingSucceeded")


def reconcile_training_run(
    body: Mapping[str, Any], observed: Observed, config: OperatorConfig | None = None
) -> Plan[None]:
    """Plan for one TrainingRun: the Job to create, the status, the Events. Never raises on
    an invalid spec: that becomes phase Failed with reason InvalidSpec (or ImageNotAllowed,
    ServiceAccountNotAllowed: :mod:`~stevie_operator.framework.admission`)."""
    config = config or OperatorConfig()
    sub = read_subject(body, TrainingRun, TrainingRunStatus)
    run, status = sub.resource, sub.status
    children: list[Child] = []
    updates: list[Child] = []
    edit = None
    if run is None:
        status.job_name = None
        d = Decision("Failed", INVALID_SPEC, "; ".join(sub.problems))
    else:
        run, edit = _applied(sub, run, observed)
        uri = run_uri(run, sub.namespace, config)
        status.job_name = job_name(run.metadata.name)
        if status.artifacts is None or status.artifacts.uri != uri:
            status.artifacts = ArtifactsStatus(uri=uri)
        job = observed.jobs.get(status.job_name)
        failed = sub.before.get_condition("Failed")
        was_invalid = failed is not None and failed.reason in REFUSED_SPEC
        if job is not None:
            d = _observe_job(sub, run, observed, job, uri)
        elif sub.before.phase in TERMINAL and not was_invalid:
            d = _kept(sub)
        elif _gone_after_success(sub, observed, status.job_name):
            status.completion_time = status.completion_time or observed.now
            d = _succeeded(sub, run, observed, uri)
        elif refused_by := refusal(config, ("spec", run.spec)):
            status.job_name = None  # no Job: as for an invalid spec
            d = Decision("Failed", *refused_by)
        else:
            message = f"Created Job {status.job_name}"
            children.append(Child(training_job(run, sub.namespace, config),
                                  Event("Normal", "JobCreated", message)))  # fmt: skip
            status.progress = _progress(run, status.progress, observed.progress)
            d = Decision("Pending", "JobCreated", message)
        updates = _deadline(run, job)
    if edit is not None and d.degraded is None:  # a pod that cannot start says so first
        d.degraded = edit  # the Job goes on with the spec it started with; say why
    events = _events(sub, d, children)
    return conclude(sub, d, observed.now, events=events, children=children, updates=updates,
                    refused=edit is not None)  # fmt: skip


def best_validation_sharpe(plan: Plan[None], observed: Observed) -> float | None:
    """The run's best validation Sharpe: from the result, else from progress.json."""
    validation = plan.status.get("validation") or {}
    best = finite(validation.get("sharpe"))
    if best is None and isinstance(observed.progress, Mapping):
        best = finite(observed.progress.get("best_validation_sharpe"))
    return best
