"""A population whose state cannot be read (S3 down, the volume gone: population.json raises
on read) is Degraded StorageUnavailable with one Warning and nothing created, instead of a
reconcile that raises (kopf would log a traceback, back its timer off for 60 s, drop child
events and leave the status silent); once the state reads again Degraded clears, and nothing
was decided twice. tests/operator_tests/chaos/test_s3_outage.py does it with moto stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.controller import drive
from stevie_operator.kinds.pbtpopulation.controller import PBTPopulationKind
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher
from stevie_operator.local.runner import LocalContext
from support.specs import pbt_population

KEY = ("stevie.dev/v1alpha1", "pbtpopulations", "ns", "pop")


class Quiet(LocalLauncher):
    """Jobs that never start (this test is about what is read and created)."""

    def start(self, job: Any, secrets: Any, log: Any) -> None:
        pass


def degraded(cluster: LocalCluster) -> dict[str, Any]:
    status = cluster.objects[KEY].get("status") or {}
    return next(c for c in status["conditions"] if c["type"] == "Degraded")


def test_an_unreadable_state_degrades_the_population_until_it_reads_again(
    tmp_path: Path,
) -> None:
    cluster = LocalCluster(Quiet(), lambda job: None)
    said: list[str] = []
    ctx = LocalContext(OperatorConfig(storage_uri=tmp_path.as_uri()), cluster, said.append)
    body = pbt_population("pop")
    body["metadata"]["namespace"] = "ns"
    cluster.add("stevie.dev/v1alpha1", "pbtpopulations", body)
    kind = PBTPopulationKind()
    asyncio.run(drive(ctx, kind, "ns", "pop"))  # saves the state, creates 2 Jobs
    (state,) = tmp_path.rglob("population.json")
    saved = state.read_text()
    jobs = {k for k in cluster.objects if k[1] == "jobs"}
    assert len(jobs) == 2

    state.unlink()
    state.mkdir()  # exists, cannot be read: a read error, not a new population
    for _ in range(2):
        asyncio.run(drive(ctx, kind, "ns", "pop"))
    condition = degraded(cluster)
    assert (condition["status"], condition["reason"]) == ("True", "StorageUnavailable")
    assert condition["message"].startswith("cannot read this PBTPopulation's state")
    assert str(state) in condition["message"]
    assert [line.split(":")[0] for line in said if "Storage" in line] == [
        "Warning StorageUnavailable"
    ]  # once, not every retry
    assert {k for k in cluster.objects if k[1] == "jobs"} == jobs

    state.rmdir()
    state.write_text(saved)
    asyncio.run(drive(ctx, kind, "ns", "pop"))
    assert degraded(cluster)["status"] == "False"
    assert {k for k in cluster.objects if k[1] == "jobs"} == jobs  # nothing decided again
    assert state.read_text() == saved
