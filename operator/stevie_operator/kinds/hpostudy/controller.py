"""HPOStudy, the Kind: one Job per trial, then a finish Job; observes the Optuna study.

Observing reads the RDB URL from spec.storage's Secret (if any), writes study.json, opens
the study and reads it (blocking calls, off the event loop); persisting tells the study what
the plan decided (mark trials failed, ask new ones), after which the controller observes and
plans again, so the new trials' Jobs are created in the same reconcile.

The operator opens the study itself, so it needs the storage the trial pods use: the
JournalStorage file on the shared volume (mounted in the operator pod at the same path), or
the RDB URL it reads from the Secret (verb ``get`` on secrets).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from stevie_api.changes import IMMUTABLE_FIELD_CHANGED, effective, immutable_message, refused
from stevie_api.common import utcnow
from stevie_api.hpo import HPOStudy, HPOStudySpec
from stevie_api.kinds import KINDS, KindInfo
from stevie_operator.framework.artifacts import read_json
from stevie_operator.framework.children import Owned
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import KubeAPI
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import namespace_of, validate
from stevie_operator.framework.secrets import (
    SECRET_NOT_FOUND,
    SecretProblem,
    secret_data,
    secret_value,
)
from stevie_operator.kinds.hpostudy import study as optuna_calls
from stevie_operator.kinds.hpostudy.children import (
    SPEC_FILE,
    journal_location,
    storage_problem,
    study_uri,
)
from stevie_operator.kinds.hpostudy.metrics import HPOStudyMetrics
from stevie_operator.kinds.hpostudy.reconcile import Observed, StudyChanges, reconcile_hpo_study
from stevie_operator.kinds.hpostudy.view import StudyProblem, StudyTarget
from stevie_trainer.common import storage
from stevie_trainer.hpo import STORAGE_ENV
from stevie_trainer.hpo.study import StudyConflictError, study_phase

__all__ = ["HPOStudyKind"]

STORAGES_KEY = "hpo-storages"
logger = logging.getLogger(__name__)


async def _secret_url(api: KubeAPI, namespace: str, spec: HPOStudySpec) -> str | StudyProblem:
    """The RDB URL in spec.storage's Secret, or why it cannot be had (Degraded, retried)."""
    ref, key = spec.storage.url_secret_ref, spec.storage.url_secret_key
    assert ref is not None
    where = f"Secret {namespace}/{ref} (spec.storage.urlSecretRef)"
    data = await secret_data(api, namespace, ref, where)
    value = data if isinstance(data, SecretProblem) else secret_value(data, key, where)
    if isinstance(value, SecretProblem):
        return StudyProblem(value.reason, value.message)
    if value is None:
        return StudyProblem(SECRET_NOT_FOUND, f"{where} has no key {key!r}")
    return value


def _applied(target: StudyTarget) -> tuple[StudyTarget, tuple[str, ...]] | StudyProblem:
    """The study to run: the spec of study.json (what the trials ran; the trial pods read
    it) with the edit's mutable fields (maxTrials, parallelism, ...), and the immutable
    paths the edit changed. As Katib's webhook does, only budget and concurrency may change
    on a running study; the rest stays what its trials were run with."""
    doc = read_json(storage.join(target.folder, SPEC_FILE))
    stored = doc.get("spec") if isinstance(doc, Mapping) else None
    if not isinstance(stored, Mapping):
        return target, ()
    paths = refused("HPOStudy", stored, target.study.spec, HPOStudySpec)
    if not paths:
        return target, ()
    try:
        spec = effective("HPOStudy", stored, target.study.spec)
    except ValidationError:  # written by an older model that no longer validates
        message = immutable_message(paths, "study") + "; study.json no longer validates"
        return StudyProblem(IMMUTABLE_FIELD_CHANGED, message)
    study = target.study.model_copy(update={"spec": spec})
    return dataclasses.replace(target, study=study), tuple(paths)


