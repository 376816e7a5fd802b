"""TrainingRun end to end: the real operator (kopf in a thread) against kmock (see
support/kmock.py): the Job, progress, success, failure, restart and an invalid spec."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stevie_operator.app import FINALIZER
from stevie_trainer.common import storage
from support.kmock import JOBS, Cluster, conditions, operator, wait_for
from support.kmock import handled as handled_at
from support.paths import example

QUICKSTART = example("trainingrun-quickstart.yaml")
TR = "/apis/stevie.dev/v1alpha1/namespaces/default/trainingruns"


def training_run(name: str, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(QUICKSTART)
    doc["metadata"] = {"name": name, "namespace": "default"}
    doc["spec"].update(spec)
    return doc


def phase_is(cluster: Cluster, name: str, phase: str) -> Callable[[], dict[str, Any] | None]:
    def fetch() -> dict[str, Any] | None:
        body = cluster.api("GET", f"{TR}/{name}")
        status = (body or {}).get("status") or {}
        return status if status.get("phase") == phase else None

    return fetch


def handled(cluster: Cluster, name: str) -> bool:
    return handled_at(cluster, f"{TR}/{name}")


def _created_job_and_pending(cluster: Cluster, created: dict[str, Any], run_dir: Path) -> None:
    """The Job: owned by the run, the trainer command, the storage volume; then Pending."""
    job = wait_for(lambda: cluster.api("GET", f"{JOBS}/quick-train"), what="the Job")
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "stevie.dev/v1alpha1",
            "kind": "TrainingRun",
            "name": "quick",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--spec-json", "$(STEVIE_SPEC)", "--out", run_dir.as_uri()]
    spec_env = next(e["value"] for e in container["env"] if e["name"] == "STEVIE_SPEC")
    assert json.loads(spec_env)["totalTimesteps"] == 20480
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    status = wait_for(phase_is(cluster, "quick", "Pending"), what="Pending")
    assert status["jobName"] == "quick-train"
    assert status["observedGeneration"] == 1
    assert conditions(status)["Progressing"] in (("True", "JobCreated"), ("True", "JobPending"))


def _pod_runs_and_reports_progress(cluster: Cluster, run_dir: Path) -> None:
    storage.write_text(
        storage.join(run_dir.as_uri(), "progress.json"),
        json.dumps({"timesteps": 10240, "total_timesteps": 20480, "stage": None}),
    )
    started = "2025-01-01T00:00:00Z"
    cluster.api(
        "PATCH", f"{JOBS}/quick-train/status", {"status": {"active": 1, "startTime": started}}
    )
    status = wait_for(phase_is(cluster, "quick", "Running"), what="Running")
    assert status["progress"] == {"timesteps": 10240, "totalTimesteps": 20480, "percent": 50}
    assert status["startTime"] == started


def _trainer_writes_its_result_and_exits(cluster: Cluster, run_dir: Path) -> None:
    result = {
        "status": "succeeded",
        "timesteps": 20480,
        "validation": {"sharpe": 1.25, "sortino": 2.0, "total_return": 0.1, "trades": 7},
        "test": {"agent": {"sharpe": 0.5, "max_drawdown": 0.2}, "random": {"sharpe": -1}},
        "artifacts": {"model": run_dir.as_uri() + "/model.zip"},
    }
    storage.write_text(storage.join(run_dir.as_uri(), "result.json"), json.dumps(result))
    done = "2025-01-01T01:00:00Z"
    complete = {"active": None, "succeeded": 1, "completionTime": done,
                "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip
    cluster.api("PATCH", f"{JOBS}/quick-train/status", {"status": complete})
    status = wait_for(phase_is(cluster, "quick", "Succeeded"), what="Succeeded")
    assert status["validation"] == {"sharpe": 1.25, "sortino": 2.0, "totalReturn": 0.1,
                                    "trades": 7}  # fmt: skip
    assert status["test"] == {"sharpe": 0.5, "maxDrawdown": 0.2}
    assert status["artifacts"]["model"] == run_dir.as_uri() + "/model.zip"
    assert status["progress"]["percent"] == 100
    assert status["completionTime"] == done
    assert conditions(status) == {
        "Ready": ("True", "TrainingSucceeded"),
        "Progressing": ("False", "TrainingSucceeded"),
        "Degraded": ("False", "AsExpected"),
        "Succeeded": ("True", "TrainingSucceeded"),
        "Failed": ("False", "TrainingSucceeded"),
    }


def test_training_run_job_progress_success(cluster: Cluster, tmp_path: Path) -> None:
    with operator() as runner:
        created = cluster.api("POST", TR, training_run("quick"))
        # Artifacts are keyed by the object: <name>/<uid>.
        run_dir = (
            tmp_path / "data" / "default" / "trainingruns" / "quick" / created["metadata"]["uid"]
        )
        _created_job_and_pending(cluster, created, run_dir)
        # Our finalizer, not kopf's (named, documented, removable with the operator gone).
        meta = cluster.api("GET", f"{TR}/quick")["metadata"]
        assert meta.get("finalizers") == [FINALIZER] == ["stevie.dev/finalizer"]
        _pod_runs_and_reports_progress(cluster, run_dir)
        _trainer_writes_its_result_and_exits(cluster, run_dir)
        events = wait_for(
            lambda: (
                [e for e in cluster.events("quick") if e[1] == "TrainingSucceeded"]
                and cluster.events("quick")
            ),
            what="events",
        )
        assert [reason for _, reason, _ in events] == [
            "JobCreated", "TrainingStarted", "TrainingSucceeded"
        ]  # fmt: skip
        cluster.settle()
    assert runner.exception is None
    assert cluster.created("jobs/quick-train") == 1


def test_failure_restart_and_invalid_spec(cluster: Cluster) -> None:
    with operator() as first:
        cluster.api("POST", TR, training_run("flaky"))
        wait_for(lambda: cluster.api("GET", f"{JOBS}/flaky-train"), what="the Job")
        wait_for(phase_is(cluster, "flaky", "Pending"), what="Pending")
        # Stop only once kopf has recorded the creation as handled: a timer that kopf spawns
        # after that, while the operator is already stopping, would hang the exit for 5 s.
        wait_for(lambda: handled(cluster, "flaky"), what="the creation handled")
        cluster.settle()
    assert first.exception is None

    # A restarted operator resumes the run: it sees the Job and creates no other.
    with operator() as second:
        cluster.api(
            "PATCH",
            f"{JOBS}/flaky-train/status",
            {
                "status": {
                    "failed": 4,
                    "conditions": [
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        }
                    ],
                }
            },
        )
        status = wait_for(phase_is(cluster, "flaky", "Failed"), what="Failed")
        assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")
        assert conditions(status)["Degraded"] == ("True", "BackoffLimitExceeded")
        assert "backoff limit" in status["message"]
        events = wait_for(
            lambda: [e for e in cluster.events("flaky") if e[0] == "Warning"], what="warning"
        )
        assert [e[1] for e in events] == ["BackoffLimitExceeded"]

        # An invalid spec: a clear condition and Event, no Job, no crash.
        bad = training_run("broken", totalTimesteps=0)
        bad["spec"]["env"]["window"] = 1
        cluster.api("POST", TR, bad)
        status = wait_for(phase_is(cluster, "broken", "Failed"), what="InvalidSpec")
        failed = next(c for c in status["conditions"] if c["type"] == "Failed")
        assert failed["reason"] == "InvalidSpec"
        assert "spec.totalTimesteps: must be > 0 (got 0)" in failed["message"]
        assert "spec.env.window" in failed["message"]
        wait_for(lambda: [e for e in cluster.events("broken") if e[1] == "InvalidSpec"])
        assert cluster.api("GET", f"{JOBS}/broken-train") is None
        cluster.settle()
    assert second.exception is None
    assert cluster.created("jobs/flaky-train") == 1
    assert [e[1] for e in cluster.events("flaky")].count("JobCreated") == 1
