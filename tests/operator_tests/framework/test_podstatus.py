"""What a Job's pods say (podstatus.report) and how the Job's outcome shows it (job_outcome,
pod_problem), on pods, Jobs and Events as the API server writes them (v1 Pod, batch/v1 Job,
core/v1 Event), one case per reason a pod does not run."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stevie_operator.framework import podstatus
from stevie_operator.framework.children import (
    first_problem,
    job_outcome,
    pod_problem,
    with_pods,
)

JOB_UID = "0f9a3c1e-2d4b-4c8e-9a1f-5b6c7d8e9f01"
POD_UID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
IMAGE = "ghcr.io/stevie-dev/stevie-trainer:0.1.0"


def job(status: dict[str, Any] | None = None, name: str = "quick-train") -> dict[str, Any]:
    """A Job as the Job controller shows it: one pod, ``ready`` counted (Kubernetes >= 1.24)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "uid": JOB_UID,
                     "labels": {"stevie.dev/kind": "TrainingRun", "stevie.dev/name": "quick"}},
        "spec": {"backoffLimit": 3, "template": {"spec": {"restartPolicy": "Never"}}},
        "status": {"active": 1, "ready": 0, "startTime": "2025-01-01T00:00:00Z", "terminating": 0,
                   "uncountedTerminatedPods": {}} if status is None else status,
    }  # fmt: skip


def pod(
    status: dict[str, Any], name: str = "quick-train-x7k2p", created: str = "2025-01-01T00:00:01Z"
) -> dict[str, Any]:
    """A pod of that Job, as the Job controller creates it (labels, ownerReference)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": POD_UID if name == "quick-train-x7k2p" else f"uid-{name}",
            "creationTimestamp": created,
            "labels": {
                "batch.kubernetes.io/controller-uid": JOB_UID,
                "batch.kubernetes.io/job-name": "quick-train",
                "controller-uid": JOB_UID,
                "job-name": "quick-train",
                "stevie.dev/kind": "TrainingRun",
                "stevie.dev/name": "quick",
            },
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "quick-train",
                                 "uid": JOB_UID, "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {"containers": [{"name": "trainer", "image": IMAGE,
                                 "resources": {"limits": {"memory": "2Gi"},
                                               "requests": {"cpu": "2", "memory": "2Gi"}}}],
                 "restartPolicy": "Never"},
        "status": status,
    }  # fmt: skip


SCHEDULED = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:02Z"}


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    """A scheduled pod whose trainer container waits for ``reason``."""
    state: dict[str, Any] = {"reason": reason} | ({"message": message} if message else {})
    return {
        "phase": "Pending",
        "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
             "message": "containers with unready status: [trainer]"},
            SCHEDULED,
        ],
        "containerStatuses": [{"name": "trainer", "image": IMAGE, "imageID": "", "ready": False,
                               "restartCount": 0, "started": False,
                               "state": {"waiting": state}}],
        "hostIP": "10.0.0.4",
        "qosClass": "Burstable",
        "startTime": "2025-01-01T00:00:02Z",
    }  # fmt: skip


UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "lastProbeTime": None, "lastTransitionTime": "2025-01-01T00:00:02Z",
                    "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 "
                    "nodes are available: 3 No preemption victims found for incoming pod."}],
    "qosClass": "Burstable",
}  # fmt: skip

RUNNING = {
    "phase": "Running",
    "conditions": [{"type": "Ready", "status": "True"}, SCHEDULED],
    "containerStatuses": [{"name": "trainer", "ready": True, "restartCount": 0, "started": True,
                           "state": {"running": {"startedAt": "2025-01-01T00:00:30Z"}}}],
}  # fmt: skip

OOM_KILLED: dict[str, Any] = {
    "phase": "Failed",
    "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed"}, SCHEDULED],
    "containerStatuses": [{"name": "trainer", "ready": False, "restartCount": 0, "started": False,
                           "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                    "startedAt": "2025-01-01T00:00:30Z",
                                                    "finishedAt": "2025-01-01T00:09:12Z"}}}],
}  # fmt: skip


def event(
    reason: str, message: str, uid: str, kind: str, when: str, **extra: Any
) -> dict[str, Any]:
    """A core/v1 Event as the Job controller or the kubelet posts it."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"x.{reason}.{when}", "namespace": "default",
                     "creationTimestamp": when},
        "involvedObject": {"apiVersion": "batch/v1" if kind == "Job" else "v1", "kind": kind,
                           "name": "quick-train" if kind == "Job" else "quick-train-x7k2p",
                           "namespace": "default", "uid": uid},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 3,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "source": {"component": "job-controller" if kind == "Job" else "kubelet"},
    } | extra  # fmt: skip


