"""What the operator would create for a resource, before it exists: ``stevie plan FILE.yaml``.

Each kind's own pure ``plan()`` is called on the resource as the API server would first show
it (a placeholder uid, generation 1, no status) and on a world with nothing in it yet: no
children, nothing in storage. The children of that plan are the objects the operator creates
on its first reconcile, exactly as it builds them, with the operator's settings from the
environment (:meth:`OperatorConfig.from_env`). Where the first reconcile plans twice, so
does this:

* HPOStudy: the first plan asks the study for trials; the operator tells Optuna, observes
  again and creates one Job per asked trial (``min(parallelism, maxTrials)``). Here the
  asked trials are numbered as a new study numbers them; their hyperparameters are sampled
  by Optuna in the operator and read by the trial pods, so they appear in no manifest.
* Ensemble: its backtest Job waits for its members. Members that are resources are shown as
  finished, with the outputs they will publish (their folders under the storage root), so
  the backtest Job is shown; with ``serving.enabled``, the Deployment and Service that follow
  a successful backtest are shown too. The version (the Job's name suffix) is computed from
  those member URIs: it changes if a member publishes elsewhere.

Nothing is written and nothing is contacted; torch is not needed (the operator image runs it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stevie_api.common import utcnow
from stevie_api.ensemble import Ensemble
from stevie_api.hpo import HPOStudy, TrialCounts
from stevie_api.kinds import KINDS as KIND_INFO
from stevie_api.kinds import Resource
from stevie_operator.framework.artifacts import artifact_root
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.resource import validate
from stevie_operator.kinds.ensemble.reconcile import Observed as EnsembleObserved
from stevie_operator.kinds.hpostudy.reconcile import Observed as StudyObserved
from stevie_operator.kinds.hpostudy.view import StudyView
from stevie_operator.kinds.pbtpopulation.reconcile import Observed as PopulationObserved
from stevie_operator.kinds.trainingrun.reconcile import Observed as RunObserved
from stevie_operator.registry import KINDS
from stevie_trainer.common import storage
from stevie_trainer.hpo.study import AskedTrial, ask_count, trial_name

__all__ = ["PLACEHOLDER_UID", "Preview", "fresh_body", "preview"]

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
"""The resource's uid in ownerReferences: the API server assigns the real one."""

Body = dict[str, Any]
Planned = tuple[list[Body], list[str]]  # objects, notes
First = Callable[[Body, OperatorConfig, Mapping[str, Body]], Planned]
# What a finished member publishes, under its folder (see the Ensemble's controller).
_PUBLISHED = {"TrainingRun": None, "PBTPopulation": "pbt_summary.json",
              "HPOStudy": "optimization_results.json"}  # fmt: skip


@dataclass(frozen=True)
class Preview:
    """The objects one resource's operator creates first, with notes on what is assumed."""

    resource: str  # Kind/name
    namespace: str
    objects: list[dict[str, Any]]
    notes: list[str]


def fresh_body(res: Resource, namespace: str) -> Body:
    """The resource as the API server returns it right after ``kubectl apply``."""
    body = res.to_dict()
    meta = body.setdefault("metadata", {})
    meta.update(namespace=namespace, uid=PLACEHOLDER_UID, generation=1)
    body.pop("status", None)
    return body


def _children(kind: str, body: Body, observed: Any, config: OperatorConfig) -> list[Body]:
    plan = KINDS[kind].plan(body, observed, config)
    return [copy.deepcopy(dict(c.manifest)) for c in plan.children]


def _why_none(kind: str, body: Body, observed: Any, config: OperatorConfig) -> str:
    """Why a plan creates nothing (an invalid spec, a storage that cannot work...)."""
    plan = KINDS[kind].plan(body, observed, config)
    return f"nothing is created: {plan.phase}: {plan.status.get('message') or ''}".strip()


def _run(body: Body, config: OperatorConfig, _: Mapping[str, Body]) -> Planned:
    return _children("TrainingRun", body, RunObserved(now=utcnow()), config), []


def _population(body: Body, config: OperatorConfig, _: Mapping[str, Body]) -> Planned:
    objects = _children("PBTPopulation", body, PopulationObserved(now=utcnow()), config)
    note = "later: one Job per member interval as members finish, then one finish Job"
    return objects, [note]


