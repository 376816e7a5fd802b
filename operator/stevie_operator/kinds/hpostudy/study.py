"""The operator's few Optuna calls, kept out of the reconciler so that it plans on plain data.

All of them block (file locks, SQL): the controller runs them through ``ctx.blocking``.

* :class:`StudyStorages` keeps one Optuna storage per location for the operator's lifetime:
  an RDBStorage owns a connection pool, and a JournalStorage replays the whole journal when
  opened but then only reads what was appended since;
* :func:`observe` opens the study (refusing another search space: StudyConflictError) and
  returns a :class:`~.view.StudyView`;
* :func:`apply` does what a plan asks: mark trials failed, ask new ones;
* :func:`write_spec` / :func:`read_outputs` handle study.json and the finish Job's files.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from stevie_api.hpo import (
    HPOStudy,
    HPOStudySpec,
    OverfittingStatus,
    SeedSpreadStatus,
    SignificanceStatus,
    TrialCounts,
)
from stevie_operator.framework.artifacts import read_json
from stevie_operator.framework.resource import spec_document
from stevie_operator.framework.status import count, finite, notes_line, probability
from stevie_operator.kinds.hpostudy.children import (
    OVERFITTING_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SIGNIFICANCE_FILE,
    optuna_study_name,
)
from stevie_operator.kinds.hpostudy.view import FinishedTrial, FinishOutputs, StudyView
from stevie_trainer.common import storage
from stevie_trainer.hpo.study import (
    ask_trials,
    mark_failed,
    open_storage,
    open_study,
    running_trials,
    study_summary,
)

__all__ = ["StudyStorages", "apply", "observe", "read_outputs", "write_spec"]

_STATES: dict[TrialState, Literal["completed", "pruned", "failed"]] = {
    TrialState.COMPLETE: "completed",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


Owner = tuple[str, str]  # namespace, name of the HPOStudy


class StudyStorages:
    """Open Optuna storages by location, shared by every reconcile of the operator."""

    def __init__(self) -> None:
        self._open: dict[str, optuna.storages.BaseStorage] = {}
        self._users: dict[Owner, str] = {}
        self._lock = threading.Lock()

    def get(self, location: str, owner: Owner) -> optuna.storages.BaseStorage:
        """The storage at ``location`` (opened on first use), used by ``owner``'s study."""
        with self._lock:
            previous = self._users.get(owner)
            self._users[owner] = location
            if previous is not None and previous != location:
                self._close(previous)
            found = self._open.get(location)
            if found is None:
                found = self._open[location] = open_storage(location)
            return found

    def forget(self, owner: Owner) -> None:
        """``owner`` is gone (or its storage failed): close its storage unless shared."""
        with self._lock:
            location = self._users.pop(owner, None)
            if location is not None:
                self._close(location)

    def _close(self, location: str) -> None:
        if location in self._users.values():
            return
        found = self._open.pop(location, None)
        if isinstance(found, optuna.storages.RDBStorage):
            found.engine.dispose()


def _finished(trial: FrozenTrial) -> FinishedTrial:
    start, end = trial.datetime_start, trial.datetime_complete
    seconds = (end - start).total_seconds() if start and end else None
    error = trial.user_attrs.get("error")
    return FinishedTrial(
        number=trial.number,
        state=_STATES[trial.state],
        seconds=seconds,
        error=str(error) if error is not None else None,
    )


def _open(storages: StudyStorages, resource: HPOStudy, location: str) -> optuna.Study:
    """The study, by its name in the storage (keyed by the object in an RDB: the trial and
    finish Jobs get the same name, :func:`~.children.optuna_study_name`)."""
    meta = resource.metadata
    namespace = meta.namespace or "default"
    backend = storages.get(location, (namespace, meta.name))
    return open_study(resource.spec, optuna_study_name(resource, namespace), backend)


