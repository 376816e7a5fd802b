"""SIGKILL the operator twice in the middle of a PBTPopulation and require it to end as if
nothing happened: every member's intervals, each trained by one Job created once, and a
population.json whose counts, lineage and results agree.

The operator is ``stevie operator`` in a child process against kmock; the kubelet runs the
interval Jobs as real trainer processes on the same file:// root. The first kill lands while
the first intervals train. The second lands where a crash can leave work half-done: the
operator has saved population.json with a member's next interval launched (after an exploit
decision, if it made one) and its Job is not created yet (kmock holds that POST until the
kill). The next operator must create that Job from the saved state, not decide again.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from stevie_api import GROUP, VERSION
from support.chaos import (
    CreateGate,
    OperatorProcess,
    RetryingKubelet,
    check_population,
    finished,
    job_names,
)
from support.kmock import Cluster, wait_for
from support.specs import pbt_population

PBT = f"/apis/{GROUP}/{VERSION}/namespaces/default/pbtpopulations"
NAME = "chaos-pbt"
MEMBERS, INTERVALS, STEPS = 3, 2, 256
SECOND_INTERVAL = re.compile(rf"^{NAME}-m\d+-i1$")


def population() -> dict[str, Any]:
    """3 members x 2 intervals of 256 steps, 2 at a time."""
    return pbt_population(NAME, populationSize=MEMBERS, perturbationInterval=STEPS,
                          stopping={"maxIntervals": INTERVALS}, parallelism=2)  # fmt: skip


def state(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((folder / "population.json").read_text())
    return doc


@pytest.mark.slow
def test_sigkilled_operator_resumes_the_population_without_losing_or_repeating_an_interval(
    cluster: Cluster, tmp_path: Path
) -> None:
    gate = CreateGate(cluster, lambda name: bool(SECOND_INTERVAL.match(name)))
    operator = OperatorProcess(tmp_path / "operator")
    kubelet = RetryingKubelet(cluster, tmp_path / "pods")
    t0 = time.monotonic()
    try:
        with kubelet:
            operator.start()
            uid = cluster.api("POST", PBT, population())["metadata"]["uid"]
            folder = tmp_path / "data" / "default" / "pbtpopulations" / NAME / uid
            uri = folder.as_uri()
            first = {f"{NAME}-m0-i0", f"{NAME}-m1-i0"}
            wait_for(lambda: first <= job_names(cluster), 60, "the first interval Jobs")

            operator.kill()  # 1: two intervals training
            operator.start()
            wait_for(lambda: gate.held, 180, "the POST of a second interval's Job")
            held = gate.held[0]
            member = int(held.split("-m")[1].split("-")[0])
            saved = state(folder)
            assert saved["members"][member]["status"] == "running"  # saved before creating
            assert saved["members"][member]["intervals_done"] == 1
            assert held not in job_names(cluster)
            operator.kill()  # 2: state saved, the Job not created
            gate.release()
            operator.start()
            restart = time.monotonic()
            wait_for(lambda: held in job_names(cluster), 60, f"Job {held} after the restart")
            recreated = time.monotonic() - restart

            status = wait_for(lambda: finished(cluster, f"{PBT}/{NAME}"), 300, "the population")
            cluster.settle(timeout=20)
    finally:
        operator.stop()
    total = time.monotonic() - t0

    figures = check_population(cluster, kubelet, NAME, uri, MEMBERS, INTERVALS, STEPS)
    exploit_events = [e for e in cluster.events(NAME, "PBTPopulation") if e[1] == "Exploit"]
    print(f"\nPBT chaos: {figures}; held POST {gate.held} (the state had member {member} "
          f"running interval 1, no Job); restart -> Job {held} {recreated:.1f} s; Exploit "
          f"Events {len(exploit_events)} of {figures['exploits']} exploits; operator starts "
          f"{operator.starts}; handler errors {operator.handler_errors()}; "
          f"total {total:.1f} s")  # fmt: skip
    assert status["phase"] == "Succeeded", status
    assert status["intervalsCompleted"] == MEMBERS * INTERVALS
    assert status["exploits"] == figures["exploits"]
    assert len(exploit_events) == figures["exploits"]  # announced, even the one cut short
    assert set(figures["posts"].values()) == {1}, figures  # each Job created once
    assert set(figures["pods"].values()) == {1}, figures  # each interval trained once
    assert gate.held == [held]
    assert status.get("summaryUri"), status
