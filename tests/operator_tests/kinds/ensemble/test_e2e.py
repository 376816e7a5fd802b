"""Ensemble end to end: the real operator (kopf in a thread) against kmock. The Ensemble
waits for its member, backtests it in a Job, then creates the Deployment and Service; a
member's failure is Degraded; a restarted operator creates no duplicates."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stevie_trainer.common import storage
from support.jobs import done, failed
from support.kmock import JOBS, Cluster, conditions, handled, operator, wait_for
from support.paths import example

API = "/apis/stevie.dev/v1alpha1/namespaces/default"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
SERVICES = "/api/v1/namespaces/default/services"
QUICKSTART = example("trainingrun-quickstart.yaml")


def training_run(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(QUICKSTART)
    doc["metadata"] = {"name": name, "namespace": "default"}
    return doc


def ensemble(name: str, *members: dict[str, Any], serving: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "Ensemble",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"members": list(members), "serving": {"enabled": serving, "replicas": 1}},
    }


def status_of(
    cluster: Cluster, name: str, phase: str, contains: str = ""
) -> Callable[[], dict[str, Any] | None]:
    def fetch() -> dict[str, Any] | None:
        status = (cluster.api("GET", f"{API}/ensembles/{name}") or {}).get("status") or {}
        ok = status.get("phase") == phase and contains in (status.get("message") or "")
        return status if ok else None

    return fetch


def _train(cluster: Cluster, data: Path, name: str) -> None:
    """The member's trainer "runs": result.json written, its Job completes."""
    job = wait_for(lambda: cluster.api("GET", f"{JOBS}/{name}-train"), what=f"{name}'s Job")
    run = job["metadata"]["annotations"]["stevie.dev/run-uri"]  # <data>/.../<name>/<uid>
    assert run.startswith((data / "default" / "trainingruns" / name).as_uri() + "/")
    result = {"status": "succeeded", "timesteps": 20480, "validation": {"sharpe": 1.0},
              "test": {"agent": {"sharpe": 0.5}}}  # fmt: skip
    storage.write_text(storage.join(run, "result.json"), json.dumps(result))
    cluster.api("PATCH", f"{JOBS}/{name}-train/status", {"status": done()})


def _backtest_writes_its_report(cluster: Cluster, job: dict[str, Any]) -> None:
    out = job["metadata"]["annotations"]["stevie.dev/run-uri"]
    assert storage.exists(storage.join(out, "spec.json"))  # saved before the Job
    refs = json.loads(storage.read_text(storage.join(out, "members.json")))
    assert [r["name"] for r in refs] == ["a", "fixed"]
    report = {
        "members": [{"name": "a", "model_uri": refs[0]["uri"] + "/model.zip"}],
        "weights": {"a": 1.0, "fixed": 0.0},
        "best_member": {"name": "a"},
        "splits": {"test": {"policies": {"ensemble": {"sharpe": 0.8}, "a": {"sharpe": 0.5},
                                         "buy-and-hold": {"sharpe": 0.3}}}},
    }  # fmt: skip
    storage.write_text(storage.join(out, "report.json"), json.dumps(report))
    cluster.api("PATCH", f"{JOBS}/{job['metadata']['name']}/status", {"status": done()})


def test_ensemble_waits_backtests_serves_and_survives_a_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    members = ({"trainingRun": "a"}, {"name": "fixed", "uri": "file:///models/x/model.zip"})
    with operator() as first:
        cluster.api("POST", f"{API}/ensembles", ensemble("ens", *members))
        waiting = wait_for(status_of(cluster, "ens", "Pending", "TrainingRun/a not found"))
        assert waiting["readyMembers"] == 1
        cluster.api("POST", f"{API}/trainingruns", training_run("a"))
        wait_for(status_of(cluster, "ens", "Pending", "TrainingRun/a: Pending"), what="a pending")
        _train(cluster, data, "a")
        running = wait_for(status_of(cluster, "ens", "Running", "Backtesting"), what="backtest")
        job = wait_for(lambda: cluster.api("GET", f"{JOBS}/{running['jobName']}"), what="Job")
        assert job["metadata"]["ownerReferences"][0]["kind"] == "Ensemble"
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command == ["python", "-m", "stevie_trainer", "ensemble-backtest"]
        _backtest_writes_its_report(cluster, job)
        dep = wait_for(lambda: cluster.api("GET", f"{DEPLOYMENTS}/ens-serve"), what="Deployment")
        assert wait_for(lambda: cluster.api("GET", f"{SERVICES}/ens"), what="Service")
        starting = wait_for(status_of(cluster, "ens", "Running", "Starting the decision service"))
        assert starting["backtest"]["sharpe"] == 0.8 and starting["bestMember"] == "a"
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert annotations["stevie.dev/ensemble-version"] == starting["version"]
        wait_for(lambda: handled(cluster, f"{API}/ensembles/ens"), what="handled")
        cluster.settle()
    assert first.exception is None
    with operator() as second:
        cluster.api("PATCH", f"{DEPLOYMENTS}/ens-serve/status", {"status": {"readyReplicas": 1}})
        serving = wait_for(status_of(cluster, "ens", "Serving"), what="Serving")
        assert conditions(serving)["Ready"] == ("True", "Serving")
        assert serving["serving"] == {"readyReplicas": 1, "url": "http://ens.default.svc:8080"}
        cluster.settle()
    assert second.exception is None
    for key in (
        "ensembles/ens",
        "deployments/ens-serve",
        "services/ens",
        f"jobs/{job['metadata']['name']}",
    ):
        assert cluster.created(key) == 1, key
    reasons = [r for _, r, _ in cluster.events("ens", kind="Ensemble")]
    for reason in ("JobCreated", "DeploymentCreated", "ServiceCreated"):
        assert reasons.count(reason) == 1, reasons


def test_a_failed_member_degrades_the_ensemble_naming_it(cluster: Cluster) -> None:
    with operator() as runner:
        cluster.api("POST", f"{API}/trainingruns", training_run("bad"))
        cluster.api("POST", f"{API}/ensembles", ensemble("ens2", {"trainingRun": "bad"}))
        wait_for(lambda: cluster.api("GET", f"{JOBS}/bad-train"), what="bad's Job")
        cluster.api("PATCH", f"{JOBS}/bad-train/status", {"status": failed()})
        status = wait_for(status_of(cluster, "ens2", "Pending", "failed"), what="degraded")
        assert conditions(status)["Degraded"] == ("True", "MemberFailed")
        assert "TrainingRun/bad failed" in status["message"]
        wait_for(lambda: handled(cluster, f"{API}/ensembles/ens2"), what="handled")
        cluster.settle()
    assert runner.exception is None
    assert not [j for j in cluster.api("GET", JOBS)["items"] if "ens2" in j["metadata"]["name"]]
