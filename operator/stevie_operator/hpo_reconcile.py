"""The HPOStudy reconciler: a pure function (resource + observed Jobs + study view -> plan).

The cluster twin of ``stevie run``'s loop (:mod:`.local_hpo`), on the protocol of
:mod:`stevie_trainer.hpo.study`: count the trials; stop when the study is over; ask up to
``parallelism`` running / ``maxTrials`` finished; one Job per running trial that has none;
a trial whose Job ended while the trial is still RUNNING in Optuna (the worker died without
telling: OOM, node lost, backoff limit) is marked FAIL, and replaced while failures stay
within ``maxFailedTrials``. A running trial without a Job (operator restarted before
creating it, or the Job was deleted) gets its Job again: names are deterministic, and the
worker resumes the seeds it finished. When every trial is finished: one finish Job
(significance test, report), then Succeeded with the outputs' URIs.

The handler applies ``fail`` and ``ask`` to the study, observes it again and plans again: the
second plan launches the new trials' Jobs. Events follow from differences between the old
status and the new one (new failures, a new best trial, a phase change), so a plan that is
recomputed never repeats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from stevie_api.hpo import HPOStudy, HPOStudyStatus, SignificanceStatus, TrialCounts
from stevie_api.training import JobPhase
from stevie_operator.config import OperatorConfig
from stevie_operator.hpo_jobs import (
    REPORT_FILE,
    finish_job,
    finish_job_name,
    storage_problem,
    study_uri,
    trial_job,
    trial_job_name,
)
from stevie_operator.reconcile import INVALID_SPEC, TERMINAL, job_outcome, parse_resource
from stevie_operator.status import Event, merge_patch, phase_conditions, set_conditions
from stevie_trainer.hpo.study import AskedTrial, ask_count, study_phase

__all__ = [
    "FinishOutputs",
    "FinishedTrial",
    "Launch",
    "Observed",
    "Plan",
    "StudyProblem",
    "StudyView",
    "reconcile_hpo_study",
]

MAX_FAILURE_EVENTS = 3


@dataclass(frozen=True)
class FinishedTrial:
    """A finished trial, as the metrics and the failure Events need it."""

    number: int
    state: Literal["completed", "pruned", "failed"]
    seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class StudyView:
    """The Optuna study, read: counts, trials to run, the summary (best, top, Pareto front),
    finished trials in the order they finished."""

    counts: TrialCounts
    running: tuple[AskedTrial, ...] = ()
    summary: HPOStudyStatus = field(default_factory=HPOStudyStatus)
    finished: tuple[FinishedTrial, ...] = ()


@dataclass(frozen=True)
class StudyProblem:
    """The study could not be opened this time (Secret missing, storage unreachable, another
    search space in the storage): Degraded, retried on the next reconcile."""

    reason: str
    message: str


@dataclass(frozen=True)
class FinishOutputs:
    """What the finish Job wrote (None where absent)."""

    significance: SignificanceStatus | None = None
    sentence: str | None = None
    results_uri: str | None = None
    report_uri: str | None = None


@dataclass(frozen=True)
class Observed:
    """The world: the study's Jobs by name, the study (or why it could not be read), outputs."""

    now: datetime
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    view: StudyView | None = None
    problem: StudyProblem | None = None
    outputs: FinishOutputs | None = None


@dataclass(frozen=True)
class Launch:
    """A Job to create, and the Event to post if it was created (not if it existed)."""

    job: dict[str, Any]
    event: Event


@dataclass(frozen=True)
class Plan:
    """What to do: trials to mark failed, trials to ask, Jobs to create, status, Events."""

    status: dict[str, Any]
    status_patch: dict[str, Any]
    launches: tuple[Launch, ...] = ()
    fail: tuple[tuple[int, str], ...] = ()
    ask: int = 0
    events: tuple[Event, ...] = ()
    phase: JobPhase | None = None
    best_value: float | None = None
    problems: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """Whether the study reached Succeeded or Failed."""
        return self.phase in TERMINAL

    @property
    def changes_study(self) -> bool:
        """Whether the study must be told something (then observed and planned again)."""
        return bool(self.fail or self.ask)


@dataclass
class _Decision:
    phase: JobPhase
    reason: str
    message: str
    degraded: tuple[str, str] | None = None
    stuck: bool = False  # cannot progress until someone acts: Progressing False
    launches: list[Launch] = field(default_factory=list)
    fail: list[tuple[int, str]] = field(default_factory=list)
    ask: int = 0


def _namespace(resource: Mapping[str, Any]) -> str:
    return str((resource.get("metadata") or {}).get("namespace") or "default")


