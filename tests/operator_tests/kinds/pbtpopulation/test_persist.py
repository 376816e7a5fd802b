"""PBTPopulation's persist writes population.json only when the state changed: a reconcile
that changes nothing (a timer tick, an event of a running Job) costs no fsync or S3 PUT;
and an unwritable storage root makes the population Degraded, with no Job, until it heals."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.controller import drive
from stevie_operator.kinds.pbtpopulation import control
from stevie_operator.kinds.pbtpopulation.controller import PBTPopulationKind, read_population
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher
from stevie_operator.local.runner import LocalContext
from support.specs import pbt_population

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DONE = {"succeeded": 1, "startTime": "2026-01-01T00:00:00Z",
        "completionTime": "2026-01-01T00:00:10Z",
        "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip


def reconcile(kind: PBTPopulationKind, body: dict[str, Any], config: OperatorConfig,
              jobs: dict[str, dict[str, Any]]) -> str:  # fmt: skip
    """Observe the folder, plan, persist (as drive() does); the population folder."""
    folder = kind.location(body, config)
    assert folder is not None
    observed = read_population(folder, jobs, T0)
    plan = kind.plan(body, observed, config)
    assert plan.work is not None
    kind.persist(None, observed, plan)  # type: ignore[arg-type]  # persist needs no context
    return folder


def test_the_state_is_written_when_it_changes_and_only_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[int] = []
    real = control.save_state

    def counted(*args: Any) -> None:
        saved.append(1)
        real(*args)

    monkeypatch.setattr("stevie_operator.kinds.pbtpopulation.controller.save_state", counted)
    config = OperatorConfig(storage_uri=(tmp_path / "data").as_uri())
    body = pbt_population("pop", stopping={"maxIntervals": 2})
    body["metadata"] |= {"namespace": "ns", "uid": "u1", "generation": 1}
    kind = PBTPopulationKind()

    folder = reconcile(kind, body, config, {})  # a new population: its state is written
    assert len(saved) == 1
    path = Path(folder.removeprefix("file://")) / "population.json"
    state = json.loads(path.read_text())
    running = [m["index"] for m in state["members"] if m["status"] == "running"]
    assert running == [0, 1]  # parallelism 2

    jobs = {f"pop-m{m}-i0": {"metadata": {"name": f"pop-m{m}-i0"}, "status": {"active": 1}}
            for m in running}  # fmt: skip
    for _ in range(3):  # the Jobs run: nothing changes, nothing is written
        reconcile(kind, body, config, jobs)
    assert len(saved) == 1 and json.loads(path.read_text()) == state

    out = Path(folder.removeprefix("file://")) / "members" / "m0" / "i0"
    out.mkdir(parents=True)
    result = {"status": "succeeded", "fitness": 0.5, "checkpoint": out.as_uri()}
    (out / "result.json").write_text(json.dumps(result))
    jobs["pop-m0-i0"]["status"] = DONE
    reconcile(kind, body, config, jobs)  # member 0's interval ended: the state moves
    assert len(saved) == 2
    member = json.loads(path.read_text())["members"][0]
    assert member["intervals_done"] == 1 and member["fitness_history"] == [0.5]


class Quiet(LocalLauncher):
    """Jobs that never start (this test is about what is created)."""

    def start(self, job: Any, secrets: Any, log: Any) -> None:
        pass


def test_an_unwritable_storage_root_degrades_the_population_and_creates_no_job(
    tmp_path: Path,
) -> None:
    """The storage root lies under a regular file (NotADirectoryError even for root, whom a
    read-only chmod does not stop): saving the state fails, so no Job is created, the status
    says so with one Warning; once the path is usable, the next reconcile saves, creates the
    members' Jobs and clears Degraded."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder\n")
    config = OperatorConfig(storage_uri=(blocker / "sub").as_uri())
    cluster = LocalCluster(Quiet(), lambda job: None)
    said: list[str] = []
    ctx = LocalContext(config, cluster, said.append)
    body = pbt_population("pop")
    body["metadata"]["namespace"] = "ns"
    cluster.add("stevie.dev/v1alpha1", "pbtpopulations", body)
    kind = PBTPopulationKind()

    def jobs() -> list[str]:
        return sorted(k[3] for k in cluster.objects if k[:3] == ("batch/v1", "jobs", "ns"))

    def status() -> dict[str, Any]:
        found = cluster.objects[("stevie.dev/v1alpha1", "pbtpopulations", "ns", "pop")]
        return dict(found.get("status") or {})

    for _ in range(2):
        asyncio.run(drive(ctx, kind, "ns", "pop"))
    assert jobs() == []
    degraded = next(c for c in status()["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "StorageUnavailable")
    assert "a parent of this path is not a folder" in degraded["message"]
    assert str(blocker / "sub") in degraded["message"]
    assert status()["message"] == degraded["message"]
    assert [line.split(":")[0] for line in said] == ["Warning StorageUnavailable"]

    blocker.unlink()  # the volume is writable again
    asyncio.run(drive(ctx, kind, "ns", "pop"))
    assert jobs() == ["pop-m0-i0", "pop-m1-i0"]  # parallelism 2
    degraded = next(c for c in status()["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False"
    assert (blocker / "sub").is_dir()
