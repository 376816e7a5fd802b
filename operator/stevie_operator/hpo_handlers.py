"""kopf glue for HPOStudies: thin handlers around the pure reconciler (:mod:`.hpo_reconcile`).

Every trigger -- create, resume, a spec update, a timer while unfinished, an event of an
owned Job -- calls the same level-based :func:`reconcile`: read the resource, its Jobs and
(for an RDB storage) its Secret; write study.json; open and observe the Optuna study (in a
thread: Optuna blocks on file locks and SQL); plan; if the plan marks trials failed or asks
new ones, do it and plan again (so the new trials' Jobs are created in the same reconcile);
create the Jobs; patch the status; post the Events; update the metrics.

The operator opens the study itself, so it needs the storage the trial pods use: the
JournalStorage file on the shared volume (mounted in the operator pod at the same path), or
the RDB URL it reads from the Secret (verb ``get`` on secrets).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf

from stevie_api import API_VERSION
from stevie_api.common import utcnow
from stevie_api.hpo import HPOStudy, HPOStudySpec
from stevie_operator import hpo_study
from stevie_operator.hpo_jobs import KIND, journal_location, storage_problem, study_uri
from stevie_operator.hpo_reconcile import Observed, Plan, StudyProblem, reconcile_hpo_study
from stevie_operator.kube import KubeClient, KubeError, object_path
from stevie_operator.reconcile import parse_resource
from stevie_operator.runtime import Runtime, live_object, owned_jobs, post_events, register_kind
from stevie_trainer.hpo.study import StudyConflictError, study_phase

__all__ = ["KIND", "PLURAL", "reconcile", "register"]

PLURAL = "hpostudies"
STORAGES_KEY = "hpo-storages"
MAX_PASSES = 3  # plan -> tell the study -> plan again; two passes settle in practice
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Target:
    """A valid study and where its Optuna storage is."""

    study: HPOStudy
    folder: str
    location: str
    secret: str | None = None  # the RDB URL, kept out of messages


def _storages(rt: Runtime) -> hpo_study.StudyStorages:
    found = rt.extras.get(STORAGES_KEY)
    if not isinstance(found, hpo_study.StudyStorages):
        found = rt.extras[STORAGES_KEY] = hpo_study.StudyStorages()
    return found


async def _secret_url(client: KubeClient, namespace: str, spec: HPOStudySpec) -> str | StudyProblem:
    """The RDB URL in spec.storage's Secret, or why it cannot be had (Degraded, retried)."""
    ref, key = spec.storage.url_secret_ref, spec.storage.url_secret_key
    assert ref is not None
    where = f"Secret {namespace}/{ref} (spec.storage.urlSecretRef)"
    try:
        secret = await client.get(object_path("v1", "secrets", namespace, ref))
    except KubeError as err:
        return StudyProblem("StorageSecretUnavailable", f"cannot read {where}: {err}")
    if secret is None:
        return StudyProblem("StorageSecretNotFound", f"{where} not found")
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return StudyProblem("StorageSecretNotFound", f"{where} has no key {key!r}")
    try:
        return base64.b64decode(raw, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return StudyProblem("StorageSecretInvalid", f"{where}: key {key!r} is not base64 text")


async def _target(
    rt: Runtime, client: KubeClient, body: Mapping[str, Any], namespace: str
) -> _Target | StudyProblem | None:
    """Where the study lives; None when the spec is invalid (the reconciler says why)."""
    study = parse_resource(body, HPOStudy)
    if isinstance(study, list) or storage_problem(study, namespace, rt.config):
        return None
    folder = study_uri(study, namespace, rt.config)
    if not study.spec.storage.url_secret_ref:
        location = journal_location(study, namespace, rt.config)
        assert location is not None
        return _Target(study, folder, location)
    url = await _secret_url(client, namespace, study.spec)
    return url if isinstance(url, StudyProblem) else _Target(study, folder, url, url)


def _observe(
    storages: hpo_study.StudyStorages,
    target: _Target,
    namespace: str,
    jobs: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> Observed:
    """Write study.json, open and read the study, read the finish outputs once it is over.
    A storage that cannot be used becomes a problem in the status, never a crash."""
    study, spec = target.study, target.study.spec
    try:
        hpo_study.write_spec(target.folder, study)
        view = hpo_study.observe(storages, study, target.location)
    except StudyConflictError as err:
        message = f"{err}; spec.searchSpace and spec.objectives cannot change on a study"
        return Observed(now=now, jobs=jobs, problem=StudyProblem("StudyConflict", message))
    except Exception as err:  # storage: OSError, StorageError, SQLAlchemy errors, ...
        logger.warning("HPOStudy %s/%s: study storage: %r", namespace, study.metadata.name, err)
        storages.forget((namespace, study.metadata.name))
        text = str(err) if not target.secret else str(err).replace(target.secret, "<url>")
        where = "<the RDB URL in spec.storage.urlSecretRef>" if target.secret else target.location
        problem = StudyProblem("StorageUnavailable", f"cannot open the study in {where}: {text}")
        return Observed(now=now, jobs=jobs, problem=problem)
    outputs = None
    if study_phase(view.counts, spec) == "Succeeded":
        outputs = hpo_study.read_outputs(target.folder, spec)
    return Observed(now=now, jobs=jobs, view=view, outputs=outputs)


async def reconcile(rt: Runtime, namespace: str, name: str) -> Plan | None:
    """Reconcile one HPOStudy from fresh reads; None if it is gone or being deleted."""
    async with rt.lock(KIND, namespace, name):
        with rt.metrics.reconciling(KIND):
            client = rt.kube()
            body = await live_object(client, PLURAL, namespace, name)
            if body is None:
                return None
            jobs_path = object_path("batch/v1", "jobs", namespace)
            jobs = await owned_jobs(client, KIND, namespace, name)
            now = utcnow()
            target = await _target(rt, client, body, namespace)
            storages = _storages(rt)
            if isinstance(target, _Target):
                observed = await asyncio.to_thread(_observe, storages, target, namespace, jobs, now)
            else:
                observed = Observed(now=now, jobs=jobs, problem=target)
            plan = reconcile_hpo_study(body, observed, rt.config)
            for _ in range(MAX_PASSES):
                if not plan.changes_study or not isinstance(target, _Target):
                    break
                await asyncio.to_thread(
                    hpo_study.apply, storages, target.study, target.location, plan.fail, plan.ask
                )
                observed = await asyncio.to_thread(_observe, storages, target, namespace, jobs, now)
                plan = reconcile_hpo_study(body, observed, rt.config)
            for launch in plan.launches:
                if await client.create(jobs_path, launch.job) is not None:
                    post_events(body, [launch.event])
            if plan.status_patch:
                status_path = object_path(API_VERSION, PLURAL, namespace, name, "status")
                await client.merge_patch(status_path, {"status": plan.status_patch})
            post_events(body, plan.events)
            _record(rt, namespace, name, plan, observed, target)
            return plan


def _record(
    rt: Runtime,
    namespace: str,
    name: str,
    plan: Plan,
    observed: Observed,
    target: _Target | StudyProblem | None,
) -> None:
    sharpe = isinstance(target, _Target) and (
        target.study.spec.objectives[0].metric == "validation.sharpe"
    )
    rt.metrics.observe(KIND, namespace, name, plan.phase, plan.best_value if sharpe else None)
    view = observed.view
    if view is not None:
        counts = view.counts.model_dump()
        finished = [(t.number, t.state, t.seconds) for t in view.finished]
        rt.metrics.observe_study(namespace, name, counts, plan.best_value, finished)


def register(registry: kopf.OperatorRegistry, every: float) -> None:
    """Register the HPOStudy handlers (the timer ticks every ``every`` seconds)."""

    def forget_storage(rt: Runtime, namespace: str, name: str) -> None:
        _storages(rt).forget((namespace, name))

    register_kind(
        registry, kind=KIND, plural=PLURAL, reconcile=reconcile, every=every,
        on_deleted=forget_storage,
    )  # fmt: skip
