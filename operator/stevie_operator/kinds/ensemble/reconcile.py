"""The Ensemble reconciler: a pure function (resource + observed members, children and
files -> plan).

1. Members: each source must have finished (TrainingRun, PBTPopulation, HPOStudy:
   Succeeded with its outputs published in its status; a uri member is ready as given).
   Unfinished: Pending, naming them and their phases. A failed source: Pending and Degraded
   (MemberFailed), naming it: nothing is backtested on a partial member set.
2. Backtest: the members' URIs (and method, weights, data) make a version; its Job
   resolves and loads the models, then writes report.json. A member whose model is missing
   or corrupt fails the Job with error.json naming it: Failed, Degraded MemberUnusable.
3. Serving (``serving.enabled``): the Deployment and Service of that version (a new
   version rolls the Deployment): Serving once a replica is ready. Without serving (or
   under ``stevie run``, where nothing runs a Deployment): Succeeded after the backtest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stevie_api.ensemble import (
    Ensemble,
    EnsembleMember,
    EnsembleMemberStatus,
    EnsembleStatus,
    ServingStatus,
)
from stevie_operator.framework.admission import refusal
from stevie_operator.framework.children import job_outcome, pod_problem
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Child, Decision, Plan, conclude, transition_events
from stevie_operator.framework.resource import Subject, read_subject
from stevie_operator.framework.status import INVALID_SPEC, Event, metric_summary
from stevie_operator.kinds.ensemble.children import (
    REPORT_NAME,
    VERSION_ANNOTATION,
    backtest_job,
    backtest_job_name,
    deployment,
    deployment_name,
    service,
    service_url,
    version_dir,
    version_of,
)
from stevie_trainer.common import storage

__all__ = [
    "EnsembleWork",
    "MemberState",
    "Observed",
    "member_refs",
    "member_state",
    "member_states",
    "reconcile_ensemble",
]

Sub = Subject[Ensemble, EnsembleStatus]
_PUBLISHED = {"TrainingRun": ("artifacts", "uri"), "PBTPopulation": ("summaryUri",),
              "HPOStudy": ("resultsUri",)}  # fmt: skip


@dataclass(frozen=True)
class Observed:
    """The members' sources (their bodies; None when absent), the Ensemble's children and
    its backtest's files for the current version."""

    now: datetime
    sources: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    fallbacks: Mapping[str, str] = field(default_factory=dict)  # name -> finished outputs
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    deployments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    report: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EnsembleWork:
    """Files the backtest Job reads, saved before it is created."""

    folder: str
    documents: Mapping[str, Any]


@dataclass(frozen=True)
class MemberState:
    name: str
    source: str
    uri: str | None = None
    failed: str | None = None
    waiting: str | None = None


def _published(kind: str, status: Mapping[str, Any]) -> str | None:
    value: Any = status
    for key in _PUBLISHED[kind]:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) and value else None