def _study(body: Body, config: OperatorConfig, _: Mapping[str, Body]) -> Planned:
    study = validate(body, HPOStudy)
    if isinstance(study, list):
        return _children("HPOStudy", body, StudyObserved(now=utcnow()), config), []
    name = study.metadata.name
    asked = ask_count(TrialCounts(), study.spec)
    view = StudyView(
        counts=TrialCounts(running=asked),
        running=tuple(AskedTrial(n, trial_name(name, n)) for n in range(asked)),
    )
    objects = _children("HPOStudy", body, StudyObserved(now=utcnow(), view=view), config)
    notes = [
        f"trials 0-{asked - 1} as a new study numbers them; Optuna samples their "
        "hyperparameters in the operator and the trial pods read them from the study",
        "later: one Job per new trial up to maxTrials, then one finish Job (the report)",
    ]
    return objects, notes if objects else []


def _member_uri(
    kind: str, name: str, namespace: str, config: OperatorConfig, bodies: Mapping[str, Body]
) -> str:
    """Where a member that is a resource will publish its outputs."""
    body = bodies.get(f"{kind}/{name}")
    folder = KINDS[kind].location(body, config) if body is not None else None
    if folder is None:  # not in the file: its uid is the cluster's, unknown here
        plural = KIND_INFO[kind].plural
        folder = artifact_root(config.storage_uri, namespace, plural, name, PLACEHOLDER_UID)
    file = _PUBLISHED[kind]
    return folder if file is None else storage.join(folder, file)


def _ensemble(body: Body, config: OperatorConfig, bodies: Mapping[str, Body]) -> Planned:
    ens = validate(body, Ensemble)
    if isinstance(ens, list):
        return _children("Ensemble", body, EnsembleObserved(now=utcnow()), config), []
    namespace = body["metadata"]["namespace"]
    fallbacks = {
        n: _member_uri(m.source_kind, m.reference, namespace, config, bodies)
        for m, n in zip(ens.spec.members, ens.spec.member_names, strict=True)
        if m.source_kind != "uri"
    }
    first = EnsembleObserved(now=utcnow(), fallbacks=fallbacks)
    objects = _children("Ensemble", body, first, config)
    notes = []
    if fallbacks:
        notes.append(
            f"members {', '.join(sorted(fallbacks))} shown as finished, publishing "
            + "; ".join(f"{n}: {u}" for n, u in sorted(fallbacks.items()))
        )
    jobs = [o for o in objects if o["kind"] == "Job"]
    if jobs and ens.spec.serving.enabled and not config.local:
        done = {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
        job = jobs[0]["metadata"]["name"]
        then = EnsembleObserved(now=utcnow(), fallbacks=fallbacks, jobs={job: done}, report={})
        objects += _children("Ensemble", body, then, config)
        notes.append("the Deployment and Service are created once the backtest succeeds")
    return objects, notes


_EMPTY: dict[str, Callable[[], Any]] = {
    "TrainingRun": lambda: RunObserved(now=utcnow()),
    "PBTPopulation": lambda: PopulationObserved(now=utcnow()),
    "HPOStudy": lambda: StudyObserved(now=utcnow()),
    "Ensemble": lambda: EnsembleObserved(now=utcnow()),
}
_FIRST: dict[str, First] = {"TrainingRun": _run, "PBTPopulation": _population, "HPOStudy": _study,
          "Ensemble": _ensemble}  # fmt: skip


def preview(
    resources: list[Resource], config: OperatorConfig, namespace: str | None = None
) -> list[Preview]:
    """What the operator creates first for each resource, in ``namespace`` if it names none
    (ValueError if it names another: ``kubectl apply -n`` refuses that too)."""
    bodies = {}
    for res in resources:
        own = res.metadata.namespace
        if namespace and own and own != namespace:
            raise ValueError(
                f"{res.kind}/{res.metadata.name}: its namespace {own!r} does not match "
                f"--namespace {namespace!r}"
            )
        ns = own or namespace or "default"
        bodies[f"{res.kind}/{res.metadata.name}"] = fresh_body(res, ns)
    found = []
    for key, body in bodies.items():
        objects, notes = _FIRST[body["kind"]](body, config, bodies)
        if not objects:
            kind = body["kind"]
            notes = [_why_none(kind, body, _EMPTY[kind](), config)]
        found.append(Preview(key, body["metadata"]["namespace"], objects, notes))
    return found
