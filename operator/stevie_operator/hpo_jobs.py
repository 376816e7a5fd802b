"""Where an HPOStudy lives (study folder, journal) and its Jobs: one trainer Job per trial,
then one "finish" Job. Pure functions.

Both run the shared trainer pod template (:func:`stevie_operator.jobs.trainer_job`: image,
resources, storage volume, security context from ``spec.template``), Katib style:

* trial N: ``python -m stevie_trainer trial --study-spec <study>/study.json
  [--storage <journal>] --trial-number N --out <study>/<study name>-tN``, Job ``<name>-tN``;
* finish: ``python -m stevie_trainer hpo-finish --study-spec ... --out <study>`` (significance
  test, then the report), Job ``<name>-finish-<trials>``: the number of finished trials is in
  the name so that a study resumed with a larger maxTrials gets a new report, while a
  restarted operator finds the same Job again.

An RDB study storage (spec.storage.urlSecretRef) reaches the pods as $STEVIE_HPO_STORAGE from
a secretKeyRef, never in args (they show in ``kubectl describe`` and ``ps``).
"""

from __future__ import annotations

from typing import Any

from stevie_api.hpo import HPOStudy
from stevie_operator.config import OperatorConfig
from stevie_operator.jobs import Owner, fit_name, trainer_job
from stevie_trainer.common import storage
from stevie_trainer.hpo.study import RDB_SCHEMES, journal_uri, trial_name

__all__ = [
    "KIND",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SIGNIFICANCE_FILE",
    "STORAGE_ENV",
    "finish_job",
    "finish_job_name",
    "journal_location",
    "storage_problem",
    "study_uri",
    "trial_job",
    "trial_job_name",
]

KIND = "HPOStudy"
STORAGE_ENV = "STEVIE_HPO_STORAGE"
SPEC_FILE = "study.json"
# What the finish Job writes into the study folder (significance under significance/).
SIGNIFICANCE_FILE = "significance/significance.json"
RESULTS_FILE = "optimization_results.json"
REPORT_FILE = "optimization_report.txt"


def study_uri(study: HPOStudy, namespace: str, config: OperatorConfig) -> str:
    """The study folder: ``<template storage root>/<namespace>/hpostudies/<name>`` (study.json,
    the journal, one folder per trial, significance/, the report)."""
    root = study.spec.template.storage.uri or config.storage_uri
    return storage.join(root, namespace, "hpostudies", study.metadata.name)


def journal_location(study: HPOStudy, namespace: str, config: OperatorConfig) -> str | None:
    """The JournalStorage file the operator and the trials share; None for an RDB storage."""
    if study.spec.storage.url_secret_ref:
        return None
    return journal_uri(study.spec, study_uri(study, namespace, config))


def storage_problem(study: HPOStudy, namespace: str, config: OperatorConfig) -> str | None:
    """Why the study's JournalStorage cannot work (it must be a file on a file system the
    operator and every trial pod share), or None. Checked before anything is opened."""
    journal = journal_location(study, namespace, config)
    if journal is None:
        return None
    scheme = journal.partition("://")[0].split("+", 1)[0].lower() if "://" in journal else ""
    if scheme in RDB_SCHEMES:
        return None
    path = journal.removeprefix("file://") if scheme in ("", "file") else ""
    if path.startswith("/"):
        return None
    return (
        f"spec.storage: the Optuna journal {journal} must be a file on the volume the operator "
        "and the trial pods share (a file:// storage root, or an absolute journalPath); "
        f"{scheme + '://' if scheme else 'a relative path'} cannot hold it. Set "
        "spec.template.storage.uri to file://..., or spec.storage.urlSecretRef to a Secret "
        "with an RDB URL (postgresql://...)"
    )


def trial_job_name(study_name: str, number: int) -> str:
    """The deterministic Job name of trial ``number`` (a DNS label, <= 63 characters)."""
    return fit_name(study_name, trial_name(study_name, number).removeprefix(study_name))


def finish_job_name(study_name: str, finished_trials: int) -> str:
    """The deterministic name of the finish Job once ``finished_trials`` trials are done."""
    return fit_name(study_name, f"-finish-{finished_trials}")


def _owner(study: HPOStudy) -> Owner:
    meta = study.metadata
    return Owner(KIND, meta.name, meta.uid, meta.labels)


def _storage_args(study: HPOStudy, namespace: str, config: OperatorConfig) -> list[str]:
    journal = journal_location(study, namespace, config)
    return [] if journal is None else ["--storage", journal]


def _storage_env(study: HPOStudy) -> list[dict[str, Any]]:
    ref = study.spec.storage
    if not ref.url_secret_ref:
        return []
    key_ref = {"name": ref.url_secret_ref, "key": ref.url_secret_key}
    return [{"name": STORAGE_ENV, "valueFrom": {"secretKeyRef": key_ref}}]


def trial_job(
    study: HPOStudy, namespace: str, number: int, config: OperatorConfig
) -> dict[str, Any]:
    """The Job that runs (or resumes) trial ``number`` of ``study``."""
    folder = study_uri(study, namespace, config)
    name = trial_name(study.metadata.name, number)
    out = storage.join(folder, name)
    return trainer_job(
        name=trial_job_name(study.metadata.name, number),
        namespace=namespace,
        owner=_owner(study),
        run_spec=study.spec.template,
        config=config,
        command="trial",
        args=[
            "--study-spec",
            storage.join(folder, SPEC_FILE),
            *_storage_args(study, namespace, config),
            "--trial-number",
            str(number),
            "--out",
            out,
        ],
        env=[
            *_storage_env(study),
            {"name": "STEVIE_RUN_URI", "value": out},
            {"name": "STEVIE_RUN_NAME", "value": name},
            {"name": "STEVIE_RUN_NAMESPACE", "value": namespace},
        ],
        out=out,
        labels={"stevie.dev/role": "trial", "stevie.dev/trial": str(number)},
        annotations={"stevie.dev/trial-number": str(number)},
    )


def finish_job(
    study: HPOStudy, namespace: str, finished_trials: int, config: OperatorConfig
) -> dict[str, Any]:
    """The Job that runs the significance test (if enabled) and writes the report."""
    folder = study_uri(study, namespace, config)
    return trainer_job(
        name=finish_job_name(study.metadata.name, finished_trials),
        namespace=namespace,
        owner=_owner(study),
        run_spec=study.spec.template,
        config=config,
        command="hpo-finish",
        args=[
            "--study-spec",
            storage.join(folder, SPEC_FILE),
            *_storage_args(study, namespace, config),
            "--out",
            folder,
        ],
        env=[
            *_storage_env(study),
            {"name": "STEVIE_RUN_URI", "value": folder},
            {"name": "STEVIE_RUN_NAME", "value": study.metadata.name},
            {"name": "STEVIE_RUN_NAMESPACE", "value": namespace},
        ],
        out=folder,
        labels={"stevie.dev/role": "finish"},
    )