def member_state(
    member: EnsembleMember, name: str, body: Mapping[str, Any] | None, fallback: str | None
) -> MemberState:
    """Whether one member is ready, waiting or failed (pure)."""
    kind = member.source_kind
    if kind == "uri":
        return MemberState(name, "uri", uri=member.uri)
    source = f"{kind}/{member.reference}"
    if body is None:
        if fallback:
            return MemberState(name, source, uri=fallback)
        return MemberState(name, source, waiting=f"{source} not found (create it, or run it first)")
    status = body.get("status") if isinstance(body.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    phase = status.get("phase") or "not started"
    if phase == "Failed":
        return MemberState(name, source, failed=f"{source} failed: {status.get('message') or ''}")
    if phase != "Succeeded":
        return MemberState(name, source, waiting=f"{source}: {phase}")
    uri = _published(kind, status)
    if uri is None:
        what = ".".join(_PUBLISHED[kind])
        return MemberState(name, source, failed=f"{source} succeeded but its status has no {what}")
    return MemberState(name, source, uri=uri)


def member_states(
    ens: Ensemble,
    sources: Mapping[str, Mapping[str, Any] | None],
    fallbacks: Mapping[str, str],
) -> list[MemberState]:
    """Every member's state, from its source's body and any outputs it left (by name)."""
    return [
        member_state(m, n, sources.get(n), fallbacks.get(n))
        for m, n in zip(ens.spec.members, ens.spec.member_names, strict=True)
    ]


def member_refs(ens: Ensemble, states: list[MemberState]) -> list[dict[str, Any]]:
    """What the backtest Job is given: each member's name, source, URI and fixed weight."""
    out = []
    for member, st in zip(ens.spec.members, states, strict=True):
        source = "uri" if member.source_kind == "uri" else member.source_kind
        ref: dict[str, Any] = {"name": st.name, "source": source, "uri": st.uri}
        if member.weight is not None:
            ref["weight"] = member.weight
        out.append(ref)
    return out


def _member_status(states: list[MemberState]) -> list[EnsembleMemberStatus]:
    return [
        EnsembleMemberStatus(
            name=s.name,
            source=s.source,
            ready=s.uri is not None,
            state=s.failed or s.waiting or "ready",
        )
        for s in states
    ]


def _waiting(sub: Sub, states: list[MemberState]) -> Decision:
    failed = [s.failed for s in states if s.failed]
    if failed:
        message = "; ".join(failed) + " (fix it, or remove it from spec.members)"
        d = Decision("Pending", "MemberFailed", message, ("MemberFailed", message))
        d.stuck = True
        return d
    waiting = [s.waiting for s in states if s.waiting]
    ready = sum(s.uri is not None for s in states)
    message = f"{ready}/{len(states)} members ready; waiting for " + "; ".join(waiting)
    return Decision("Pending", "MembersNotReady", message)


def _apply_report(status: EnsembleStatus, report: Mapping[str, Any], uri: str) -> None:
    """The backtest's summary into the status (see stevie_trainer.ensemble.report)."""
    test = (report.get("splits") or {}).get("test") or {}
    policies = test.get("policies") or {}
    members = {m.get("name"): m for m in report.get("members") or [] if isinstance(m, Mapping)}
    weights = report.get("weights") or {}
    for m in status.members:
        info = members.get(m.name) or {}
        m.model_uri = info.get("model_uri") or m.model_uri
        w = weights.get(m.name) if isinstance(weights, Mapping) else None
        m.weight = float(w) if isinstance(w, int | float) else None
        m.validation = metric_summary(info.get("validation"))
        m.test = metric_summary(policies.get(m.name))
    status.backtest = metric_summary(policies.get("ensemble"))
    status.buy_and_hold = metric_summary(policies.get("buy-and-hold"))
    best = (report.get("best_member") or {}).get("name")
    status.best_member = best if isinstance(best, str) else None
    status.best_member_test = metric_summary(policies.get(best)) if best else None
    status.report_uri = uri


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _verdict(status: EnsembleStatus) -> str:
    ens = status.backtest.sharpe if status.backtest else None
    best = status.best_member_test.sharpe if status.best_member_test else None
    bh = status.buy_and_hold.sharpe if status.buy_and_hold else None
    return (
        f"test Sharpe {_fmt(ens)} (best member by validation, {status.best_member}: "
        f"{_fmt(best)}; buy-and-hold: {_fmt(bh)})"
    )


def _serving(
    sub: Sub, ens: Ensemble, observed: Observed, config: OperatorConfig, version: str
) -> tuple[Decision, list[Child], list[Child]]:
    status, ns = sub.status, sub.namespace
    verdict = _verdict(status)
    if not ens.spec.serving.enabled:
        return Decision("Succeeded", "BacktestSucceeded", f"Backtest done: {verdict}"), [], []
    if config.local:
        message = f"Backtest done: {verdict}. Serve it with `stevie serve FILE.yaml`"
        return Decision("Succeeded", "BacktestSucceeded", message), [], []
    want = deployment(ens, ns, config, version)
    name = deployment_name(ens.metadata.name)
    have = observed.deployments.get(name)
    create, update = [], []
    if have is None:
        create.append(Child(want, Event("Normal", "DeploymentCreated", f"Created {name}")))
    else:
        annotations = (((have.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
            "annotations"
        ) or {}
        if annotations.get(VERSION_ANNOTATION) != version:
            message = f"Rolling {name} to version {version}"
            update.append(Child(want, Event("Normal", "RollingUpdate", message)))
    if ens.metadata.name not in observed.services:
        svc = service(ens, ns)
        create.append(Child(svc, Event("Normal", "ServiceCreated", f"Created {ens.metadata.name}")))
    ready = int(((have or {}).get("status") or {}).get("readyReplicas") or 0)
    status.serving = ServingStatus(ready_replicas=ready, url=service_url(ens, ns))
    want_n = ens.spec.serving.replicas
    stuck = pod_problem(have) if have is not None else None  # ImagePullBackOff, FailedCreate...
    if ready > 0 and not update:
        message = f"Serving at {status.serving.url} ({ready}/{want_n} ready): {verdict}"
        return Decision("Serving", "Serving", message, stuck), create, update
    message = f"Starting the decision service ({ready}/{want_n} ready); backtest: {verdict}"
    return Decision("Running", "StartingService", message, stuck), create, update


def _kept_failure(sub: Sub) -> Decision:
    before = sub.before
    failed, old = before.get_condition("Failed"), before.get_condition("Degraded")
    degraded = (old.reason, old.message) if old is not None and old.status == "True" else None
    reason = failed.reason if failed is not None else "BacktestFailed"
    return Decision("Failed", reason, before.message or "", degraded)


def _backtest(
    sub: Sub, ens: Ensemble, observed: Observed, config: OperatorConfig, states: list[MemberState]
) -> tuple[Decision, list[Child], list[Child], EnsembleWork | None]:
    status, ns = sub.status, sub.namespace
    refs = member_refs(ens, states)
    version = version_of(ens, refs, sub.before.version)
    folder = version_dir(ens, ns, config, version)
    status.version = version
    status.job_name = backtest_job_name(ens.metadata.name, version)
    job = observed.jobs.get(status.job_name)
    report = observed.report
    if isinstance(report, Mapping):
        _apply_report(status, report, storage.join(folder, REPORT_NAME))
        if job is not None:
            status.completion_time = job_outcome(job)[3] or status.completion_time or observed.now
        d, create, update = _serving(sub, ens, observed, config, version)
        return d, create, update, None
    if job is None and sub.before.phase == "Failed" and sub.before.version == version:
        # This version's backtest failed and its Job is gone (ttlSecondsAfterFinished, or by
        # hand): keep the failure; a new version (members, method, data) gets a new Job.
        return _kept_failure(sub), [], [], None
    if job is None:
        resource = {
            "apiVersion": ens.api_version,
            "kind": ens.kind,
            "metadata": {"name": ens.metadata.name, "namespace": ns},
            "spec": ens.spec.to_dict(),
        }
        work = EnsembleWork(folder, {"spec.json": resource, "members.json": refs})
        child = Child(backtest_job(ens, ns, config, version),
                      Event("Normal", "JobCreated", f"Created Job {status.job_name}"))  # fmt: skip
        message = f"Backtesting {len(refs)} members: created Job {status.job_name}"
        return Decision("Running", "Backtesting", message), [child], [], work
    phase, _, message, _ = job_outcome(job)
    if phase == "Failed":
        err = observed.error or {}
        who, problem = err.get("member"), err.get("problem") or err.get("message")
        if who:
            text = f"member {who!r}: {problem}"
            return (
                Decision("Failed", "MemberUnusable", text, ("MemberUnusable", text)),
                [],
                [],
                None,
            )
        text = f"{message}{f': {problem}' if problem else ''}"
        return Decision("Failed", "BacktestFailed", text), [], [], None
    if phase == "Succeeded":
        text = f"Job {status.job_name} succeeded but {folder}/{REPORT_NAME} could not be read"
        return Decision("Failed", "ResultUnavailable", text), [], [], None
    text = f"Backtesting {len(refs)} members"
    return Decision("Running", "Backtesting", text, pod_problem(job)), [], [], None


def reconcile_ensemble(
    body: Mapping[str, Any], observed: Observed, config: OperatorConfig | None = None
) -> Plan[EnsembleWork]:
    """Plan for one Ensemble (never raises on an invalid spec: phase Failed, InvalidSpec)."""
    config = config or OperatorConfig()
    sub = read_subject(body, Ensemble, EnsembleStatus)
    ens, status = sub.resource, sub.status
    create: list[Child] = []
    update: list[Child] = []
    work = None
    if ens is None:
        d = Decision("Failed", INVALID_SPEC, "; ".join(sub.problems))
    elif refused_by := refusal(config, ("spec", ens.spec)):
        d = Decision("Failed", *refused_by)  # no backtest Job, no Deployment
    else:
        states = member_states(ens, observed.sources, observed.fallbacks)
        status.members = _member_status(states)
        status.ready_members = sum(s.uri is not None for s in states)
        if any(s.uri is None for s in states):
            d = _waiting(sub, states)
        else:
            d, create, update, work = _backtest(sub, ens, observed, config, states)
    events = [] if create else transition_events(sub.before, d, succeeded="BacktestSucceeded")
    return conclude(sub, d, observed.now, events=events, children=create, updates=update, work=work)
