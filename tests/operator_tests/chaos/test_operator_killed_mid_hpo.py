"""SIGKILL the operator twice in the middle of an HPOStudy and require the study to end as if
nothing happened: exactly maxTrials trials, each asked once and run by one Job created once.

The operator is ``stevie operator`` in a child process against kmock; the kubelet runs the
trial Jobs as real trainer processes on the same file:// root (the Optuna journal is shared,
as on a volume). The first kill lands while two trials train. The second lands in the one
window a crash can leave work half-done: the operator has asked Optuna for trial 2 (RUNNING
in the journal) and its Job is not created yet (kmock holds that POST until the kill). The
next operator must find the trial without a Job and create it, not ask another trial, and
not mark it failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from stevie_api import GROUP, VERSION
from stevie_trainer.hpo.study import open_storage
from support.chaos import CreateGate, OperatorProcess, RetryingKubelet, finished, job_names
from support.kmock import Cluster, wait_for
from support.specs import hpo_study, template

HPO = f"/apis/{GROUP}/{VERSION}/namespaces/default/hpostudies"
NAME = "chaos-hpo"
MAX_TRIALS = 4
HELD = f"{NAME}-t2"  # the Job whose creation the second kill interrupts


def study() -> dict[str, Any]:
    """4 trials of 512 steps, 2 at a time, no significance test (the report only)."""
    run = template(totalTimesteps=512, evaluation={"evalFreq": 256})
    return hpo_study(NAME, template=run, maxTrials=MAX_TRIALS, parallelism=2,
                     significance={"enabled": False})  # fmt: skip


def trials(folder: Path) -> list[optuna.trial.FrozenTrial]:
    journal = open_storage(str(folder / "optuna.journal"))
    return optuna.load_study(study_name=NAME, storage=journal).get_trials(deepcopy=False)


def reconciled_since(cluster: Cluster, start: int) -> bool:
    """Whether the operator read the study (drive()'s fresh GET) after call ``start``."""
    assert cluster.emulator is not None
    return any(
        c.method == "GET" and c.resource == "hpostudies" and c.name == NAME
        for c in cluster.emulator.calls[start:]
    )


@pytest.mark.slow
def test_sigkilled_operator_resumes_the_study_without_losing_or_repeating_a_trial(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert cluster.emulator is not None
    gate = CreateGate(cluster, lambda name: name == HELD)
    operator = OperatorProcess(tmp_path / "operator")
    kubelet = RetryingKubelet(cluster, tmp_path / "pods")
    t0 = time.monotonic()
    try:
        with kubelet:
            operator.start()
            uid = cluster.api("POST", HPO, study())["metadata"]["uid"]
            folder = tmp_path / "data" / "default" / "hpostudies" / NAME / uid
            first = {f"{NAME}-t0", f"{NAME}-t1"}
            wait_for(lambda: first <= job_names(cluster), 60, "the first two trial Jobs")

            operator.kill()  # 1: two trials training
            calls = len(cluster.emulator.calls)
            operator.start()
            restart = time.monotonic()
            wait_for(lambda: reconciled_since(cluster, calls), 60, "the new operator")
            resumed = time.monotonic() - restart

            wait_for(lambda: gate.held, 120, f"the POST of Job {HELD}")
            numbers = {t.number: t.state for t in trials(folder)}
            assert numbers[2] == TrialState.RUNNING and HELD not in job_names(cluster)
            operator.kill()  # 2: trial 2 asked, its Job not created
            gate.release()
            operator.start()
            restart = time.monotonic()
            wait_for(lambda: HELD in job_names(cluster), 60, f"Job {HELD} after the restart")
            recreated = time.monotonic() - restart

            status = wait_for(lambda: finished(cluster, f"{HPO}/{NAME}"), 300, "the study")
            cluster.settle(timeout=20)
    finally:
        operator.stop()
    total = time.monotonic() - t0

    done = trials(folder)
    jobs = sorted(n for n in job_names(cluster) if n.startswith(f"{NAME}-"))
    posts = {n: cluster.created(f"jobs/{n}") for n in jobs}
    pods = {n: len(kubelet.jobs[n].pods) for n in jobs}
    print(f"\nHPO chaos: {len(done)} trials {[t.state.name for t in done]}; "
          f"Jobs {jobs}; POSTs per Job {posts} (+ {len(gate.held)} held and refused: "
          f"{gate.held}); pods per Job {pods}; operator starts {operator.starts}; "
          f"restart -> first reconcile {resumed:.1f} s; restart -> Job {HELD} "
          f"{recreated:.1f} s; handler errors {operator.handler_errors()}; "
          f"total {total:.1f} s")  # fmt: skip
    assert status["phase"] == "Succeeded", status
    assert [t.number for t in done] == list(range(MAX_TRIALS))  # none skipped, none extra
    assert {t.state for t in done} == {TrialState.COMPLETE}  # none orphaned or marked FAIL
    assert status["trials"] == {"completed": MAX_TRIALS, "pruned": 0, "failed": 0,
                                "running": 0}  # fmt: skip
    expected = [f"{NAME}-finish-{MAX_TRIALS}"] + [f"{NAME}-t{n}" for n in range(MAX_TRIALS)]
    assert jobs == expected
    assert set(posts.values()) == {1}, posts  # each Job created once, never POSTed again
    assert set(pods.values()) == {1}, pods  # each trial ran once
    assert gate.held == [HELD]
    assert status.get("reportUri"), status
