"""The HPOStudy as the reconciler sees it: plain data read from Optuna and storage, so that
the plan is a pure function (:mod:`.study` does the reading)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stevie_api.hpo import (
    HPOStudy,
    HPOStudyStatus,
    OverfittingStatus,
    SeedSpreadStatus,
    SignificanceStatus,
    TrialCounts,
)
from stevie_trainer.hpo.study import AskedTrial

__all__ = ["FinishOutputs", "FinishedTrial", "StudyProblem", "StudyTarget", "StudyView"]


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
    overfitting: OverfittingStatus | None = None
    seed_spread: SeedSpreadStatus | None = None  # the best trial's, from overfitting.json
    sentence: str | None = None
    results_uri: str | None = None
    report_uri: str | None = None


@dataclass(frozen=True)
class StudyTarget:
    """A valid study and where its Optuna storage is (``secret``: the RDB URL, kept out of
    messages)."""

    study: HPOStudy
    folder: str
    location: str
    secret: str | None = None
