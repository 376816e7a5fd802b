"""A real TrainingRun through the real operator, whose result.json is lost once the trainer
wrote it: it ends Succeeded with its metrics all the same, from the summary the trainer left
in its pod's termination message. The kubelet emulator runs the Job as a real process,
creates its pod in kmock and, when the process exits, deletes result.json (the store that
no longer answers) before the pod and the Job say it ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stevie_operator.kinds.trainingrun.reconcile import RESULT_FROM_POD
from stevie_trainer.common import storage
from support.kmock import Cluster, conditions, operator, wait_for
from support.kubelet import Kubelet
from support.specs import template

TR = "/apis/stevie.dev/v1alpha1/namespaces/default/trainingruns"
PODS = "/api/v1/namespaces/default/pods"


@pytest.mark.slow
def test_a_run_whose_result_json_is_lost_keeps_its_metrics(
    cluster: Cluster, tmp_path: Path
) -> None:
    written: dict[str, Any] = {}

    def lose_result(job: dict[str, Any]) -> None:
        path = storage.local_path(
            storage.join(job["metadata"]["annotations"]["stevie.dev/run-uri"], "result.json")
        )
        assert path is not None
        written.update(json.loads(path.read_text()))
        path.unlink()

    def finished() -> dict[str, Any] | None:
        status = (cluster.api("GET", f"{TR}/lost") or {}).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    run = {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
           "metadata": {"name": "lost"}, "spec": template()}  # fmt: skip
    kubelet = Kubelet(cluster, tmp_path / "kubelet", pods=True, exited=lose_result)
    with kubelet, operator() as runner:
        cluster.api("POST", TR, run)
        status = wait_for(finished, timeout=240, what="the run to finish")
        cluster.settle()
    assert runner.exception is None

    assert written["status"] == "succeeded"  # the trainer wrote it; the store then lost it
    assert not storage.exists(storage.join(status["artifacts"]["uri"], "result.json"))
    assert status["phase"] == "Succeeded"
    assert conditions(status)["Degraded"] == ("True", RESULT_FROM_POD)
    assert conditions(status)["Ready"] == ("True", "TrainingSucceeded")
    agent = written["test"]["agent"]
    assert status["test"]["totalReturn"] == agent["total_return"]
    assert status["test"].get("sharpe") == agent["sharpe"]
    assert status["validation"].get("sharpe") == written["validation"].get("sharpe")
    assert status["progress"]["timesteps"] == written["timesteps"] > 0
    assert status["artifacts"]["model"] == written["artifacts"]["model"]
    assert status["message"].startswith(f"Trained {written['timesteps']} steps")

    # What the pod says: the trainer container's message is the summary, whole.
    (pod,) = (cluster.api("GET", PODS) or {})["items"]
    (container,) = pod["status"]["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (pod["status"]["phase"], container["name"], terminated["exitCode"]) == (
        "Succeeded", "trainer", 0
    )  # fmt: skip
    summary = json.loads(terminated["message"])
    assert summary["stevie"] == 1 and summary["timesteps"] == written["timesteps"]
    assert len(terminated["message"].encode()) < 4096
