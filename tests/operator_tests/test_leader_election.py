"""Leader election end to end: two real operators (kopf in two threads, each its own Lease
identity) against one kmock, with an HPOStudy and a PBTPopulation.

The Lease starts held by a crashed operator: both candidates wait for it to expire and race
for it, and one wins (the emulator refuses the loser's stale write with 409, as the API
server does). Only the leader's kopf handles anything (a probe handler on each operator's
registry records what its kopf saw); the follower makes no call but the Lease's. Then the
leader stops, releasing the Lease; the follower takes over at its next try and the resources
go on. Throughout: no Job created twice, no Event posted twice, no trial past maxTrials.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import optuna
import pytest

from stevie_api import GROUP, VERSION
from stevie_operator.framework.leader import microtime
from stevie_trainer.common import storage
from stevie_trainer.hpo.study import open_storage
from support.jobs import done
from support.kmock import JOBS, Cluster, operator, wait_for
from support.specs import hpo_study, pbt_population

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
LEASE = f"{LEASES}/stevie-operator"
HPO = f"/apis/{GROUP}/{VERSION}/namespaces/default/hpostudies"
PBT = f"/apis/{GROUP}/{VERSION}/namespaces/default/pbtpopulations"
LEASE_DURATION = 3  # seconds; renew deadline 2, retry period 0.2 (client-go: 15, 10, 2)
DONE = done(completed="2025-01-01T00:00:30Z", started="2025-01-01T00:00:00Z")
FITNESS = {0: 0.4, 1: -0.3, 2: 0.1}  # member 1 is the worst: it copies member 0


class Candidate:
    """One operator: its kopf runner and the objects its kopf handled events of."""

    def __init__(self, identity: str, lost: list[str]) -> None:
        self.identity = identity
        self.seen: list[str] = []
        registry = kopf.OperatorRegistry()
        for group, version, plural in ((GROUP, VERSION, "hpostudies"),
                                       (GROUP, VERSION, "pbtpopulations"),
                                       ("batch", "v1", "jobs")):  # fmt: skip
            kopf.on.event(group, version, plural, registry=registry)(self._probe)
        self.runner = operator(
            registry, identity=identity, on_lost_lease=lambda why: lost.append(f"{identity}: {why}")
        )
        self.running = False

    def _probe(self, name: str, **_: Any) -> None:
        self.seen.append(name)

    def start(self) -> None:
        self.runner.__enter__()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.runner.__exit__(None, None, None)
            assert self.runner.exception is None, self.runner.exception


def holder(cluster: Cluster) -> str:
    return str(((cluster.api("GET", LEASE) or {}).get("spec") or {}).get("holderIdentity", ""))


def jobs(cluster: Cluster, kind: str) -> dict[str, dict[str, Any]]:
    items = (cluster.api("GET", JOBS) or {}).get("items", [])
    return {j["metadata"]["name"]: j for j in items
            if j["metadata"]["labels"].get("stevie.dev/kind") == kind}  # fmt: skip


def running(cluster: Cluster, kind: str) -> list[str]:
    return sorted(n for n, j in jobs(cluster, kind).items() if not (j.get("status") or {}))


def finish_trial(cluster: Cluster, folder: Path, number: int, value: float) -> None:
    """A trial worker tells the study its value and exits 0."""
    storage_ = open_storage(str(folder / "optuna.journal"))
    optuna.load_study(study_name="hpo", storage=storage_).tell(number, value)
    cluster.api("PATCH", f"{JOBS}/hpo-t{number}/status", {"status": DONE})


def complete_interval(cluster: Cluster, name: str) -> None:
    """An interval pod writes result.json under its --out and exits 0."""
    container = jobs(cluster, "PBTPopulation")[name]["spec"]["template"]["spec"]["containers"][0]
    args = list(container["command"]) + list(container["args"])
    member, out = int(args[args.index("--member") + 1]), args[args.index("--out") + 1]
    result = {"status": "succeeded", "fitness": FITNESS[member], "checkpoint": out}
    storage.write_text(storage.join(out, "result.json"), json.dumps(result))
    cluster.api("PATCH", f"{JOBS}/{name}/status", {"status": DONE})


def no_duplicates(cluster: Cluster) -> None:
    """Every Job created once; every Event (reason and message) posted once."""
    created = {n: cluster.created(f"jobs/{n}") for n in jobs(cluster, "HPOStudy")}
    created |= {n: cluster.created(f"jobs/{n}") for n in jobs(cluster, "PBTPopulation")}
    assert set(created.values()) == {1}, created
    for name, kind in (("hpo", "HPOStudy"), ("pbt", "PBTPopulation")):
        posted = Counter((reason, message) for _, reason, message in cluster.events(name, kind))
        assert max(posted.values(), default=1) == 1, posted


def _crashed_leaders_lease(cluster: Cluster) -> None:
    now = microtime(datetime.now(UTC))
    spec = {"holderIdentity": "crashed", "leaseDurationSeconds": LEASE_DURATION,
            "acquireTime": now, "renewTime": now, "leaseTransitions": 0}  # fmt: skip
    cluster.api("POST", LEASES, {"metadata": {"name": "stevie-operator"}, "spec": spec})


def _first_half(cluster: Cluster, studies: Path) -> Path:
    """Trials 0 and 1 start (parallelism 2), 0 ends, 2 starts; PBT members 0 and 1 start,
    member 0's interval ends, member 2 starts. The study's folder (``<name>/<uid>``)."""
    created = cluster.api("POST", HPO, hpo_study("hpo"))
    folder: Path = studies / "hpo" / created["metadata"]["uid"]
    cluster.api("POST", PBT, pbt_population("pbt", stopping={"maxIntervals": 2}))
    wait_for(lambda: running(cluster, "HPOStudy") == ["hpo-t0", "hpo-t1"], what="two trials")
    wait_for(lambda: len(running(cluster, "PBTPopulation")) == 2, what="two intervals")
    finish_trial(cluster, folder, 0, 0.5)
    complete_interval(cluster, "pbt-m0-i0")
    wait_for(lambda: "hpo-t2" in jobs(cluster, "HPOStudy"), what="trial 2")
    wait_for(lambda: "pbt-m2-i0" in jobs(cluster, "PBTPopulation"), what="member 2")
    return folder


def _second_half(cluster: Cluster, folder: Path) -> None:
    """The other trials and every interval to the end: both finish Jobs."""
    for number, value in ((1, 0.2), (2, 0.9)):
        finish_trial(cluster, folder, number, value)
    wait_for(lambda: "hpo-t3" in jobs(cluster, "HPOStudy"), what="trial 3")
    finish_trial(cluster, folder, 3, 0.1)
    wait_for(lambda: "hpo-finish-4" in jobs(cluster, "HPOStudy"), what="the study's finish Job")
    for _ in range(20):
        if finished(cluster):
            break
        for name in running(cluster, "PBTPopulation"):
            complete_interval(cluster, name)
        wait_for(lambda: running(cluster, "PBTPopulation") or finished(cluster), what="progress")
    assert finished(cluster)


def finished(cluster: Cluster) -> bool:
    return "pbt-finish" in jobs(cluster, "PBTPopulation")


@pytest.mark.slow
def test_two_operators_elect_one_leader_and_the_follower_takes_over(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("", "1"), ("_NAMESPACE", "default"), ("_LEASE", "stevie-operator"),
                        ("_LEASE_DURATION", str(LEASE_DURATION)), ("_RENEW_DEADLINE", "2"),
                        ("_RETRY_PERIOD", "0.2")):  # fmt: skip
        monkeypatch.setenv(f"STEVIE_LEADER_ELECTION{name}", value)
    studies = tmp_path / "data" / "default" / "hpostudies"
    _crashed_leaders_lease(cluster)
    lost: list[str] = []
    candidates = {name: Candidate(name, lost) for name in ("a", "b")}
    try:
        for candidate in candidates.values():
            candidate.start()
        time.sleep(1)
        assert holder(cluster) == "crashed"  # unexpired: both wait
        elected = wait_for(lambda: {holder(cluster)} & set(candidates), what="a leader").pop()
        leader, follower = candidates[elected], candidates[({"a", "b"} - {elected}).pop()]
        assert cluster.api("GET", LEASE)["spec"]["leaseTransitions"] == 1

        folder = _first_half(cluster, studies)
        cluster.settle()
        assert leader.seen and not follower.seen, "the follower's kopf handled something"
        no_duplicates(cluster)

        leader.stop()  # graceful: releases the Lease
        stopped = time.monotonic()
        wait_for(lambda: holder(cluster) == follower.identity, LEASE_DURATION, "the takeover")
        print(f"\ntakeover {time.monotonic() - stopped:.2f} s after the leader stopped")

        _second_half(cluster, folder)
        cluster.settle()
        assert follower.seen
        no_duplicates(cluster)
        assert cluster.events("hpo", "HPOStudy") and cluster.events("pbt", "PBTPopulation")
        journal = open_storage(str(folder / "optuna.journal"))
        assert (
            len(optuna.load_study(study_name="hpo", storage=journal).trials) == 4
        )  # maxTrials: no trial asked for twice
        assert lost == []
    finally:
        for candidate in candidates.values():
            candidate.stop()
