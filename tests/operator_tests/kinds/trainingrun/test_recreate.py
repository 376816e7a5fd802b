"""Delete a TrainingRun and create it again under the same name: it starts fresh.

kmock does no garbage collection, so the old object's Job stays after the delete: exactly
the race a real cluster has (the garbage collector deletes it asynchronously). The new
object must neither report the old outcome ("already finished") nor adopt the old Job; it
waits, Degraded, until the old Job is gone, then trains in its own folder
(``<name>/<uid>``), with a Job it owns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stevie_trainer.common import storage
from support.jobs import done
from support.kmock import JOBS, Cluster, conditions, operator, wait_for
from support.paths import example

TR = "/apis/stevie.dev/v1alpha1/namespaces/default/trainingruns"
DONE = done()


def training_run(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = example("trainingrun-quickstart.yaml")
    doc["metadata"] = {"name": name, "namespace": "default"}
    return doc


def status_of(cluster: Cluster, name: str) -> dict[str, Any]:
    return (cluster.api("GET", f"{TR}/{name}") or {}).get("status") or {}


def gone(cluster: Cluster, name: str) -> bool:
    return cluster.api("GET", f"{TR}/{name}") is None


def _finish(cluster: Cluster, run_dir: Path) -> None:
    """The first run's trainer writes its result and its Job completes."""
    result = {"status": "succeeded", "timesteps": 20480, "validation": {"sharpe": 1.25}}
    storage.write_text(storage.join(run_dir.as_uri(), "result.json"), json.dumps(result))
    cluster.api("PATCH", f"{JOBS}/again-train/status", {"status": DONE})
    wait_for(lambda: status_of(cluster, "again").get("phase") == "Succeeded", what="Succeeded")


def _waiting_for_the_old_job(cluster: Cluster, old_uid: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any] | None:
        status = status_of(cluster, "again")
        found = conditions(status).get("Degraded") if status.get("conditions") else None
        return status if found == ("True", "ForeignChild") else None

    status = wait_for(fetch, what="Degraded: the old Job is in the way")
    assert status["phase"] == "Pending"  # not "already finished"
    assert "result" not in status and "validation" not in status
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["message"] == (
        f"Job again-train belongs to a previous TrainingRun of this name (uid {old_uid}); "
        "waiting for Kubernetes to delete it (garbage collection)"
    )
    return status


def test_delete_and_recreate_with_the_same_name_starts_fresh(
    cluster: Cluster, tmp_path: Path
) -> None:
    runs = tmp_path / "data" / "default" / "trainingruns" / "again"
    with operator() as runner:
        first = cluster.api("POST", TR, training_run("again"))
        old_uid = first["metadata"]["uid"]
        wait_for(lambda: cluster.api("GET", f"{JOBS}/again-train"), what="the first Job")
        _finish(cluster, runs / old_uid)

        cluster.api("DELETE", f"{TR}/again")
        wait_for(lambda: gone(cluster, "again"), what="the first TrainingRun deleted")
        assert cluster.api("GET", f"{JOBS}/again-train") is not None  # no GC in kmock

        second = cluster.api("POST", TR, training_run("again"))
        new_uid = second["metadata"]["uid"]
        assert new_uid != old_uid
        _waiting_for_the_old_job(cluster, old_uid)
        warned = [e for e in cluster.events("again") if e[1] == "ForeignChild"]
        assert warned and warned[0][0] == "Warning"
        assert cluster.created("jobs/again-train") == 1  # the old Job was not adopted

        cluster.api("DELETE", f"{JOBS}/again-train")  # garbage collection, at last

        def new_job() -> dict[str, Any] | None:
            found = cluster.api("GET", f"{JOBS}/again-train")
            refs = (found or {}).get("metadata", {}).get("ownerReferences") or [{}]
            return found if refs[0].get("uid") == new_uid else None

        job = wait_for(new_job, what="a Job of the new TrainingRun")
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][-2:] == ["--out", (runs / new_uid).as_uri()]

        def settled() -> dict[str, Any] | None:
            found = status_of(cluster, "again")
            ok = conditions(found).get("Degraded") == ("False", "AsExpected")
            return found if ok else None

        status = wait_for(settled, what="no longer Degraded")
        assert status["phase"] == "Pending" and status["jobName"] == "again-train"
        assert not (runs / new_uid / "result.json").exists()
        assert (runs / old_uid / "result.json").exists()  # the old run's artifacts stay
        cluster.settle()
    assert runner.exception is None
    assert cluster.created("jobs/again-train") == 2