def observe(storages: StudyStorages, resource: HPOStudy, location: str) -> StudyView:
    """Open (or create) the study and read what the reconciler needs. Raises
    StudyConflictError when the storage holds that study with another space/objectives."""
    study = _open(storages, resource, location)
    study_name = resource.metadata.name  # trials and their Jobs are named after the resource
    summary = study_summary(study)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state in _STATES]
    # In the order they finished: the reconciler reports the newest failures.
    finished.sort(key=lambda t: (t.datetime_complete or datetime.max, t.number))
    return StudyView(
        counts=summary.trials or TrialCounts(),
        running=tuple(running_trials(study, study_name)),
        summary=summary,
        finished=tuple(_finished(t) for t in finished),
    )


def apply(
    storages: StudyStorages,
    resource: HPOStudy,
    location: str,
    fail: Sequence[tuple[int, str]],
    ask: int,
) -> list[int]:
    """Mark trials FAIL (a no-op for a trial its worker finished meanwhile), then ask ``ask``
    new ones (parameters sampled now, stored in the study); returns the asked numbers."""
    study = _open(storages, resource, location)
    for number, message in fail:
        mark_failed(study, number, message)
    return [t.number for t in ask_trials(study, resource.spec, ask, resource.metadata.name)]


def write_spec(folder: str, study: HPOStudy) -> str:
    """Write ``<folder>/study.json`` unless it already says the same; returns its URI."""
    uri = storage.join(folder, "study.json")
    text = json.dumps(spec_document(study), indent=2, sort_keys=True) + "\n"
    try:
        same = storage.read_text(uri) == text
    except storage.StorageError:
        same = False
    if not same:
        storage.write_text(uri, text)
    return uri


def _significance(doc: dict[str, Any] | None) -> SignificanceStatus | None:
    if doc is None:
        return None

    significant = doc.get("significant")
    return SignificanceStatus(
        best_mean=finite(doc.get("best_mean")),
        default_mean=finite(doc.get("default_mean")),
        p_value=finite(doc.get("p_value")),
        ci_low=finite(doc.get("ci_low")),
        ci_high=finite(doc.get("ci_high")),
        significant=significant if isinstance(significant, bool) else None,
    )


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _overfitting(doc: dict[str, Any] | None) -> OverfittingStatus | None:
    """overfitting.json (stevie_trainer.hpo.luck) as the status' summary; None if absent
    (a finish Job of an older trainer)."""
    if doc is None:
        return None
    dsr, pbo = (_section(doc, key) for key in ("deflated_sharpe", "pbo"))
    return OverfittingStatus(
        deflated_sharpe=probability(dsr.get("dsr")),
        trials=count(doc.get("trials")),
        pbo=probability(pbo.get("pbo")),
        pbo_combinations=count(pbo.get("n_combinations")),
        note=notes_line(doc.get("notes")),
    )


def _seed_spread(doc: dict[str, Any] | None) -> SeedSpreadStatus | None:
    """overfitting.json's ``seed_spread`` (stevie_trainer.hpo.seeds, the best trial's) as
    the status' bestSeedSpread; None if absent. A spread of one seed stays null, not 0."""
    section = _section(doc or {}, "seed_spread")
    if not section:
        return None
    std = finite(section.get("std"))
    return SeedSpreadStatus(
        trial=count(section.get("trial")),
        seeds=count(section.get("seeds")) or 0,
        sharpe_mean=finite(section.get("mean")),
        sharpe_std=std if std is not None and std >= 0 else None,
        sharpe_min=finite(section.get("min")),
        sharpe_max=finite(section.get("max")),
    )


def read_outputs(folder: str, spec: HPOStudySpec) -> FinishOutputs:
    """What the finish Job wrote: significance.json (if enabled), the results and report."""

    def present(uri: str) -> str | None:
        try:
            return uri if storage.exists(uri) else None
        except storage.StorageError:
            return None

    significance = None
    if spec.significance.enabled:
        doc = read_json(storage.join(folder, SIGNIFICANCE_FILE))
        significance = _significance(doc)
        sentence = doc.get("sentence") if doc else None
    else:
        sentence = None
    luck = read_json(storage.join(folder, OVERFITTING_FILE))
    return FinishOutputs(
        significance=significance,
        overfitting=_overfitting(luck),
        seed_spread=_seed_spread(luck),
        sentence=sentence if isinstance(sentence, str) else None,
        results_uri=present(storage.join(folder, RESULTS_FILE)),
        report_uri=present(storage.join(folder, REPORT_FILE)),
    )