def _load_status(raw: Any) -> HPOStudyStatus:
    if isinstance(raw, Mapping):
        try:
            return HPOStudyStatus.model_validate(dict(raw))
        except ValidationError:
            pass
    return HPOStudyStatus()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _describe(counts: TrialCounts, study: HPOStudy, status: HPOStudyStatus) -> str:
    spec = study.spec
    text = (
        f"trials: {counts.completed} completed, {counts.pruned} pruned, {counts.failed} "
        f"failed, {counts.running} running (maxTrials {spec.max_trials}, parallelism "
        f"{spec.parallelism})"
    )
    if status.best_value is not None:
        text += f"; best {spec.objectives[0].metric} {_fmt(status.best_value)}"
        text += f" (trial {status.best_trial})"
    return text


def _copy_summary(status: HPOStudyStatus, summary: HPOStudyStatus) -> None:
    for name in ("trials", "best_trial", "best_value", "best_values", "best_params", "top"):
        setattr(status, name, getattr(summary, name))
    status.pareto_front_size = summary.pareto_front_size


def _trial_outcomes(name: str, observed: Observed, view: StudyView) -> list[tuple[int, str]]:
    """Running trials whose Job is over: the worker never told the study (it would have)."""
    ended = []
    for trial in view.running:
        job_name = trial_job_name(name, trial.number)
        job = observed.jobs.get(job_name)
        if job is None:
            continue
        phase, _, message, _ = job_outcome(job)
        if phase == "Failed":
            ended.append((trial.number, message))
        elif phase == "Succeeded":
            ended.append((trial.number, f"Job {job_name} completed without reporting the trial"))
    return ended


def _plan_study(
    study: HPOStudy,
    namespace: str,
    config: OperatorConfig,
    status: HPOStudyStatus,
    before: HPOStudyStatus,
    observed: Observed,
    view: StudyView,
) -> _Decision:
    name, spec = study.metadata.name, study.spec
    _copy_summary(status, view.summary)
    status.start_time = status.start_time or observed.now
    fail = _trial_outcomes(name, observed, view)
    gone = {number for number, _ in fail}
    seen = view.counts
    counts = seen.model_copy(
        update={"running": seen.running - len(fail), "failed": seen.failed + len(fail)}
    )
    jobless = [
        t
        for t in view.running
        if t.number not in gone and trial_job_name(name, t.number) not in observed.jobs
    ]
    over = study_phase(counts, spec)
    summary = _describe(view.counts, study, status)
    if over == "Failed":
        status.completion_time = status.completion_time or observed.now
        fail += [(t.number, "never launched: the study had failed") for t in jobless]
        message = (
            f"{counts.failed} trials failed, more than maxFailedTrials "
            f"({spec.max_failed_trials}); {summary}"
        )
        return _Decision("Failed", "TooManyFailedTrials", message, fail=fail)
    if over == "Succeeded":
        return _finish(study, namespace, config, status, before, observed, summary)
    status.completion_time = None
    decision = _Decision("Running", "TrialsRunning", summary, fail=fail)
    decision.ask = ask_count(counts, spec)
    for trial in jobless:
        job = trial_job(study, namespace, trial.number, config)
        text = f"Created Job {job['metadata']['name']} for trial {trial.number}"
        event = Event("Normal", "TrialStarted", f"{text}: {_params(trial.params)}")
        decision.launches.append(Launch(job, event))
    return decision


def _finish(
    study: HPOStudy,
    namespace: str,
    config: OperatorConfig,
    status: HPOStudyStatus,
    before: HPOStudyStatus,
    observed: Observed,
    summary: str,
) -> _Decision:
    """Every trial is finished: the finish Job, then Succeeded with its outputs."""
    spec, counts = study.spec, status.trials or TrialCounts()
    if status.best_trial is None:
        status.completion_time = status.completion_time or observed.now
        return _Decision("Succeeded", "StudySucceeded", f"No trial completed: no report; {summary}")
    if before.phase == "Succeeded" and before.trials == counts and before.report_uri:
        # Finished and reported (the finish Job may have been deleted since): keep it.
        old = before.get_condition("Degraded")
        kept = (old.reason, old.message) if old is not None and old.status == "True" else None
        return _Decision("Succeeded", "StudySucceeded", before.message or summary, degraded=kept)
    finished = counts.completed + counts.pruned
    job_name = finish_job_name(study.metadata.name, finished)
    job = observed.jobs.get(job_name)
    what = "the significance test and the report" if spec.significance.enabled else "the report"
    if job is None:
        launch = Launch(
            finish_job(study, namespace, finished, config),
            Event("Normal", "Finishing", f"Created Job {job_name}: {what}"),
        )
        message = f"All trials finished; Job {job_name} writes {what}; {summary}"
        return _Decision("Running", "Finishing", message, launches=[launch])
    phase, _, message, finished_at = job_outcome(job)
    if phase not in TERMINAL:
        return _Decision("Running", "Finishing", f"{message} ({what}); {summary}")
    status.completion_time = finished_at or status.completion_time or observed.now
    if phase == "Failed":
        problem = f"{message}; the best trial stands, without {what} (delete the Job to retry)"
        return _Decision("Succeeded", "StudySucceeded", summary, degraded=("ReportFailed", problem))
    outputs = observed.outputs or FinishOutputs()
    status.significance = outputs.significance
    status.results_uri = outputs.results_uri
    status.report_uri = outputs.report_uri
    degraded = None
    if outputs.report_uri is None or (spec.significance.enabled and not outputs.significance):
        folder = study_uri(study, namespace, config)
        degraded = (
            "ResultUnavailable",
            f"Job {job_name} succeeded but its outputs in {folder} (e.g. {REPORT_FILE}) could "
            "not be read",
        )
    text = summary + (f"; {outputs.sentence}" if outputs.sentence else "")
    return _Decision("Succeeded", "StudySucceeded", text, degraded=degraded)


