"""TrainingRun, the Kind: one trainer Job; observes progress.json and result.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry

from stevie_api.common import utcnow
from stevie_api.kinds import KINDS, KindInfo
from stevie_api.training import TrainingRun
from stevie_operator.framework.artifacts import read_json
from stevie_operator.framework.children import Owned
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import namespace_of, validate
from stevie_operator.kinds.trainingrun.children import run_uri
from stevie_operator.kinds.trainingrun.metrics import TrainingRunMetrics
from stevie_operator.kinds.trainingrun.reconcile import (
    Observed,
    best_validation_sharpe,
    reconcile_training_run,
)
from stevie_trainer.common import storage

__all__ = ["TrainingRunKind"]


def _outputs(uri: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(progress.json, result.json) of a run, None where absent or unreadable."""
    return read_json(storage.join(uri, "progress.json")), read_json(
        storage.join(uri, "result.json")
    )


def _finished(body: Body) -> bool:
    status = body.get("status")
    return isinstance(status, Mapping) and status.get("phase") in ("Succeeded", "Failed")


class TrainingRunKind(Kind[Observed, None, TrainingRunMetrics]):
    """A TrainingRun trains one agent in one Job."""

    info: ClassVar[KindInfo] = KINDS["TrainingRun"]

    def location(self, body: Body, config: OperatorConfig) -> str | None:
        run = validate(body, TrainingRun)
        return None if isinstance(run, list) else run_uri(run, namespace_of(body), config)

    async def observe(self, ctx: Context, body: Body, owned: Owned) -> Observed:
        uri = self.location(body, ctx.config)
        progress, result = await ctx.blocking(_outputs, uri) if uri else (None, None)
        # What a finished run trained, to refuse edits once its Job is gone (a running run's
        # Job carries its spec).
        spec = None
        if uri and _finished(body):
            spec = await ctx.blocking(read_json, storage.join(uri, "spec.json"))
        return Observed(now=utcnow(), jobs=owned.jobs, progress=progress, result=result, spec=spec)

    def plan(self, body: Body, observed: Observed, config: OperatorConfig) -> Plan[None]:
        return reconcile_training_run(body, observed, config)

    def make_metrics(self, registry: CollectorRegistry) -> TrainingRunMetrics:
        return TrainingRunMetrics(registry)

    def record(
        self,
        metrics: OperatorMetrics,
        own: TrainingRunMetrics,
        namespace: str,
        name: str,
        plan: Plan[None],
        observed: Observed,
    ) -> None:
        metrics.best_sharpe(self.name, namespace, name, best_validation_sharpe(plan, observed))
        progress = plan.status.get("progress")
        if isinstance(progress, Mapping):
            own.observe(namespace, name, progress["timesteps"], progress["totalTimesteps"])
