"""The trainer's result summary read back from a pod's termination message, as the kubelet
writes it: a valid summary, and everything that is not one (cut by the kubelet's 4096-byte
tail, garbage, log lines, oversize, another schema, a failed container's) is None, never an
error. Then podstatus.report puts it in a Job's PodReport."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stevie_operator.framework import podstatus, termination
from stevie_trainer.common import termination as trainer_termination

JOB_UID = "0f9a3c1e-2d4b-4c8e-9a1f-5b6c7d8e9f01"
RESULT: dict[str, Any] = {
    "status": "succeeded",
    "timesteps": 2048,
    "validation": {"sharpe": 1.25, "total_return": 0.1, "trades": 7},
    "test": {"agent": {"sharpe": -0.5, "max_drawdown": -0.2}, "random": {"sharpe": -1.0}},
    "artifacts": {"model": "s3://b/stevie/default/trainingruns/quick/u1/model.zip"},
}
SUMMARY = trainer_termination.training_summary(RESULT)
MESSAGE = trainer_termination.encode(SUMMARY)
LOGS = (
    "Trained 2048 steps\nstevie-trainer: error: data: no such file: s3://b/x.csv\n"
    '{"stevie": 1, "status": "succeeded"}\n'  # a log line that looks like one
)


def terminated(message: Any, code: int = 0, container: str = "trainer") -> dict[str, Any]:
    """A containerStatuses entry of a container that ended."""
    state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                            "startedAt": "2025-01-01T00:00:30Z",
                            "finishedAt": "2025-01-01T00:09:12Z"}}  # fmt: skip
    if message is not None:
        state["terminated"]["message"] = message
    return {"name": container, "ready": False, "restartCount": 0, "started": False,
            "state": state}  # fmt: skip


def pod(
    phase: str, *statuses: dict[str, Any], name: str = "quick-train-x7k2p",
    created: str = "2025-01-01T00:00:01Z",
) -> dict[str, Any]:  # fmt: skip
    """A pod of the Job quick-train, as the Job controller creates it."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "quick-train", "uid": JOB_UID,
             "controller": True}  # fmt: skip
    meta = {"name": name, "namespace": "default", "creationTimestamp": created,
            "labels": {"batch.kubernetes.io/job-name": "quick-train"},
            "ownerReferences": [owner]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "status": {"phase": phase, "containerStatuses": list(statuses)}}  # fmt: skip


def test_the_trainers_summary_reads_back_whole() -> None:
    assert MESSAGE is not None
    assert termination.parse(MESSAGE) == SUMMARY
    assert termination.parse(MESSAGE + "\n") == SUMMARY  # a trailing newline is fine
    assert SUMMARY["stevie"] == 1 and SUMMARY["test"] == {"agent": RESULT["test"]["agent"]}


@pytest.mark.parametrize(
    "message",
    [
        None,
        "",
        42,
        LOGS,  # FallbackToLogsOnError: a failed container's last log lines
        "Error on reading termination log /var/lib/kubelet/pods/x: permission denied",
        "not json at all {",
        '{"stevie": 1, "status": "succ',  # cut at the end
        '{"status": "succeeded", "timesteps": 10}',  # no schema key: not ours
        '{"stevie": 2, "status": "succeeded"}',  # a schema this operator does not know
        '{"stevie": "1"}',
        '[{"stevie": 1}]',
        '{"stevie": 1} {"stevie": 1}',
    ],
)
def test_anything_else_is_no_summary(message: Any) -> None:
    assert termination.parse(message) is None


def test_a_message_the_kubelet_cut_or_that_is_too_long_is_none() -> None:
    big = json.dumps({"stevie": 1, "status": "succeeded", "note": "x" * 5000})
    assert termination.parse(big) is None  # over 4096 bytes: not the kubelet's copy
    # What the kubelet keeps of a longer file: its last 4096 bytes, no longer JSON.
    assert termination.parse(big.encode()[-4096:].decode()) is None
    multibyte = json.dumps({"stevie": 1, "note": "é" * 2100}, ensure_ascii=False)
    assert len(multibyte) < 4096 < len(multibyte.encode())
    assert termination.parse(multibyte) is None


def test_only_a_succeeded_pods_trainer_that_exited_0_counts() -> None:
    assert termination.pod_summary(pod("Succeeded", terminated(MESSAGE))) == SUMMARY
    assert termination.pod_summary(pod("Failed", terminated(MESSAGE, code=1))) is None
    assert termination.pod_summary(pod("Running", terminated(MESSAGE))) is None
    assert termination.pod_summary(pod("Succeeded", terminated(MESSAGE, container="x"))) is None
    two = pod("Succeeded", terminated("done", container="istio-proxy"), terminated(MESSAGE))
    assert termination.pod_summary(two) == SUMMARY
    assert termination.pod_summary({"status": "garbage"}) is None
    assert (
        termination.pod_summary({"status": {"phase": "Succeeded", "containerStatuses": 3}}) is None
    )


def test_the_jobs_report_carries_the_newest_summary() -> None:
    job = {"kind": "Job", "metadata": {"name": "quick-train", "uid": JOB_UID},
           "status": {"succeeded": 1, "failed": 1,
                      "conditions": [{"type": "Complete", "status": "True"}]}}  # fmt: skip
    older = dict(SUMMARY, timesteps=1)
    pods = [
        pod("Failed", terminated(LOGS, code=1), name="quick-train-a",
            created="2025-01-01T00:00:01Z"),
        pod("Succeeded", terminated(trainer_termination.encode(older)), name="quick-train-b",
            created="2025-01-01T00:05:00Z"),
        pod("Succeeded", terminated(MESSAGE), name="quick-train-c", created="2025-01-01T00:09:00Z"),
        # Another Job's pod, with its own summary: not this Job's.
        {**pod("Succeeded", terminated(MESSAGE)),
         "metadata": {"name": "other-x", "ownerReferences": [{"kind": "Job", "uid": "other"}]}},
    ]  # fmt: skip
    report = podstatus.report(job, pods)
    assert report.summary == SUMMARY
    assert report.failure is not None and "exited with code 1" in report.failure[1]
    assert podstatus.report(job, pods[:2]).summary == older
    assert podstatus.report(job, pods[:1]).summary is None
    assert podstatus.report(job, []).summary is None
