"""The in-memory API behind ``stevie run``: the same paths as the API server, labels,
409s, merge patches, Secrets, and Jobs whose status is their process's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stevie_operator.framework.kube import object_path, parse_path
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher


class Started(LocalLauncher):
    def __init__(self) -> None:
        super().__init__(fork=False)
        self.started: list[tuple[str, str | None]] = []

    def start(self, job: Any, secrets: Any, log: Any) -> None:
        self.started.append((job["metadata"]["name"], secrets("db", "url")))

    def status(self, name: str) -> dict[str, Any] | None:
        return {"active": 1}


def test_paths_round_trip() -> None:
    for args in (("v1", "secrets", "ns", "s"), ("batch/v1", "jobs", "ns"),
                 ("stevie.dev/v1alpha1", "trainingruns", "team-a", "run", "status")):  # fmt: skip
        p = parse_path(object_path(*args))
        assert (p.api_version, p.plural, p.namespace, p.name, p.subresource)[: len(args)] == (
            args[0], args[1], args[2], *args[3:]
        )  # fmt: skip
    with pytest.raises(ValueError, match="not a namespaced object path"):
        parse_path("/apis/batch/v1/jobs")


def test_objects_labels_conflicts_patches_and_secrets() -> None:
    launcher = Started()
    cluster = LocalCluster(launcher, lambda job: None)
    cluster.add_secret("ns", "db", {"url": "postgresql://x"})
    run = cluster.add(
        "stevie.dev/v1alpha1", "trainingruns", {"metadata": {"name": "r", "namespace": "ns"}}
    )
    assert run["metadata"]["uid"] and run["metadata"]["generation"] == 1

    async def calls() -> None:
        jobs = object_path("batch/v1", "jobs", "ns")
        body = {"metadata": {"name": "r-train", "labels": {"stevie.dev/kind": "TrainingRun"}}}
        assert await cluster.create(jobs, body) is not None
        assert await cluster.create(jobs, body) is None  # 409
        assert launcher.started == [("r-train", "postgresql://x")]
        found = await cluster.list(jobs, {"stevie.dev/kind": "TrainingRun"})
        assert [j["metadata"]["name"] for j in found] == ["r-train"]
        assert found[0]["status"] == {"active": 1}  # the process's status
        assert await cluster.list(jobs, {"stevie.dev/kind": "HPOStudy"}) == []
        path = object_path("stevie.dev/v1alpha1", "trainingruns", "ns", "r", "status")
        await cluster.merge_patch(path, {"status": {"phase": "Running", "a": {"b": 1, "c": 2}}})
        await cluster.merge_patch(path, {"status": {"a": {"b": None}, "message": "hi"}})
        got = await cluster.get(object_path("stevie.dev/v1alpha1", "trainingruns", "ns", "r"))
        assert got is not None
        assert got["status"] == {"phase": "Running", "a": {"c": 2}, "message": "hi"}
        assert await cluster.get(object_path("v1", "secrets", "ns", "nope")) is None
        assert await cluster.merge_patch(object_path("v1", "secrets", "ns", "nope"), {}) is None

    asyncio.run(calls())
    assert cluster.secret_value("ns", "db", "url") == "postgresql://x"
    assert cluster.secret_value("ns", "db", "other") is None