QUOTA = (
    'Error creating: pods "quick-train-7xq2m" is forbidden: exceeded quota: compute, requested: '
    "limits.memory=2Gi, used: limits.memory=8Gi, limited: limits.memory=8Gi"
)
PSA = (
    'Error creating: pods "quick-train-7xq2m" is forbidden: violates PodSecurity '
    '"restricted:latest": allowPrivilegeEscalation != false (container "trainer" must set '
    "securityContext.allowPrivilegeEscalation=false)"
)
MOUNT = 'MountVolume.SetUp failed for volume "s3-creds" : secret "s3" not found'


def outcome(j: dict[str, Any], pods: list[dict[str, Any]], events: list[dict[str, Any]]) -> Any:
    """job_outcome of the Job as the controller lists it (with its pods' report)."""
    return job_outcome(with_pods(j, podstatus.report(j, pods, events)))


@pytest.mark.parametrize(
    ("state", "reason", "says"),
    [
        (waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'), "ImagePullBackOff",
         f'pod quick-train-x7k2p: Back-off pulling image "{IMAGE}" (check spec.image'),
        (waiting("ErrImagePull", f'failed to pull and unpack image "{IMAGE}": not found'),
         "ErrImagePull", "not found (check spec.image"),
        (waiting("InvalidImageName", 'Failed to apply default image tag "Bad:Image"'),
         "InvalidImageName", "not a valid image reference"),
        (waiting("CreateContainerConfigError", 'secret "s3" not found'),
         "CreateContainerConfigError", 'secret "s3" not found (create the Secret'),
        (waiting("CreateContainerConfigError", "couldn't find key AWS_ACCESS_KEY_ID in Secret "
                 "default/s3"), "CreateContainerConfigError", "find key AWS_ACCESS_KEY_ID"),
        (UNSCHEDULABLE, "Unschedulable",
         "pod quick-train-x7k2p: 0/3 nodes are available: 3 Insufficient memory."),
    ],
)  # fmt: skip
def test_a_pod_that_cannot_start_is_pending_with_its_reason(
    state: dict[str, Any], reason: str, says: str
) -> None:
    j = job()
    phase, why, message, finished = outcome(j, [pod(state)], [])
    assert (phase, why, finished) == ("Pending", reason, None)
    assert message.startswith("Job quick-train: ") and says in message
    assert "Kubernetes keeps trying" in message
    problem = pod_problem(with_pods(j, podstatus.report(j, [pod(state)])))
    assert problem == (reason, message)  # what a kind shows as Degraded
    assert podstatus.event_subjects(j, [pod(state)]) == []  # the status says it: no Events read


def test_active_alone_is_not_running_a_pod_starting_is_pending_with_why() -> None:
    j = job()
    starting = pod(waiting("ContainerCreating"))
    assert outcome(j, [starting], [])[:3] == (
        "Pending", "JobPending", "Job quick-train: waiting for its pod: ContainerCreating"
    )  # fmt: skip
    assert pod_problem(with_pods(j, podstatus.report(j, [starting]))) is None
    # Its Events are read (a mount failure is only an Event), none say anything: still starting.
    assert podstatus.event_subjects(j, [starting]) == [POD_UID]
    unscheduled = pod({"phase": "Pending"})
    assert "waiting for its pod: not scheduled yet" in outcome(j, [unscheduled], [])[2]
    assert outcome(j, [pod(RUNNING)], [])[:2] == ("Running", "Training")
    # The Job's ready count says it too, with no pod listed.
    assert outcome(job({"active": 1, "ready": 1}), [], [])[0] == "Running"


