"""kopf glue: operator-wide handlers, and TrainingRuns' thin handlers around the pure reconciler.

Run with ``kopf run -m stevie_operator.handlers --standalone -A`` (or ``stevie operator``).
Every trigger -- create, resume, update, a timer while unfinished, any event of an owned
Job -- calls the same level-based :func:`reconcile`: read the resource and its Job fresh,
read progress.json / result.json from storage, plan, create the Job if planned, patch the
status if it changed, post one Event per transition. HPOStudies: :mod:`.hpo_handlers`;
PBTPopulations: :mod:`.pbt_handlers`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from stevie_api import API_VERSION, GROUP
from stevie_api.common import utcnow
from stevie_operator import hpo_handlers, pbt_handlers
from stevie_operator.config import OperatorConfig
from stevie_operator.jobs import MANAGED_BY, job_name
from stevie_operator.kube import object_path
from stevie_operator.outputs import read_outputs
from stevie_operator.reconcile import Observed, Plan, reconcile_training_run, run_location
from stevie_operator.runtime import Runtime, live_object, post_events, register_kind, runtime

__all__ = ["Runtime", "main", "reconcile", "register"]

KIND = "TrainingRun"
PLURAL = "trainingruns"
logger = logging.getLogger(__name__)


async def _plan(rt: Runtime, body: Mapping[str, Any], job: Mapping[str, Any] | None) -> Plan:
    uri = run_location(body, rt.config)
    progress, result = await asyncio.to_thread(read_outputs, uri) if uri else (None, None)
    observed = Observed(now=utcnow(), job=job, progress=progress, result=result)
    return reconcile_training_run(body, observed, rt.config)


async def reconcile(rt: Runtime, namespace: str, name: str) -> Plan | None:
    """Reconcile one TrainingRun from fresh reads; None if it is gone or being deleted."""
    async with rt.lock(KIND, namespace, name):
        with rt.metrics.reconciling(KIND):
            client = rt.kube()
            body = await live_object(client, PLURAL, namespace, name)
            if body is None:
                return None
            jobs = object_path("batch/v1", "jobs", namespace)
            job_path = object_path("batch/v1", "jobs", namespace, job_name(name))
            plan = await _plan(rt, body, await client.get(job_path))
            if plan.job is not None and await client.create(jobs, plan.job) is None:
                # It exists after all (created meanwhile): observe it instead.
                existing = await client.get(job_path)
                if existing is not None:
                    plan = await _plan(rt, body, existing)
            if plan.status_patch:
                status_path = object_path(API_VERSION, PLURAL, namespace, name, "status")
                await client.merge_patch(status_path, {"status": plan.status_patch})
            post_events(body, plan.events)
            rt.metrics.observe(KIND, namespace, name, plan.phase, plan.best_validation_sharpe)
            return plan


def register(registry: kopf.OperatorRegistry, *, interval: float | None = None) -> None:
    """Register Stevie's handlers in ``registry`` (the timer ticks every ``interval`` s)."""
    every = interval or OperatorConfig.from_env().reconcile_interval

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime(memo)
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # Events come from the reconciler (one per transition), not from every log line.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = MANAGED_BY
        settings.posting.event_name_prefix = "stevie-"
        if rt.config.metrics_port > 0:
            port = rt.metrics.serve(rt.config.metrics_port)
            logger.info("Serving metrics on :%d/metrics", port)

    @kopf.on.login(registry=registry)
    def login(
        settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
    ) -> kopf.ConnectionInfo | None:
        rt = runtime(memo)
        server = OperatorConfig.from_env().kube_server
        info = (
            kopf.ConnectionInfo(server=server, default_namespace="default")
            if server
            else kopf.login_with_service_account(settings=settings)
            or kopf.login_with_kubeconfig(settings=settings)
        )
        rt.connection = info
        return info

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        rt = runtime(memo)
        if rt.client is not None:
            await rt.client.close()

    register_kind(registry, kind=KIND, plural=PLURAL, reconcile=reconcile, every=every)
    hpo_handlers.register(registry, every)
    pbt_handlers.register(registry, every)


register(kopf.get_default_registry())


def main(argv: Sequence[str] = ()) -> int:
    """``kopf run`` with these handlers; ``argv`` are extra ``kopf run`` options
    (default: ``--standalone --all-namespaces``)."""
    from kopf import cli

    args = ["run", "-m", __name__, *(argv or ("--standalone", "--all-namespaces"))]
    try:
        cli.main.main(args=args, prog_name="stevie operator", standalone_mode=False)
    except KeyboardInterrupt:
        return 130
    return 0
