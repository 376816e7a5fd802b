"""The TrainingRun reconciler: a pure function (resource + observed children -> plan).

Level-based: create, resume, update, timer and child-Job events all call the same function;
the same inputs give the same plan, and an existing Job is never created again (its name is
deterministic). Used by the kopf handlers and by the local runner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stevie_api.loader import problems as spec_problems
from stevie_api.training import (
    ArtifactsStatus,
    JobPhase,
    ProgressStatus,
    TrainingRun,
    TrainingRunStatus,
)
from stevie_operator.config import OperatorConfig
from stevie_operator.jobs import job_name, run_uri, training_job
from stevie_operator.status import (
    Event,
    finite,
    merge_patch,
    metric_summary,
    parse_time,
    phase_conditions,
    set_conditions,
)
from stevie_trainer.common import storage

__all__ = [
    "Observed",
    "Plan",
    "job_outcome",
    "parse_resource",
    "parse_training_run",
    "reconcile_training_run",
    "run_location",
]

TERMINAL: tuple[JobPhase, ...] = ("Succeeded", "Failed")
INVALID_SPEC = "InvalidSpec"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Observed:
    """What the world looks like: the child Job, the trainer's progress and result files."""

    now: datetime
    job: Mapping[str, Any] | None = None
    progress: Mapping[str, Any] | None = None
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    """What to do: create a Job (or not), the status to write, the Events to post."""

    status: dict[str, Any]
    status_patch: dict[str, Any]
    job: dict[str, Any] | None = None
    events: tuple[Event, ...] = ()
    phase: JobPhase | None = None
    best_validation_sharpe: float | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        """Whether the run reached Succeeded or Failed."""
        return self.phase in TERMINAL


