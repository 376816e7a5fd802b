"""Where an HPOStudy lives (study folder, journal) and its Jobs: one trainer Job per trial,
then one "finish" Job. Pure functions.

Both run the shared trainer pod template (:func:`stevie_operator.framework.pods.trainer_job`:
image, resources, storage volume, security context from ``spec.template``), Katib style:

* trial N: ``python -m stevie_trainer trial --study-spec <study>/study.json
  [--storage <journal>] --trial-number N --out <study>/<study name>-tN``, Job ``<name>-tN``;
* finish: ``python -m stevie_trainer hpo-finish --study-spec ... --out <study>`` (significance
  test, then the report), Job ``<name>-finish-<trials>``: the number of finished trials is in
  the name so that a study resumed with a larger maxTrials gets a new report, while a
  restarted operator finds the same Job again.

An RDB study storage (spec.storage.urlSecretRef) reaches the pods as $STEVIE_HPO_STORAGE from
a secretKeyRef, never in args (they show in ``kubectl describe`` and ``ps``). A study in a
storage that is not the object's own journal file gets ``--optuna-study`` (see
:func:`optuna_study_name`); Job and artifact names keep the resource's name.
"""

from __future__ import annotations

from typing import Any

from stevie_api.hpo import HPOStudy
from stevie_api.naming import child_name
from stevie_operator.framework.artifacts import resource_root
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.pods import ROLE_LABEL, Owner, TrainerCommand, trainer_job
from stevie_trainer.common import storage
from stevie_trainer.hpo import STORAGE_ENV
from stevie_trainer.hpo.study import RDB_SCHEMES, journal_uri, trial_name

__all__ = [
    "OVERFITTING_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SIGNIFICANCE_FILE",
    "SPEC_FILE",
    "finish_job",
    "finish_job_name",
    "journal_location",
    "optuna_study_name",
    "storage_problem",
    "study_uri",
    "trial_job",
    "trial_job_name",
]

SPEC_FILE = "study.json"
# What the finish Job writes into the study folder (significance under significance/).
SIGNIFICANCE_FILE = "significance/significance.json"
RESULTS_FILE = "optimization_results.json"
REPORT_FILE = "optimization_report.txt"
OVERFITTING_FILE = "overfitting.json"  # DSR and PBO (stevie_trainer.hpo.luck)


def study_uri(study: HPOStudy, namespace: str, config: OperatorConfig) -> str:
    """The study folder: ``<template storage root>/<namespace>/hpostudies/<name>/<uid>``
    (study.json, the journal, one folder per trial, significance/, the report; see
    :func:`~stevie_operator.framework.artifacts.artifact_root`)."""
    root = study.spec.template.storage.uri or config.storage_uri
    return resource_root(root, namespace, study.kind, study.metadata, config.local)


def journal_location(study: HPOStudy, namespace: str, config: OperatorConfig) -> str | None:
    """The JournalStorage file the operator and the trials share; None for an RDB storage."""
    if study.spec.storage.url_secret_ref:
        return None
    return journal_uri(study.spec, study_uri(study, namespace, config))


def optuna_study_name(study: HPOStudy, namespace: str) -> str:
    """The study's name in its Optuna storage. The default JournalStorage file is the object's
    own (under its uid's folder): the resource's name, as before. An RDB (or a journalPath
    several studies may name) holds studies of every namespace, and of a deleted object of
    the same name: there it is ``<namespace>.<name>.<uid>``, so two HPOStudies of one name in
    two namespaces never share trials, nor does a study created again its predecessor's."""
    name = study.metadata.name
    if not (study.spec.storage.url_secret_ref or study.spec.storage.journal_path):
        return name
    uid = study.metadata.uid
    return f"{namespace}.{name}.{uid}" if uid else f"{namespace}.{name}"


def _study_args(study: HPOStudy, namespace: str, config: OperatorConfig) -> list[str]:
    """``--storage`` (a journal; an RDB URL comes from the environment) and the storage's
    study name where it is not the resource's."""
    args = _storage_args(study, namespace, config)
    optuna_name = optuna_study_name(study, namespace)
    return args if optuna_name == study.metadata.name else [*args, "--optuna-study", optuna_name]


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
    return child_name(study_name, trial_name(study_name, number).removeprefix(study_name))


def finish_job_name(study_name: str, finished_trials: int) -> str:
    """The deterministic name of the finish Job once ``finished_trials`` trials are done."""
    return child_name(study_name, f"-finish-{finished_trials}")


def _storage_args(study: HPOStudy, namespace: str, config: OperatorConfig) -> list[str]:
    journal = journal_location(study, namespace, config)
    return [] if journal is None else ["--storage", journal]


def _env(study: HPOStudy, namespace: str, name: str, out: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    ref = study.spec.storage
    if ref.url_secret_ref:
        key_ref = {"name": ref.url_secret_ref, "key": ref.url_secret_key}
        env.append({"name": STORAGE_ENV, "valueFrom": {"secretKeyRef": key_ref}})
    return [
        *env,
        {"name": "STEVIE_RUN_URI", "value": out},
        {"name": "STEVIE_RUN_NAME", "value": name},
        {"name": "STEVIE_RUN_NAMESPACE", "value": namespace},
    ]


def trial_job(
    study: HPOStudy, namespace: str, number: int, config: OperatorConfig
) -> dict[str, Any]:
    """The Job that runs (or resumes) trial ``number`` of ``study``."""
    folder = study_uri(study, namespace, config)
    name = trial_name(study.metadata.name, number)
    out = storage.join(folder, name)
    args = ["--study-spec", storage.join(folder, SPEC_FILE)]
    args += [*_study_args(study, namespace, config), "--trial-number", str(number)]
    return trainer_job(
        name=trial_job_name(study.metadata.name, number),
        namespace=namespace,
        owner=Owner.of(study),
        run_spec=study.spec.template,
        config=config,
        run=TrainerCommand("trial", [*args, "--out", out], out, _env(study, namespace, name, out)),
        labels={ROLE_LABEL: "trial", "stevie.dev/trial": str(number)},
        annotations={"stevie.dev/trial-number": str(number)},
    )


def finish_job(
    study: HPOStudy, namespace: str, finished_trials: int, config: OperatorConfig
) -> dict[str, Any]:
    """The Job that runs the significance test (if enabled) and writes the report."""
    folder = study_uri(study, namespace, config)
    args = ["--study-spec", storage.join(folder, SPEC_FILE)]
    args += [*_study_args(study, namespace, config), "--out", folder]
    env = _env(study, namespace, study.metadata.name, folder)
    return trainer_job(
        name=finish_job_name(study.metadata.name, finished_trials),
        namespace=namespace,
        owner=Owner.of(study),
        run_spec=study.spec.template,
        config=config,
        run=TrainerCommand("hpo-finish", args, folder, env),
        labels={ROLE_LABEL: "finish"},
    )
