"""The HPOStudy reconciler: a pure function (resource + observed Jobs + study view -> plan).

On the protocol of :mod:`stevie_trainer.hpo.study`: count the trials; stop when the study is
over; ask up to ``parallelism`` running / ``maxTrials`` finished; one Job per running trial
that has none; a trial whose Job ended while the trial is still RUNNING in Optuna (the
worker died without telling: OOM, node lost, backoff limit) is marked FAIL, and replaced
while failures stay within ``maxFailedTrials``. A running trial without a Job (operator
restarted before creating it, or the Job was deleted) gets its Job again: names are
deterministic, and the worker resumes the seeds it finished. When every trial is finished:
one finish Job (significance test, report), then Succeeded with the outputs' URIs.

The plan's work (``fail`` and ``ask``) is applied to the study by the controller's persist
step, which then observes and plans again: the second plan creates the new trials' Jobs.
Events follow from differences between the old status and the new one (new failures, a new
best trial, a phase change), so a plan that is recomputed never repeats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stevie_api.changes import IMMUTABLE_FIELD_CHANGED, immutable_message
from stevie_api.hpo import HPOStudy, HPOStudyStatus, TrialCounts
from stevie_operator.framework.admission import REFUSED_SPEC, refusal
from stevie_operator.framework.children import first_problem, job_outcome, pod_problem
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Child, Decision, Plan, conclude, transition_events
from stevie_operator.framework.resource import Subject, read_subject
from stevie_operator.framework.status import INVALID_SPEC, TERMINAL, Event
from stevie_operator.kinds.hpostudy.children import (
    REPORT_FILE,
    finish_job,
    finish_job_name,
    storage_problem,
    study_uri,
    trial_job,
    trial_job_name,
)
from stevie_operator.kinds.hpostudy.view import (
    FinishOutputs,
    StudyProblem,
    StudyTarget,
    StudyView,
)
from stevie_trainer.hpo.study import ask_count, study_phase

__all__ = ["Observed", "StudyChanges", "reconcile_hpo_study"]

MAX_FAILURE_EVENTS = 3
Study = Subject[HPOStudy, HPOStudyStatus]


@dataclass(frozen=True)
class Observed:
    """The world: the study's Jobs by name, the study (or why it could not be read), the
    finish Job's outputs, and where the study lives (for the persist step)."""

    now: datetime
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    view: StudyView | None = None
    problem: StudyProblem | None = None
    outputs: FinishOutputs | None = None
    target: StudyTarget | None = None
    refused: tuple[str, ...] = ()
    """Immutable spec paths the latest edit changed: ``target.study`` is then the applied
    spec (study.json) with the edit's mutable fields, and the study goes on with it."""


@dataclass(frozen=True)
class StudyChanges:
    """What the study must be told before the Jobs are created: trials to mark failed
    (number, why), and how many trials to ask."""

    fail: tuple[tuple[int, str], ...] = ()
    ask: int = 0

    def __bool__(self) -> bool:
        return bool(self.fail or self.ask)


@dataclass
class _Verdict:
    decision: Decision
    children: list[Child] = field(default_factory=list)
    fail: list[tuple[int, str]] = field(default_factory=list)
    ask: int = 0
    view: StudyView | None = None  # the study, when the verdict came from it


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
    spread = status.best_seed_spread
    if spread is not None and spread.trial != status.best_trial:
        status.best_seed_spread = None  # the finish Job's, of a trial no longer the best


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
    sub: Study, study: HPOStudy, config: OperatorConfig, observed: Observed, view: StudyView
) -> _Verdict:
    name, spec, status = study.metadata.name, study.spec, sub.status
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
        return _Verdict(Decision("Failed", "TooManyFailedTrials", message), fail=fail)
    if over == "Succeeded":
        return _finish(sub, study, config, observed, summary)
    status.completion_time = None
    stuck = first_problem(observed.jobs)  # a trial's pod cannot start (ImagePullBackOff...)
    verdict = _Verdict(Decision("Running", "TrialsRunning", summary, stuck), fail=fail)
    verdict.ask = ask_count(counts, spec)
    for trial in jobless:
        job = trial_job(study, sub.namespace, trial.number, config)
        text = f"Created Job {job['metadata']['name']} for trial {trial.number}"
        event = Event("Normal", "TrialStarted", f"{text}: {_params(trial.params)}")
        verdict.children.append(Child(job, event))
    return verdict