def test_without_ready_or_pods_active_stands() -> None:
    """An older cluster (no ``ready``) or stevie run's processes (no pods): active is all."""
    assert job_outcome(job({"active": 1}))[:2] == ("Running", "Training")
    assert outcome(job({"active": 1}), [], [])[:2] == ("Running", "Training")
    assert job_outcome(job({}))[:3] == (
        "Pending", "JobPending", "Job quick-train: waiting for its pod: not created yet"
    )  # fmt: skip


def test_a_mount_failure_is_read_from_the_pods_events() -> None:
    j, starting = job(), pod(waiting("ContainerCreating"))
    events = [
        event("FailedMount", "old", POD_UID, "Pod", "2025-01-01T00:00:05Z"),
        event("FailedMount", MOUNT, POD_UID, "Pod", "2025-01-01T00:02:05Z"),
        event("FailedMount", "another pod's", "other", "Pod", "2025-01-01T00:03:05Z"),
        event("Scheduled", "assigned", POD_UID, "Pod", "2025-01-01T00:04:05Z", type="Normal"),
    ]
    phase, reason, message, _ = outcome(j, [starting], events)
    assert (phase, reason) == ("Pending", "FailedMount")
    assert f"Job quick-train: pod quick-train-x7k2p: {MOUNT} (check the volumes" in message
    multi = 'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) quick-train-a'
    attach = event("FailedAttachVolume", multi, POD_UID, "Pod", "2025-01-01T00:05:00Z")
    assert outcome(j, [starting], [*events, attach])[1] == "FailedAttachVolume"
    assert "ReadWriteMany" in outcome(j, [starting], [attach])[2]


@pytest.mark.parametrize("refusal", [QUOTA, PSA])
def test_a_pod_the_api_server_refuses_is_a_failed_create_on_the_job(refusal: str) -> None:
    j = job({"active": 0, "ready": 0, "startTime": "2025-01-01T00:00:00Z"})
    assert podstatus.event_subjects(j, []) == [JOB_UID]  # no pod: the Job's Events say why
    events = [event("FailedCreate", refusal, JOB_UID, "Job", "2025-01-01T00:00:03Z")]
    phase, reason, message, _ = outcome(j, [], events)
    assert (phase, reason) == ("Pending", "FailedCreate")
    assert message.startswith(f"Job quick-train: cannot create its pod: {refusal} (the API")
    # Without Events (none yet, or not read): waiting, not a problem.
    assert outcome(j, [], [])[:2] == ("Pending", "JobPending")


def test_oom_killed_says_so_in_the_failure() -> None:
    failed = job(
        {"failed": 4, "ready": 0, "startTime": "2025-01-01T00:00:00Z",
         "conditions": [{"type": "FailureTarget", "status": "True",
                         "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"},
                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit",
                         "lastTransitionTime": "2025-01-01T00:40:00Z"}]}
    )  # fmt: skip
    pods = [pod(OOM_KILLED, f"quick-train-{i}", f"2025-01-01T00:{i}0:00Z") for i in range(4)]
    phase, reason, message, finished = outcome(failed, pods, [])
    assert (phase, reason) == ("Failed", "OOMKilled")
    assert message == (
        "Job quick-train failed: pod quick-train-3: the trainer ran out of memory (limit 2Gi), "
        "exit 137; raise the memory in the spec's resources (BackoffLimitExceeded: Job has "
        "reached the specified backoff limit)"
    )
    assert finished is not None
    assert podstatus.event_subjects(failed, pods) == []  # finished: no Events read
    assert pod_problem(with_pods(failed, podstatus.report(failed, pods))) is None
    # Without pods (collected), the Job's own condition is all there is.
    assert job_outcome(failed)[1] == "BackoffLimitExceeded"