def parse_resource(resource: Mapping[str, Any], model: type[M]) -> M | list[str]:
    """The validated resource of kind ``model``, or one line per problem (``spec.x.y: ...``)."""
    doc = {
        key: resource[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in resource
    }
    try:
        payload = json.dumps(doc, default=str)
        return model.model_validate_json(payload, strict=True, by_alias=True, by_name=False)
    except ValidationError as err:
        return spec_problems(err, model) or [str(err).splitlines()[0]]
    except ValueError as err:
        return [str(err)]


def parse_training_run(resource: Mapping[str, Any]) -> TrainingRun | list[str]:
    """The validated TrainingRun, or one line per problem (``spec.x.y: message``)."""
    return parse_resource(resource, TrainingRun)


def _namespace(resource: Mapping[str, Any]) -> str:
    return str((resource.get("metadata") or {}).get("namespace") or "default")


def run_location(resource: Mapping[str, Any], config: OperatorConfig) -> str | None:
    """The run's artifact URI (where progress.json and result.json appear); None if invalid."""
    run = parse_training_run(resource)
    if isinstance(run, list):
        return None
    return run_uri(run, _namespace(resource), config)


def _load_status(raw: Any) -> TrainingRunStatus:
    if isinstance(raw, Mapping):
        try:
            return TrainingRunStatus.model_validate(dict(raw))
        except ValidationError:
            pass
    return TrainingRunStatus()


def job_outcome(job: Mapping[str, Any]) -> tuple[JobPhase, str, str, datetime | None]:
    """(phase, reason, message, finished at) from a Job's status."""
    status = job.get("status") or {}
    name = (job.get("metadata") or {}).get("name", "?")
    true = {
        c.get("type"): c
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True"
    }
    if "Complete" in true or int(status.get("succeeded") or 0) > 0:
        when = parse_time(status.get("completionTime")) or parse_time(
            (true.get("Complete") or {}).get("lastTransitionTime")
        )
        return "Succeeded", "TrainingSucceeded", f"Job {name} completed", when
    failed = true.get("Failed") or true.get("FailureTarget")
    if failed is not None:
        reason = str(failed.get("reason") or "JobFailed")
        message = str(failed.get("message") or f"Job {name} failed")
        return (
            "Failed",
            reason,
            f"Job {name} failed: {message}",
            parse_time(failed.get("lastTransitionTime")),
        )
    if int(status.get("active") or 0) > 0:
        return "Running", "Training", f"Job {name} is running", None
    return "Pending", "JobPending", f"Job {name} is waiting for its pod to start", None


def _progress(
    run: TrainingRun, old: ProgressStatus | None, progress: Mapping[str, Any] | None
) -> ProgressStatus:
    total = run.spec.total_timesteps
    if not isinstance(progress, Mapping):
        return old or ProgressStatus(timesteps=0, total_timesteps=total, percent=0)
    raw_steps = progress.get("timesteps")
    steps = int(raw_steps) if isinstance(raw_steps, int | float) and raw_steps >= 0 else 0
    raw_total = progress.get("total_timesteps")
    if isinstance(raw_total, int | float) and raw_total > 0:
        total = int(raw_total)
    stage = progress.get("stage")
    return ProgressStatus(
        timesteps=steps,
        total_timesteps=total,
        percent=max(0, min(100, steps * 100 // total)),
        stage=stage if isinstance(stage, str) else None,
    )


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
    raw_steps = result.get("timesteps")
    steps = int(raw_steps) if isinstance(raw_steps, int | float) and raw_steps >= 0 else None
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


def reconcile_training_run(
    resource: Mapping[str, Any],
    observed: Observed,
    config: OperatorConfig | None = None,
) -> Plan:
    """Plan for one TrainingRun: the Job to create, the status, the Events. Never raises on
    an invalid spec: that becomes phase Failed with reason InvalidSpec."""
    config = config or OperatorConfig()
    meta = resource.get("metadata") or {}
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
    old_raw = resource.get("status") if isinstance(resource.get("status"), Mapping) else {}
    assert isinstance(old_raw, Mapping)
    status = _load_status(old_raw)
    old_phase = status.phase
    old_failed = status.get_condition("Failed")
    old_degraded = status.get_condition("Degraded")
    was_invalid = old_failed is not None and old_failed.reason == INVALID_SPEC
    status.observed_generation = generation
    events: list[Event] = []
    job: dict[str, Any] | None = None
    run = parse_training_run(resource)

    if isinstance(run, list):
        message = "; ".join(run)
        phase: JobPhase = "Failed"
        reason = INVALID_SPEC
        degraded: tuple[str, str] | None = None
        status.job_name = None
    else:
        uri = run_uri(run, _namespace(resource), config)
        status.job_name = job_name(run.metadata.name)
        if status.artifacts is None or status.artifacts.uri != uri:
            status.artifacts = ArtifactsStatus(uri=uri)
        degraded = None
        if observed.job is None:
            if old_phase in TERMINAL and not was_invalid:
                # Finished, and the Job is gone (deleted or collected): keep the outcome.
                phase = old_phase
                cond = status.get_condition("Ready" if phase == "Succeeded" else "Failed")
                reason = cond.reason if cond else phase
                message = status.message or ""
                if old_degraded is not None and old_degraded.status == "True" and phase != "Failed":
                    degraded = (old_degraded.reason, old_degraded.message)
            else:
                job = training_job(run, _namespace(resource), config)
                phase, reason = "Pending", "JobCreated"
                message = f"Created Job {status.job_name}"
                status.progress = _progress(run, status.progress, observed.progress)
        else:
            phase, reason, message, finished_at = job_outcome(observed.job)
            job_status = observed.job.get("status") or {}
            status.start_time = parse_time(job_status.get("startTime")) or status.start_time
            status.progress = _progress(run, status.progress, observed.progress)
            if phase == "Succeeded":
                if isinstance(observed.result, Mapping):
                    _apply_result(status, run, observed.result, uri)
                    val = status.validation.sharpe if status.validation else None
                    test = status.test.sharpe if status.test else None
                    message = (
                        f"Trained {status.progress.timesteps} steps: validation Sharpe "
                        f"{_fmt(val)}, test Sharpe {_fmt(test)}"
                    )
                else:
                    degraded = (
                        "ResultUnavailable",
                        f"Job {status.job_name} succeeded but "
                        f"{storage.join(uri, 'result.json')} could not be read",
                    )
            elif phase == "Running":
                failures = int(job_status.get("failed") or 0)
                if failures:
                    degraded = (
                        "PodRetrying",
                        f"{failures} trainer pod(s) failed; retrying from the latest "
                        f"checkpoint (backoffLimit {run.spec.backoff_limit})",
                    )
                p = status.progress
                message = f"Training: {p.timesteps}/{p.total_timesteps} steps ({p.percent}%)" + (
                    f", stage {p.stage}" if p.stage else ""
                )
            if phase in TERMINAL:
                status.completion_time = finished_at or status.completion_time or observed.now

    status.phase = phase
    status.message = message
    set_conditions(
        status, phase_conditions(phase, reason, message, degraded), generation, observed.now
    )

    if job is not None:
        events.append(Event("Normal", "JobCreated", message))
    elif phase != old_phase or (phase == "Failed" and old_failed and old_failed.message != message):
        if phase == "Running":
            events.append(Event("Normal", "TrainingStarted", f"Job {status.job_name} is running"))
        elif phase == "Succeeded":
            events.append(Event("Normal", "TrainingSucceeded", message))
        elif phase == "Failed":
            events.append(Event("Warning", reason, message))
    if degraded is not None and (old_degraded is None or old_degraded.status != "True"):
        events.append(Event("Warning", degraded[0], degraded[1]))

    new = status.to_dict()
    best = status.validation.sharpe if status.validation else None
    if best is None and isinstance(observed.progress, Mapping):
        best = finite(observed.progress.get("best_validation_sharpe"))
    return Plan(
        status=new,
        status_patch=merge_patch(old_raw, new),
        job=job,
        events=tuple(events),
        phase=phase,
        best_validation_sharpe=best,
        problems=tuple(run) if isinstance(run, list) else (),
    )