def _events(
    before: HPOStudyStatus, status: HPOStudyStatus, d: _Decision, view: StudyView | None
) -> list[Event]:
    events: list[Event] = []
    old_failed = before.trials.failed if before.trials else 0
    if view is not None and view.counts.failed > old_failed:
        new = view.counts.failed - old_failed
        failed = [t for t in view.finished if t.state == "failed"][-new:]
        if new > MAX_FAILURE_EVENTS:
            events.append(Event("Warning", "TrialFailed", f"{new} trials failed; the latest:"))
        for t in failed[-MAX_FAILURE_EVENTS:]:
            error = t.error or "no error recorded"
            events.append(Event("Warning", "TrialFailed", f"Trial {t.number} failed: {error}"))
    if status.best_trial is not None and status.best_trial != before.best_trial:
        values = status.best_values or ([] if status.best_value is None else [status.best_value])
        shown = ", ".join(_fmt(v) for v in values)
        message = f"Trial {status.best_trial} is the best so far ({shown})"
        if status.best_params:
            message += f": {_params(status.best_params)}"
        events.append(Event("Normal", "NewBestTrial", message))
    old_fail = before.get_condition("Failed")
    invalid_again = (
        d.reason == INVALID_SPEC and old_fail is not None and old_fail.message != d.message
    )
    if d.phase != before.phase or (d.phase == "Failed" and invalid_again):
        if d.phase == "Succeeded":
            events.append(Event("Normal", "StudySucceeded", d.message))
        elif d.phase == "Failed":
            reason = INVALID_SPEC if d.reason == INVALID_SPEC else "StudyFailed"
            events.append(Event("Warning", reason, d.message))
    old_deg = before.get_condition("Degraded")
    if d.degraded is not None and (
        old_deg is None or old_deg.status != "True" or old_deg.reason != d.degraded[0]
    ):
        events.append(Event("Warning", *d.degraded))
    return events


def reconcile_hpo_study(
    resource: Mapping[str, Any], observed: Observed, config: OperatorConfig | None = None
) -> Plan:
    """Plan for one HPOStudy. Never raises on an invalid spec or an unusable storage: those
    become phase Failed with reason InvalidSpec; a study that cannot be opened right now
    becomes Degraded (and is retried)."""
    config = config or OperatorConfig()
    meta = resource.get("metadata") or {}
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
    old_raw = resource.get("status") if isinstance(resource.get("status"), Mapping) else {}
    assert isinstance(old_raw, Mapping)
    status = _load_status(old_raw)
    before = status.model_copy(deep=True)
    status.observed_generation = generation
    study = parse_resource(resource, HPOStudy)
    view = None
    if isinstance(study, list):
        d = _Decision("Failed", INVALID_SPEC, "; ".join(study))
    elif problem := storage_problem(study, _namespace(resource), config):
        d = _Decision("Failed", INVALID_SPEC, problem)
    elif observed.problem is not None:
        reason, message = observed.problem.reason, observed.problem.message
        phase = before.phase if before.phase and before.phase != "Failed" else "Pending"
        d = _Decision(phase, reason, message, degraded=(reason, message), stuck=True)
    elif observed.view is None:
        d = _Decision("Pending", "OpeningStudy", "Opening the Optuna study")
    else:
        view = observed.view
        d = _plan_study(study, _namespace(resource), config, status, before, observed, view)
    status.phase = d.phase
    status.message = d.message
    conditions = phase_conditions(d.phase, d.reason, d.message, d.degraded)
    if d.stuck:
        conditions["Progressing"] = (False, d.reason, d.message)
    set_conditions(status, conditions, generation, observed.now)
    new = status.to_dict()
    return Plan(
        status=new,
        status_patch=merge_patch(old_raw, new),
        launches=tuple(d.launches),
        fail=tuple(d.fail),
        ask=d.ask,
        events=tuple(_events(before, status, d, view)),
        phase=d.phase,
        best_value=status.best_value,
        problems=tuple(study) if isinstance(study, list) else (),
    )
