"""A trainer pod SIGKILLed in the middle of a PBT interval (a crash, an OOM kill: exit 137)
is replaced by the Job controller within the Job's backoffLimit, and the new pod trains the
interval again from the checkpoint it started from: the population ends with every interval
once, the interval's steps counted once, and no retry Job of its own (the Job absorbed it).

The operator is ``stevie operator`` in a child process against kmock; the kubelet runs the
Jobs as trainer processes and retries a failed pod as the Job controller does
(:class:`support.chaos.RetryingKubelet`, a 2 s backoff instead of the controller's 10 s).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stevie_api import GROUP, VERSION
from support.chaos import OperatorProcess, RetryingKubelet, check_population, finished
from support.kmock import JOBS, Cluster, wait_for
from support.specs import pbt_population

PBT = f"/apis/{GROUP}/{VERSION}/namespaces/default/pbtpopulations"
NAME = "chaos-pod"
MEMBERS, INTERVALS, STEPS = 2, 2, 1024
VICTIM = f"{NAME}-m0-i1"  # a member's second interval: it starts from a checkpoint


def population() -> dict[str, Any]:
    """2 members x 2 intervals of 1024 steps (about a second of training each)."""
    return pbt_population(NAME, populationSize=MEMBERS, perturbationInterval=STEPS,
                          quantileFraction=0.5, stopping={"maxIntervals": INTERVALS},
                          parallelism=2)  # fmt: skip


def training(folder: Path) -> bool:
    """Whether the victim's pod is training: progress.json is written when training starts,
    result.json once it is over."""
    out = folder / "members" / "m0" / "i1"
    return (out / "progress.json").exists() and not (out / "result.json").exists()


def succeeded(cluster: Cluster, name: str) -> int:
    return int(((cluster.api("GET", f"{JOBS}/{name}") or {}).get("status") or {}).get(
        "succeeded") or 0)  # fmt: skip


@pytest.mark.slow
def test_a_trainer_pod_killed_mid_interval_is_retried_and_nothing_is_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    operator = OperatorProcess(tmp_path / "operator")
    kubelet = RetryingKubelet(cluster, tmp_path / "pods", backoff=2.0)
    t0 = time.monotonic()
    try:
        with kubelet, operator:
            uid = cluster.api("POST", PBT, population())["metadata"]["uid"]
            folder = tmp_path / "data" / "default" / "pbtpopulations" / NAME / uid
            wait_for(lambda: training(folder), 120, f"{VICTIM} training")
            kubelet.kill(VICTIM)
            killed = time.monotonic()
            wait_for(lambda: kubelet.pods(VICTIM) == 2, 30, "the replacement pod")
            replaced = time.monotonic() - killed
            job = wait_for(lambda: succeeded(cluster, VICTIM), 120, f"{VICTIM} to complete")
            recovered = time.monotonic() - killed
            status = wait_for(lambda: finished(cluster, f"{PBT}/{NAME}"), 240, "the population")
            cluster.settle(timeout=20)
    finally:
        operator.stop()
    total = time.monotonic() - t0

    figures = check_population(cluster, kubelet, NAME, folder.as_uri(), MEMBERS, INTERVALS,
                               STEPS)  # fmt: skip
    victim = cluster.api("GET", f"{JOBS}/{VICTIM}")["status"]
    retried = [e for e in cluster.events(NAME, "PBTPopulation") if e[1] == "IntervalRetried"]
    print(f"\npod chaos: {figures}; {VICTIM} pod exit codes {kubelet.jobs[VICTIM].codes}, Job "
          f"status failed={victim.get('failed')} succeeded={victim.get('succeeded')}; kill -> "
          f"replacement pod {replaced:.1f} s, kill -> interval done {recovered:.1f} s; "
          f"PBT-level retries {len(retried)}; handler errors {operator.handler_errors()}; "
          f"total {total:.1f} s")  # fmt: skip
    assert job == 1
    assert status["phase"] == "Succeeded", status
    assert status["intervalsCompleted"] == MEMBERS * INTERVALS
    assert kubelet.jobs[VICTIM].codes == [137, 0]  # killed, then the replacement finished
    assert (victim.get("failed"), victim.get("succeeded")) == (1, 1)
    assert figures["pods"] == {n: 2 if n == VICTIM else 1 for n in figures["pods"]}
    assert set(figures["posts"].values()) == {1}, figures  # no Job created twice
    assert retried == []  # the Job's own retry absorbed it: no retry Job, no retry counted
    assert status.get("summaryUri"), status
    assert operator.handler_errors() == 0