def _finish(
    sub: Study, study: HPOStudy, config: OperatorConfig, observed: Observed, summary: str
) -> _Verdict:
    """Every trial is finished: the finish Job, then Succeeded with its outputs."""
    spec, status, before = study.spec, sub.status, sub.before
    counts = status.trials or TrialCounts()
    if status.best_trial is None:
        status.completion_time = status.completion_time or observed.now
        message = f"No trial completed: no report; {summary}"
        return _Verdict(Decision("Succeeded", "StudySucceeded", message))
    old = before.get_condition("Degraded")
    report_failed = old is not None and old.status == "True" and old.reason == "ReportFailed"
    if (
        before.phase == "Succeeded"
        and before.trials == counts
        and (before.report_uri or report_failed)
    ):
        # Finished, reported or not (the finish Job may have been deleted since, e.g. by
        # ttlSecondsAfterFinished): keep it; a failed finish is not run again.
        kept = (old.reason, old.message) if old is not None and old.status == "True" else None
        return _Verdict(Decision("Succeeded", "StudySucceeded", before.message or summary, kept))
    finished = counts.completed + counts.pruned
    job_name = finish_job_name(study.metadata.name, finished)
    job = observed.jobs.get(job_name)
    what = "the significance test and the report" if spec.significance.enabled else "the report"
    if job is None:
        child = Child(
            finish_job(study, sub.namespace, finished, config),
            Event("Normal", "Finishing", f"Created Job {job_name}: {what}"),
        )
        message = f"All trials finished; Job {job_name} writes {what}; {summary}"
        return _Verdict(Decision("Running", "Finishing", message), children=[child])
    phase, _, message, finished_at = job_outcome(job)
    if phase not in TERMINAL:
        text = f"{message} ({what}); {summary}"
        return _Verdict(Decision("Running", "Finishing", text, pod_problem(job)))
    status.completion_time = finished_at or status.completion_time or observed.now
    if phase == "Failed":
        problem = f"{message}; the best trial stands, without {what} (the Job's logs say why)"
        degraded = ("ReportFailed", problem)
        return _Verdict(Decision("Succeeded", "StudySucceeded", summary, degraded))
    return _Verdict(_reported(sub, study, config, observed, job_name, summary))


def _reported(
    sub: Study,
    study: HPOStudy,
    config: OperatorConfig,
    observed: Observed,
    job_name: str,
    summary: str,
) -> Decision:
    """The finish Job succeeded: its outputs go into the status."""
    spec, status = study.spec, sub.status
    outputs = observed.outputs or FinishOutputs()
    status.significance = outputs.significance
    status.overfitting = outputs.overfitting
    status.best_seed_spread = outputs.seed_spread
    status.results_uri = outputs.results_uri
    status.report_uri = outputs.report_uri
    degraded = None
    if outputs.report_uri is None or (spec.significance.enabled and not outputs.significance):
        folder = study_uri(study, sub.namespace, config)
        degraded = (
            "ResultUnavailable",
            f"Job {job_name} succeeded but its outputs in {folder} (e.g. {REPORT_FILE}) could "
            "not be read",
        )
    text = summary + (f"; {outputs.sentence}" if outputs.sentence else "")
    return Decision("Succeeded", "StudySucceeded", text, degraded)


def _trial_events(
    before: HPOStudyStatus, status: HPOStudyStatus, view: StudyView | None
) -> list[Event]:
    """New failures (the latest few) and a new best trial."""
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
    return events


def _verdict(sub: Study, observed: Observed, config: OperatorConfig) -> _Verdict:
    study = sub.resource
    if study is None:
        return _Verdict(Decision("Failed", INVALID_SPEC, "; ".join(sub.problems)))
    if problem := storage_problem(study, sub.namespace, config):
        return _Verdict(Decision("Failed", INVALID_SPEC, problem))
    if observed.target is not None:  # the spec the study runs (an edit may be refused)
        study = observed.target.study
    if refused := refusal(config, ("spec.template", study.spec.template)):
        return _Verdict(Decision("Failed", *refused))  # no trial is asked, no Job created
    if observed.problem is not None:
        reason, message = observed.problem.reason, observed.problem.message
        before = sub.before.phase
        phase = before if before and before != "Failed" else "Pending"
        return _Verdict(Decision(phase, reason, message, (reason, message), stuck=True))
    if observed.view is None:
        return _Verdict(Decision("Pending", "OpeningStudy", "Opening the Optuna study"))
    verdict = _plan_study(sub, study, config, observed, observed.view)
    verdict.view = observed.view
    return verdict


def reconcile_hpo_study(
    body: Mapping[str, Any], observed: Observed, config: OperatorConfig | None = None
) -> Plan[StudyChanges]:
    """Plan for one HPOStudy. Never raises on an invalid spec or an unusable storage: those
    become phase Failed with reason InvalidSpec; a study that cannot be opened right now
    becomes Degraded (and is retried)."""
    config = config or OperatorConfig()
    sub = read_subject(body, HPOStudy, HPOStudyStatus)
    v = _verdict(sub, observed, config)
    if observed.refused and v.decision.degraded is None:  # pod problems say so first
        message = immutable_message(list(observed.refused), "study")
        v.decision.degraded = (IMMUTABLE_FIELD_CHANGED, message)
    events = _trial_events(sub.before, sub.status, v.view)
    failed = None if v.decision.reason in REFUSED_SPEC else "StudyFailed"  # say which
    events += transition_events(sub.before, v.decision, succeeded="StudySucceeded", failed=failed)
    work = StudyChanges(tuple(v.fail), v.ask)
    return conclude(
        sub, v.decision, observed.now, events=events, children=v.children, work=work,
        refused=bool(observed.refused),
    )  # fmt: skip
