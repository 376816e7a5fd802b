"""The pure Ensemble reconciler: members, the backtest Job of a version, the service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stevie_operator.framework.children import with_pods
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.podstatus import PodReport
from stevie_operator.kinds.ensemble.children import VERSION_ANNOTATION
from stevie_operator.kinds.ensemble.reconcile import (
    EnsembleWork,
    Observed,
    reconcile_ensemble,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CLUSTER = OperatorConfig()


def resource(serving: bool = True, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "Ensemble",
        "metadata": {"name": "ens", "namespace": "team", "uid": "u1", "generation": 1},
        "spec": {
            "members": [
                {"name": "ppo", "trainingRun": "ppo-run"},
                {"name": "pbt", "pbtPopulation": "pop"},
                {"name": "hpo", "hpoStudy": "study"},
                {"uri": "s3://models/x/model.zip"},
            ],
            "serving": {"enabled": serving, "replicas": 2},
            **spec,
        },
    }


def source(phase: str | None, **status: Any) -> dict[str, Any]:
    return {"status": {"phase": phase, **status}} if phase else {"status": {}}


READY = {
    "ppo": source("Succeeded", artifacts={"uri": "file:///data/team/trainingruns/ppo-run"}),
    "pbt": source("Succeeded", summaryUri="file:///data/team/pbtpopulations/pop/pbt_summary.json"),
    "hpo": source("Succeeded", resultsUri="file:///d/hpo/optimization_results.json"),
}
REPORT = {
    "members": [{"name": "ppo", "model_uri": "file:///m/ppo/model.zip",
                 "validation": {"sharpe": 1.2}}],
    "weights": {"ppo": 0.6, "pbt": 0.4, "hpo": 0.0, "member-3": 0.0},
    "best_member": {"name": "ppo"},
    "splits": {"test": {"policies": {"ensemble": {"sharpe": 0.9, "total_return": 0.1},
                                     "ppo": {"sharpe": 0.7}, "buy-and-hold": {"sharpe": 0.5}}}},
}  # fmt: skip


def step(res: dict[str, Any], observed: Observed, config: OperatorConfig = CLUSTER) -> Plan[Any]:
    plan = reconcile_ensemble(res, observed, config)
    res["status"] = plan.status
    return plan


def conditions(plan: Plan[Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status["conditions"]}


def test_it_waits_for_unfinished_members_and_names_them() -> None:
    res = resource()
    sources = {**READY, "pbt": source("Running"), "hpo": None}
    plan = step(res, Observed(now=T0, sources=sources))
    assert plan.phase == "Pending" and not plan.children
    message = plan.status["message"]
    assert "2/4 members ready" in message
    assert "PBTPopulation/pop: Running" in message and "HPOStudy/study not found" in message
    members = {m["name"]: m for m in plan.status["members"]}
    assert members["ppo"]["ready"] and not members["pbt"]["ready"]
    assert members["member-3"]["source"] == "uri" and members["member-3"]["ready"]


def test_a_failed_member_is_degraded_and_named() -> None:
    res = resource()
    sources = {**READY, "hpo": source("Failed", message="TooManyFailedTrials")}
    plan = step(res, Observed(now=T0, sources=sources))
    assert plan.phase == "Pending" and not plan.children
    assert conditions(plan)["Degraded"] == ("True", "MemberFailed")
    assert conditions(plan)["Progressing"] == ("False", "MemberFailed")
    assert "HPOStudy/study failed: TooManyFailedTrials" in plan.status["message"]


def test_an_unknown_source_uses_finished_outputs_it_left() -> None:
    res = resource(serving=False)
    sources = {**READY, "ppo": None}
    fallbacks = {"ppo": "file:///data/team/trainingruns/ppo-run"}
    plan = step(res, Observed(now=T0, sources=sources, fallbacks=fallbacks))
    assert plan.phase == "Running" and [c.kind for c in plan.children] == ["Job"]


def test_all_ready_saves_the_inputs_then_creates_the_backtest_job_once() -> None:
    res = resource()
    plan = step(res, Observed(now=T0, sources=READY))
    assert plan.phase == "Running"
    (job,) = plan.children
    version = plan.status["version"]
    assert job.name == f"ens-bt-{version[:8]}" == plan.status["jobName"]
    assert isinstance(plan.work, EnsembleWork) and plan.work.folder.endswith(f"versions/{version}")
    members = plan.work.documents["members.json"]
    assert [m["uri"] for m in members] == [
        "file:///data/team/trainingruns/ppo-run",
        "file:///data/team/pbtpopulations/pop/pbt_summary.json",
        "file:///d/hpo/optimization_results.json",
        "s3://models/x/model.zip",
    ]
    args = job.manifest["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--ensemble-spec", f"{plan.work.folder}/spec.json"]
    # The Job exists now: the next reconcile creates nothing and saves nothing.
    again = step(res, Observed(now=T0, sources=READY, jobs={job.name: {"status": {"active": 1}}}))
    assert again.phase == "Running" and not again.children and again.work is None
    # Another method is another version: another Job.
    other = resource(method="majority")
    assert step(other, Observed(now=T0, sources=READY)).status["version"] != version


def _report_done(res: dict[str, Any], **seen: Any) -> Plan[Any]:
    first = step(res, Observed(now=T0, sources=READY))
    (job,) = first.children
    done = {"status": {"succeeded": 1, "completionTime": "2025-01-01T01:00:00Z"}}
    return step(res, Observed(now=T0, sources=READY, jobs={job.name: done}, report=REPORT, **seen))


def test_the_report_fills_the_status_then_the_service_is_created() -> None:
    res = resource()
    plan = _report_done(res)
    assert plan.status["backtest"]["sharpe"] == 0.9
    assert plan.status["buyAndHold"]["sharpe"] == 0.5 and plan.status["bestMember"] == "ppo"
    assert plan.status["bestMemberTest"]["sharpe"] == 0.7
    members = {m["name"]: m for m in plan.status["members"]}
    assert members["ppo"]["weight"] == 0.6 and members["ppo"]["test"]["sharpe"] == 0.7
    assert plan.phase == "Running" and {c.kind for c in plan.children} == {"Deployment", "Service"}
    dep = next(c for c in plan.children if c.kind == "Deployment").manifest
    template = dep["spec"]["template"]
    assert template["metadata"]["annotations"][VERSION_ANNOTATION] == plan.status["version"]
    container = template["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]  # /metrics there too
    assert container["command"][-1] == "ensemble-serve"
    args = container["args"]
    assert args[args.index("--ensemble") + 1].endswith(f"{plan.status['version']}/ensemble.json")
    assert template["spec"]["restartPolicy"] == "Always" and dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert plan.status["serving"]["url"] == "http://ens.team.svc:8080"


def test_serving_once_a_replica_is_ready_and_a_new_version_rolls_the_deployment() -> None:
    res = resource()
    plan = _report_done(res)
    dep = next(c for c in plan.children if c.kind == "Deployment").manifest
    svc = next(c for c in plan.children if c.kind == "Service").manifest
    ready = {**dep, "status": {"readyReplicas": 1}}
    kids: dict[str, Any] = {
        "deployments": {dep["metadata"]["name"]: ready},
        "services": {"ens": svc},
    }
    job = {plan.status["jobName"]: {"status": {"succeeded": 1}}}
    serving = step(res, Observed(now=T0, sources=READY, jobs=job, report=REPORT, **kids))
    assert serving.phase == "Serving" and not serving.children and not serving.updates
    assert conditions(serving)["Ready"][0] == "True"
    # A member changes where it publishes: a new version, a new backtest...
    moved = {**READY, "ppo": source("Succeeded", artifacts={"uri": "file:///elsewhere"})}
    new = step(res, Observed(now=T0, sources=moved, **kids))
    assert new.phase == "Running" and [c.kind for c in new.children] == ["Job"]
    # ... then the Deployment is rolled to it (patched, not created).
    job = {new.status["jobName"]: {"status": {"succeeded": 1}}}
    rolled = step(res, Observed(now=T0, sources=moved, jobs=job, report=REPORT, **kids))
    assert not rolled.children and [u.kind for u in rolled.updates] == ["Deployment"]
    assert rolled.phase == "Running"


def test_a_corrupt_member_fails_the_backtest_naming_it() -> None:
    res = resource()
    first = step(res, Observed(now=T0, sources=READY))
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True",
                                         "reason": "BackoffLimitExceeded"}]}}  # fmt: skip
    error = {"member": "pbt", "problem": "model.zip is not a loadable model"}
    plan = step(res, Observed(now=T0, sources=READY, jobs={first.status["jobName"]: failed},
                              error=error))  # fmt: skip
    assert plan.phase == "Failed"
    assert conditions(plan)["Degraded"] == ("True", "MemberUnusable")
    assert "member 'pbt': model.zip is not a loadable model" in plan.status["message"]


def test_locally_the_backtest_ends_it_and_says_how_to_serve() -> None:
    res = resource()
    plan = _report_done(res, deployments={})
    assert plan.phase == "Running"  # on a cluster: the service comes next
    local = resource()
    first = step(local, Observed(now=T0, sources=READY), OperatorConfig(local=True))
    done = {first.status["jobName"]: {"status": {"succeeded": 1}}}
    plan = step(
        local,
        Observed(now=T0, sources=READY, jobs=done, report=REPORT),
        OperatorConfig(local=True),
    )
    assert plan.phase == "Succeeded" and not plan.children
    assert "stevie serve" in plan.status["message"]


def test_an_invalid_spec_fails_without_children() -> None:
    res = resource()
    res["spec"]["members"] = [{"trainingRun": "a", "uri": "b"}]
    plan = step(res, Observed(now=T0))
    assert plan.phase == "Failed" and not plan.children
    assert conditions(plan)["Failed"] == ("True", "InvalidSpec")


def test_a_backtest_or_serve_pod_that_cannot_start_is_degraded() -> None:
    """The backtest Job's and the Deployment's pods, as the controller attaches them."""
    res = resource()
    name = step(res, Observed(now=T0, sources=READY)).status["jobName"]
    config_error = ("CreateContainerConfigError", 'pod b: secret "s3" not found')
    stuck = with_pods({"status": {"active": 1, "ready": 0}}, PodReport(1, problem=config_error))
    plan = step(res, Observed(now=T0, sources=READY, jobs={name: stuck}))
    assert plan.phase == "Running"
    assert conditions(plan)["Degraded"] == ("True", "CreateContainerConfigError")
    assert [e.reason for e in plan.events] == ["CreateContainerConfigError"]
    plan = _report_done(res)
    dep = next(c for c in plan.children if c.kind == "Deployment").manifest
    svc = next(c for c in plan.children if c.kind == "Service").manifest
    report = PodReport(2, running=True, problem=("ImagePullBackOff", "pod s: x"))
    pulling = with_pods({**dep, "status": {"readyReplicas": 1}}, report)
    kids: dict[str, Any] = {"deployments": {dep["metadata"]["name"]: pulling},
                            "services": {"ens": svc}}  # fmt: skip
    job = {plan.status["jobName"]: {"status": {"succeeded": 1}}}
    serving = step(res, Observed(now=T0, sources=READY, jobs=job, report=REPORT, **kids))
    assert serving.phase == "Serving"  # one replica serves; the other cannot pull its image
    assert conditions(serving)["Degraded"] == ("True", "ImagePullBackOff")
    message = next(c["message"] for c in serving.status["conditions"] if c["type"] == "Degraded")
    assert message == "Deployment ens-serve: pod s: x"
