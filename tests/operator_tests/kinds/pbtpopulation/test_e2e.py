"""PBTPopulation end to end: the real operator (kopf in a thread) against kmock.

Nothing trains: the test plays the interval pods (writing each interval's result.json where
the Job's --out points, as ``stevie_trainer pbt-interval`` would, then patching the Job's
status as the kubelet would) and the finish pod (writing pbt_summary.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stevie_trainer.common import storage
from support.jobs import done, failed
from support.kmock import JOBS, Cluster, conditions, operator, wait_for
from support.specs import pbt_population

PBT = "/apis/stevie.dev/v1alpha1/namespaces/default/pbtpopulations"
DONE = done(completed="2025-01-01T00:00:30Z", started="2025-01-01T00:00:00Z")
FAILED = failed(message="OOMKilled")
FITNESS = {0: 0.4, 1: -0.3, 2: 0.1}


def jobs(cluster: Cluster) -> dict[str, dict[str, Any]]:
    items = (cluster.api("GET", JOBS) or {}).get("items", [])
    return {j["metadata"]["name"]: j for j in items
            if j["metadata"]["labels"].get("stevie.dev/kind") == "PBTPopulation"}  # fmt: skip


def running(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {n: j for n, j in jobs(cluster).items() if not (j.get("status") or {}).get("succeeded")
            and not (j.get("status") or {}).get("failed")}  # fmt: skip


def args(job: dict[str, Any]) -> list[str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return list(container["command"][3:]) + list(container["args"])


def complete(cluster: Cluster, name: str, job: dict[str, Any]) -> None:
    """Play the interval pod: result.json under --out, then exit 0."""
    a = args(job)
    member = int(a[a.index("--member") + 1])
    out = a[a.index("--out") + 1]
    result = {"status": "succeeded", "fitness": FITNESS[member], "checkpoint": out}
    storage.write_text(storage.join(out, "result.json"), json.dumps(result))
    cluster.api("PATCH", f"{JOBS}/{name}/status", {"status": DONE})


def population(cluster: Cluster) -> dict[str, Any]:
    return (cluster.api("GET", f"{PBT}/pbt") or {}).get("status") or {}


def _first_intervals(cluster: Cluster, folder: Path, created: dict[str, Any]) -> dict[str, Any]:
    """Two interval Jobs (parallelism 2), the state saved before them; the first Job."""
    wait_for(lambda: len(running(cluster)) == 2, what="two interval Jobs (parallelism 2)")
    job = jobs(cluster)["pbt-m0-i0"]
    a = args(job)
    assert a[:3] == ["pbt-interval", "--population-spec",
                     f"{folder.as_uri()}/population-spec.json"]  # fmt: skip
    assert "--init" not in a and a[-1] == f"{folder.as_uri()}/members/m0/i0"
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert job["metadata"]["labels"]["stevie.dev/member"] == "0"
    state = json.loads((folder / "population.json").read_text())
    assert [m["status"] for m in state["members"]] == ["running", "running", "pending"]
    spec = json.loads((folder / "population-spec.json").read_text())["spec"]
    assert spec["populationSize"] == 3
    return job


def _every_interval_until_the_finish_job(cluster: Cluster) -> dict[str, Any]:
    for _ in range(20):
        if "pbt-finish" in jobs(cluster):
            break
        for name, j in running(cluster).items():
            complete(cluster, name, j)
        wait_for(lambda: running(cluster) or "pbt-finish" in jobs(cluster), what="progress")
    finish: dict[str, Any] = wait_for(lambda: jobs(cluster).get("pbt-finish"), what="finish")
    assert args(finish)[:1] == ["pbt-finish"]
    return finish


def _the_finish_job_summarises(cluster: Cluster, folder: Path, exploits: int) -> None:
    summary = {"best": {"member": 0, "interval": 1, "fitness": 0.4,
                        "model": f"{folder.as_uri()}/best/model.zip",
                        "test": {"best member": {"sharpe": 0.8, "trades": 5}}}}  # fmt: skip
    (folder / "pbt_summary.json").write_text(json.dumps(summary))
    cluster.api("PATCH", f"{JOBS}/pbt-finish/status", {"status": DONE})
    done = wait_for(
        lambda: population(cluster).get("phase") == "Succeeded" and population(cluster),
        what="Succeeded",
    )
    assert done["intervalsCompleted"] == 6 and done["bestMember"] == 0
    assert done["bestFitness"] == 0.4 and done["test"]["sharpe"] == 0.8
    assert done["exploits"] == exploits and len(done["top"]) == 3
    assert conditions(done)["Succeeded"] == ("True", "PopulationSucceeded")


def test_population_runs_intervals_exploits_survives_restart_and_finishes(
    cluster: Cluster, tmp_path: Path
) -> None:
    doc = pbt_population("pbt", stopping={"maxIntervals": 2}, maxIntervalRetries=1)
    doc["spec"]["template"]["resources"] = {"cpu": "1", "memory": "1Gi"}
    with operator() as first:
        created = cluster.api("POST", PBT, doc)
        uid = created["metadata"]["uid"]  # artifacts are keyed by the object: <name>/<uid>
        folder = tmp_path / "data" / "default" / "pbtpopulations" / "pbt" / uid
        complete(cluster, "pbt-m0-i0", _first_intervals(cluster, folder, created))
        wait_for(lambda: "pbt-m2-i0" in jobs(cluster), what="member 2 starts in the free slot")
        cluster.settle()
    assert first.exception is None

    with operator() as second:  # a restarted operator: no duplicate Job, the population goes on
        cluster.api("PATCH", f"{JOBS}/pbt-m1-i0/status", {"status": FAILED})
        retry = wait_for(lambda: jobs(cluster).get("pbt-m1-i0-r1"), what="the retried interval")
        assert cluster.created("jobs/pbt-m0-i0") == 1 and cluster.created("jobs/pbt-m2-i0") == 1
        complete(cluster, "pbt-m2-i0", jobs(cluster)["pbt-m2-i0"])
        complete(cluster, "pbt-m1-i0-r1", retry)
        _every_interval_until_the_finish_job(cluster)
        # Member 1 (worst) copied member 0 (best): its next Job starts from m0's checkpoint.
        copied = [j for n, j in jobs(cluster).items() if n.startswith("pbt-m1-i1")]
        assert copied and f"{folder.as_uri()}/members/m0/i0" in args(copied[0])
        exploits = [e for e in cluster.events("pbt", "PBTPopulation") if e[1] == "Exploit"]
        assert any("member 1 (-0.3000) copied member 0 (0.4000)" in e[2] for e in exploits)
        retried = [e for e in cluster.events("pbt", "PBTPopulation") if e[1] == "IntervalRetried"]
        assert len(retried) == 1 and "OOMKilled" in retried[0][2]
        _the_finish_job_summarises(cluster, folder, len(exploits))
        events = lambda: [e[1] for e in cluster.events("pbt", "PBTPopulation")]  # noqa: E731
        wait_for(lambda: "PopulationSucceeded" in events(), what="the Event")
        assert all(cluster.created(f"jobs/{n}") == 1 for n in jobs(cluster))
        cluster.settle()
    assert second.exception is None