def _read(
    storages: optuna_calls.StudyStorages,
    target: StudyTarget,
    jobs: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> Observed:
    """Write study.json, open and read the study, read the finish outputs once it is over
    (blocking). A storage that cannot be used becomes a problem in the status, never a crash."""
    meta = target.study.metadata
    try:
        applied = _applied(target)
        if isinstance(applied, StudyProblem):
            return Observed(now=now, jobs=jobs, problem=applied, target=target)
        target, refused_paths = applied
        study = target.study
        optuna_calls.write_spec(target.folder, study)
        view = optuna_calls.observe(storages, study, target.location)
    except StudyConflictError as err:
        message = f"{err}; spec.searchSpace and spec.objectives cannot change on a study"
        problem = StudyProblem("StudyConflict", message)
        return Observed(now=now, jobs=jobs, problem=problem, target=target)
    except Exception as err:  # storage: OSError, StorageError, SQLAlchemy errors, ...
        logger.warning("HPOStudy %s/%s: study storage: %r", meta.namespace, meta.name, err)
        storages.forget((meta.namespace or "default", meta.name))
        text = str(err) if not target.secret else str(err).replace(target.secret, "<url>")
        where = "<the RDB URL in spec.storage.urlSecretRef>" if target.secret else target.location
        problem = StudyProblem("StorageUnavailable", f"cannot open the study in {where}: {text}")
        return Observed(now=now, jobs=jobs, problem=problem, target=target)
    outputs = None
    if study_phase(view.counts, study.spec) == "Succeeded":
        outputs = optuna_calls.read_outputs(target.folder, study.spec)
    return Observed(
        now=now, jobs=jobs, view=view, outputs=outputs, target=target, refused=refused_paths
    )


class HPOStudyKind(Kind[Observed, StudyChanges, HPOStudyMetrics]):
    """An HPOStudy searches hyperparameters with Optuna, one Job per trial."""

    info: ClassVar[KindInfo] = KINDS["HPOStudy"]
    parallel_roles: ClassVar[frozenset[str]] = frozenset({"trial"})

    @staticmethod
    def storages(ctx: Context) -> optuna_calls.StudyStorages:
        """The Optuna storages the operator keeps open."""
        found = ctx.state.get(STORAGES_KEY)
        if not isinstance(found, optuna_calls.StudyStorages):
            found = ctx.state[STORAGES_KEY] = optuna_calls.StudyStorages()
        return found

    def location(self, body: Body, config: OperatorConfig) -> str | None:
        study = validate(body, HPOStudy)
        return None if isinstance(study, list) else study_uri(study, namespace_of(body), config)

    async def _target(self, ctx: Context, body: Body) -> StudyTarget | StudyProblem | None:
        """Where the study lives; None when the spec is invalid (the reconciler says why)."""
        namespace = namespace_of(body)
        study = validate(body, HPOStudy)
        if isinstance(study, list) or storage_problem(study, namespace, ctx.config):
            return None
        folder = study_uri(study, namespace, ctx.config)
        if not study.spec.storage.url_secret_ref:
            location = journal_location(study, namespace, ctx.config)
            assert location is not None
            return StudyTarget(study, folder, location)
        url = await _secret_url(ctx.api(), namespace, study.spec)
        return url if isinstance(url, StudyProblem) else StudyTarget(study, folder, url, url)

    async def observe(self, ctx: Context, body: Body, owned: Owned) -> Observed:
        now, jobs = utcnow(), owned.jobs
        target = await self._target(ctx, body)
        if isinstance(target, StudyTarget):
            return await ctx.blocking(_read, self.storages(ctx), target, jobs, now)
        return Observed(now=now, jobs=jobs, problem=target)

    def plan(self, body: Body, observed: Observed, config: OperatorConfig) -> Plan[StudyChanges]:
        return reconcile_hpo_study(body, observed, config)

    def persist(self, ctx: Context, observed: Observed, plan: Plan[StudyChanges]) -> bool:
        """Mark trials failed and ask new ones; True when the study changed."""
        changes, target = plan.work, observed.target
        if not changes or target is None:
            return False
        storages = self.storages(ctx)
        optuna_calls.apply(storages, target.study, target.location, changes.fail, changes.ask)
        return True

    def make_metrics(self, registry: CollectorRegistry) -> HPOStudyMetrics:
        return HPOStudyMetrics(registry)

    def record(
        self,
        metrics: OperatorMetrics,
        own: HPOStudyMetrics,
        namespace: str,
        name: str,
        plan: Plan[StudyChanges],
        observed: Observed,
    ) -> None:
        target = observed.target
        sharpe = (
            target is not None and target.study.spec.objectives[0].metric == "validation.sharpe"
        )
        best = plan.status.get("bestValue")
        metrics.best_sharpe(self.name, namespace, name, best if sharpe else None)
        view = observed.view
        if view is not None:
            finished = [(t.number, t.state, t.seconds) for t in view.finished]
            own.observe(namespace, name, view.counts.model_dump(), best, finished)

    def forget(self, ctx: Context, namespace: str, name: str) -> None:
        self.storages(ctx).forget((namespace, name))

    def describe(
        self, body: Body, config: OperatorConfig, secrets: Mapping[str, Mapping[str, str]]
    ) -> str:
        study = validate(body, HPOStudy)
        if isinstance(study, list):
            return super().describe(body, config, secrets)
        folder = study_uri(study, namespace_of(body), config)
        ref, key = study.spec.storage.url_secret_ref, study.spec.storage.url_secret_key
        where = journal_location(study, namespace_of(body), config)
        if ref:
            url = (secrets.get(ref) or {}).get(key, "")
            where = f"{_redacted(url) or '?'} (Secret {ref})"
        return f"study storage {where}; outputs in {folder}, trial logs in {folder}/logs"

    def local_secrets(self, body: Body, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """With spec.storage.urlSecretRef, ``stevie run`` takes the RDB URL from
        $STEVIE_HPO_STORAGE: there is no cluster Secret to read."""
        study = validate(body, HPOStudy)
        if isinstance(study, list) or not study.spec.storage.url_secret_ref:
            return {}
        ref, key = study.spec.storage.url_secret_ref, study.spec.storage.url_secret_key
        url = environ.get(STORAGE_ENV, "").strip()
        if not url:
            raise ValueError(
                f"spec.storage.urlSecretRef is {ref!r} but `stevie run` has no cluster to read "
                f"that Secret from: set {STORAGE_ENV} to the RDB URL (e.g. "
                "postgresql://user:pass@host/db)"
            )
        if _redacted(url) is None:
            raise ValueError(f"{STORAGE_ENV} is not an RDB URL (postgresql://...)")
        return {ref: {key: url}}


def _redacted(url: str) -> str | None:
    """An RDB URL with its password hidden; None if it is not an RDB URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return None
