"""Pod failures reach the TrainingRun's status within one reconcile: the real operator
against kmock, which runs no pods, so the test plays the kubelet, the scheduler and the Job
controller: it creates the Job's pod (from the Job's template, with the labels and
ownerReference the Job controller gives it) in the state of each failure, or posts the Job
controller's FailedCreate Event, and waits for the reason in the conditions and one Warning
Event. A pod that can start again brings the run back to Running."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from support.kmock import EVENTS, JOBS, Cluster, conditions, operator, wait_for
from support.paths import example

TR = "/apis/stevie.dev/v1alpha1/namespaces/default/trainingruns"
PODS = "/api/v1/namespaces/default/pods"
STARTED = {"active": 1, "ready": 0, "startTime": "2025-01-01T00:00:00Z"}
SCHEDULED = {"type": "PodScheduled", "status": "True"}


def _waiting(reason: str, message: str) -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}}
    return {"phase": "Pending", "conditions": [SCHEDULED],
            "containerStatuses": [{"name": "trainer", "ready": False, "restartCount": 0,
                                   "state": state}]}  # fmt: skip


RUNNING = {
    "phase": "Running",
    "conditions": [SCHEDULED, {"type": "Ready", "status": "True"}],
    "containerStatuses": [{"name": "trainer", "ready": True, "restartCount": 0,
                           "state": {"running": {"startedAt": "2025-01-01T00:01:00Z"}}}],
}  # fmt: skip
OOM = {
    "phase": "Failed",
    "containerStatuses": [{"name": "trainer", "ready": False, "restartCount": 0,
                           "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}],
}  # fmt: skip
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient memory."}],
}  # fmt: skip
QUOTA = (
    'Error creating: pods "fail-train-7xq2m" is forbidden: exceeded quota: compute, '
    "requested: limits.memory=2Gi, used: limits.memory=8Gi, limited: limits.memory=8Gi"
)
BACKOFF = {
    "failed": 4,
    "ready": 0,
    "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"}],
}  # fmt: skip

# case -> (pod status or None, Job status, expected phase, reason, text in the message)
CASES: dict[str, tuple[dict[str, Any] | None, dict[str, Any], str, str, str]] = {
    "ImagePullBackOff": (
        _waiting("ImagePullBackOff", 'Back-off pulling image "ghcr.io/x/trainer:0.1"'),
        STARTED, "Pending", "ImagePullBackOff", 'Back-off pulling image "ghcr.io/x/trainer:0.1"',
    ),
    "Unschedulable": (
        UNSCHEDULABLE, STARTED, "Pending", "Unschedulable", "0/3 nodes are available",
    ),
    "CreateContainerConfigError": (
        _waiting("CreateContainerConfigError", 'secret "s3" not found'),
        STARTED, "Pending", "CreateContainerConfigError", 'secret "s3" not found',
    ),
    "FailedCreate": (
        None, {**STARTED, "active": 0}, "Pending", "FailedCreate", "exceeded quota: compute",
    ),
    "OOMKilled": (
        OOM, BACKOFF, "Failed", "OOMKilled", "the trainer ran out of memory (limit 2Gi), exit 137",
    ),
}  # fmt: skip


def _pod(job: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The Job's pod as the Job controller creates it from the template."""
    name, uid = job["metadata"]["name"], job["metadata"]["uid"]
    template = job["spec"]["template"]
    labels = {**template["metadata"]["labels"], "batch.kubernetes.io/job-name": name,
              "job-name": name, "batch.kubernetes.io/controller-uid": uid}  # fmt: skip
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
             "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    meta = {"name": f"{name}-x7k2p", "labels": labels, "ownerReferences": [owner]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"],
            "status": status}  # fmt: skip


def _failed_create(job: dict[str, Any]) -> dict[str, Any]:
    """The Job controller's Event when the API server refuses the pod."""
    regarding = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                 "namespace": "default", "uid": job["metadata"]["uid"]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "fail-train.17a2b3c4d5e6f7a8", "namespace": "default"},
            "involvedObject": regarding, "reason": "FailedCreate", "message": QUOTA,
            "type": "Warning", "count": 1, "lastTimestamp": "2025-01-01T00:00:03Z",
            "source": {"component": "job-controller"}}  # fmt: skip


def training_run(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(example("trainingrun-quickstart.yaml"))
    doc["metadata"] = {"name": name, "namespace": "default"}
    return doc


def _status(cluster: Cluster, reason: str, degraded: str = "True") -> dict[str, Any] | None:
    """The run's status once its Degraded condition is ``degraded`` for ``reason``."""
    status = (cluster.api("GET", f"{TR}/fail") or {}).get("status") or {}
    found = conditions(status).get("Degraded") if status.get("conditions") else None
    return status if found == (degraded, reason) else None


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_pod_failure_shows_in_the_status(cluster: Cluster, case: str) -> None:
    pod_status, job_status, phase, reason, text = CASES[case]
    with operator() as runner:
        cluster.api("POST", TR, training_run("fail"))
        job = wait_for(lambda: cluster.api("GET", f"{JOBS}/fail-train"), what="the Job")
        if pod_status is None:
            cluster.api("POST", EVENTS, _failed_create(job))
        else:
            cluster.api("POST", PODS, _pod(job, pod_status))
        cluster.api("PATCH", f"{JOBS}/fail-train/status", {"status": job_status})
        status = wait_for(lambda: _status(cluster, reason), what=f"Degraded {reason}")
        assert status["phase"] == phase
        assert text in status["message"]
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        assert degraded["message"] == status["message"]
        if phase == "Pending":
            assert "Kubernetes keeps trying" in status["message"]
            assert conditions(status)["Ready"] == ("False", reason)
            # The pod starts (the image pushed, the Secret created, a node added): Running.
            if pod_status is None:
                cluster.api("POST", PODS, _pod(job, RUNNING))
            else:
                cluster.api("PATCH", f"{PODS}/fail-train-x7k2p/status", {"status": RUNNING})
            running = wait_for(
                lambda: _status(cluster, "AsExpected", "False"), what="the pod running"
            )
            assert running["phase"] == "Running"
        warnings = wait_for(
            lambda: [e for e in cluster.events("fail") if e[:2] == ("Warning", reason)],
            what="the Warning Event",
        )
        cluster.settle()
        assert len(warnings) == 1 and text in warnings[0][2]
        assert [e for e in cluster.events("fail") if e[:2] == ("Warning", reason)] == warnings
    assert runner.exception is None
    assert cluster.created("jobs/fail-train") == 1
