"""Ensemble, the Kind: watches its members' sources; one backtest Job per version, then
the decision service's Deployment and Service."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from stevie_api import API_VERSION
from stevie_api.common import utcnow
from stevie_api.ensemble import Ensemble
from stevie_api.kinds import KINDS, KindInfo
from stevie_operator.framework.artifacts import artifact_root, local_uid, read_json
from stevie_operator.framework.children import DEPLOYMENTS, JOBS, SERVICES, Owned
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import object_path
from stevie_operator.framework.metrics import KindMetrics
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.resource import namespace_of, validate
from stevie_operator.kinds.ensemble.children import (
    ERROR_NAME,
    REPORT_NAME,
    ensemble_dir,
    version_dir,
    version_of,
)
from stevie_operator.kinds.ensemble.reconcile import (
    EnsembleWork,
    Observed,
    member_refs,
    member_states,
    reconcile_ensemble,
)
from stevie_trainer.common import storage

__all__ = ["EnsembleKind", "finished_version"]

# Where a source that is not in the API (``stevie run`` of an Ensemble alone, ``stevie
# serve``) left its finished outputs: <root>/<ns>/<plural>/<name>/<its local uid>/<file>.
# A member in the API is resolved through its object instead (its status publishes its
# uid's folder), so a member deleted and created again makes a new version.
_OUTPUTS = {
    "TrainingRun": "result.json",
    "PBTPopulation": "pbt_summary.json",
    "HPOStudy": "optimization_results.json",
}


def _fallback(root: str, namespace: str, kind: str, name: str) -> str | None:
    uid = local_uid(kind, namespace, name)
    folder = artifact_root(root, namespace, KINDS[kind].plural, name, uid)
    doc = read_json(storage.join(folder, _OUTPUTS[kind]))
    if doc is None or (kind == "TrainingRun" and doc.get("status") != "succeeded"):
        return None
    return folder if kind == "TrainingRun" else storage.join(folder, _OUTPUTS[kind])


def finished_version(ens: Ensemble, namespace: str, config: OperatorConfig) -> str:
    """The folder of the backtested version of an Ensemble whose members ran under the
    storage root (``stevie serve`` after ``stevie run``); ValueError says what to run."""
    fallbacks = {
        n: found
        for m, n in zip(ens.spec.members, ens.spec.member_names, strict=True)
        if m.source_kind != "uri"
        and (found := _fallback(config.storage_uri, namespace, m.source_kind, m.reference))
    }
    states = member_states(ens, {}, fallbacks)
    missing = [s.source for s in states if s.uri is None]
    if missing:
        raise ValueError(
            f"Ensemble/{ens.metadata.name}: no finished outputs of {', '.join(missing)} "
            f"under {config.storage_uri}: run them first (stevie run FILE)"
        )
    folder = version_dir(ens, namespace, config, version_of(ens, member_refs(ens, states)))
    if read_json(storage.join(folder, "ensemble.json")) is None:
        raise ValueError(
            f"Ensemble/{ens.metadata.name} has not been backtested with these members "
            f"(no {folder}/ensemble.json): run it first (stevie run FILE)"
        )
    return folder


class EnsembleKind(Kind[Observed, EnsembleWork, KindMetrics]):
    """An Ensemble votes its members, backtests the vote and can serve it."""

    info: ClassVar[KindInfo] = KINDS["Ensemble"]
    children = (JOBS, DEPLOYMENTS, SERVICES)
    watches = ("TrainingRun", "PBTPopulation", "HPOStudy")

    def location(self, body: Body, config: OperatorConfig) -> str | None:
        ens = validate(body, Ensemble)
        return None if isinstance(ens, list) else ensemble_dir(ens, namespace_of(body), config)

    def references(self, body: Body) -> set[tuple[str, str]]:
        ens = validate(body, Ensemble)
        if isinstance(ens, list):
            return set()
        return {(m.source_kind, m.reference) for m in ens.spec.members if m.source_kind != "uri"}

    async def observe(self, ctx: Context, body: Body, owned: Owned) -> Observed:
        now = utcnow()
        kids: dict[str, Any] = {
            "jobs": owned.jobs,
            "deployments": owned.of(DEPLOYMENTS),
            "services": owned.of(SERVICES),
        }
        ens = validate(body, Ensemble)
        if isinstance(ens, list):
            return Observed(now=now, **kids)
        ns = namespace_of(body)
        sources: dict[str, Any] = {}
        fallbacks: dict[str, str] = {}
        for m, name in zip(ens.spec.members, ens.spec.member_names, strict=True):
            if m.source_kind == "uri":
                continue
            path = object_path(API_VERSION, KINDS[m.source_kind].plural, ns, m.reference)
            sources[name] = await ctx.api().get(path)
            if sources[name] is None and ctx.config.local:
                root = ctx.config.storage_uri
                found = await ctx.blocking(_fallback, root, ns, m.source_kind, m.reference)
                if found:
                    fallbacks[name] = found
        states = member_states(ens, sources, fallbacks)
        report = error = None
        if all(s.uri is not None for s in states):
            folder = version_dir(ens, ns, ctx.config, version_of(ens, member_refs(ens, states)))
            report = await ctx.blocking(read_json, storage.join(folder, REPORT_NAME))
            error = await ctx.blocking(read_json, storage.join(folder, ERROR_NAME))
        return Observed(
            now=now, sources=sources, fallbacks=fallbacks, report=report, error=error, **kids
        )

    def plan(self, body: Body, observed: Observed, config: OperatorConfig) -> Plan[EnsembleWork]:
        return reconcile_ensemble(body, observed, config)

    def persist(self, ctx: Context, observed: Observed, plan: Plan[EnsembleWork]) -> bool:
        """Write the backtest's inputs (spec.json, members.json) before its Job exists."""
        work = plan.work
        if work is None:
            return False
        for name, doc in work.documents.items():
            text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
            storage.write_text(storage.join(work.folder, name), text)
        return False