def test_an_exit_code_failure_keeps_its_reason_and_adds_the_pods_last_words() -> None:
    crashed: dict[str, Any] = copy.deepcopy(OOM_KILLED)
    crashed["containerStatuses"][0]["state"]["terminated"] = {
        "exitCode": 3, "reason": "Error",
        "message": "Traceback (most recent call last):\n ...\nBadInputError: data file missing\n",
    }  # fmt: skip
    message = "Container trainer for pod default/quick-train-x7k2p failed with exit code 3 "
    failed = job({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                               "reason": "PodFailurePolicy",
                                               "message": message}]})  # fmt: skip
    phase, reason, text, _ = outcome(failed, [pod(crashed)], [])
    assert (phase, reason) == ("Failed", "PodFailurePolicy")
    assert "the trainer refused its input (exit 3)" in text
    assert text.endswith("exited with code 3: BadInputError: data file missing")


def test_an_evicted_pod_and_a_retry_that_runs() -> None:
    evicted = {"phase": "Failed", "reason": "Evicted",
               "message": "The node was low on resource: memory."}  # fmt: skip
    pods = [pod(evicted, "quick-train-a", "2025-01-01T00:00:01Z"),
            pod(RUNNING, "quick-train-b", "2025-01-01T00:05:00Z")]  # fmt: skip
    report = podstatus.report(job(), pods)
    assert report.running and report.pods == 1 and report.problem is None
    assert report.failure == ("Evicted", "pod quick-train-a: The node was low on resource: memory.")


def test_only_the_jobs_own_pods_count() -> None:
    other = pod(waiting("ImagePullBackOff", "Back-off"), "hpo-t1-abcde")
    other["metadata"]["ownerReferences"][0].update(name="hpo-t1", uid="another-job")
    other["metadata"]["labels"]["job-name"] = "hpo-t1"
    assert podstatus.pods_of(job(), [other]) == []
    by_label = pod(waiting("ImagePullBackOff", "Back-off"))
    del by_label["metadata"]["ownerReferences"]  # an emulator's pod: the job-name label
    assert podstatus.pods_of(job(), [by_label]) == [by_label]


def test_the_first_stuck_child_says_how_many_more() -> None:
    stuck = pod(waiting("ImagePullBackOff", "Back-off"))
    jobs = {
        name: with_pods(job(name=name), podstatus.report(job(), [stuck]))
        for name in ("hpo-t2", "hpo-t1")
    }
    jobs["hpo-t0"] = with_pods(job(name="hpo-t0"), podstatus.report(job(), [pod(RUNNING)]))
    reason, message = first_problem(jobs) or ("", "")
    assert reason == "ImagePullBackOff"
    assert message.startswith("Job hpo-t1: pod quick-train-x7k2p: Back-off")
    assert message.endswith("; 1 more Job(s) cannot start either")


def deployment(status: dict[str, Any]) -> dict[str, Any]:
    selector = {"stevie.dev/kind": "Ensemble", "stevie.dev/name": "ens", "stevie.dev/role": "serve"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "ens-serve", "namespace": "default", "uid": "dep"},
            "spec": {"replicas": 1, "selector": {"matchLabels": selector}},
            "status": status}  # fmt: skip


def test_a_deployments_pods_and_its_replica_failure() -> None:
    serve = pod(waiting("ImagePullBackOff", "Back-off pulling"), "ens-serve-5d8f-abcde")
    serve["metadata"]["labels"] = {
        "stevie.dev/kind": "Ensemble",
        "stevie.dev/name": "ens",
        "stevie.dev/role": "serve",
        "pod-template-hash": "5d8f",
    }
    serve["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "ens-serve-5d8f",
                                             "uid": "rs"}]  # fmt: skip
    dep = deployment({"replicas": 1, "unavailableReplicas": 1})
    reason, message = pod_problem(with_pods(dep, podstatus.report(dep, [serve]))) or ("", "")
    assert reason == "ImagePullBackOff"
    assert message.startswith("Deployment ens-serve: pod ens-serve-5d8f-abcde: Back-off pulling")
    refused = deployment({"conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": 'pods "ens-serve-5d8f-x" is forbidden: exceeded quota: compute'}]})  # fmt: skip
    reason, message = pod_problem(with_pods(refused, podstatus.report(refused, []))) or ("", "")
    assert reason == "FailedCreate" and "exceeded quota: compute" in message
    assert podstatus.event_subjects(refused, []) == []  # its condition says it
    ready = copy.deepcopy(serve)
    ready["status"] = RUNNING
    assert podstatus.report(dep, [ready]).running
