"""A team in a second namespace ("research") with its own S3 endpoint and credentials Secret,
and HPOStudies of one name in two namespaces sharing one PostgreSQL: the real operator
(kopf) against kmock, with a kubelet that runs the Jobs as processes.

The research store (:class:`support.s3store.AuthS3`) checks credentials and is the only one
holding the research bucket; the operator's own environment points at the session's moto
server with other keys. So a run that succeeds with its metrics in the status proves the
operator read its artifacts with the resource's endpoint and Secret, as its pods did.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from support.kmock import Cluster, conditions, operator, wait_for
from support.namespaced_kubelet import NamespacedKubelet, jobs_path
from support.postgres import postgres_database
from support.s3store import AuthS3
from support.specs import hpo_study, template

API = "/apis/stevie.dev/v1alpha1/namespaces"
S3_SECRET = "research-s3"


@pytest.fixture(scope="module")
def research() -> Iterator[AuthS3]:
    with AuthS3() as store:
        yield store


def _path(namespace: str, plural: str, name: str = "") -> str:
    return f"{API}/{namespace}/{plural}" + (f"/{name}" if name else "")


def _secrets(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


def _research_storage(store: AuthS3) -> dict[str, Any]:
    return {"uri": store.uri("stevie"), "s3EndpointUrl": store.endpoint_url,
            "s3SecretRef": S3_SECRET}  # fmt: skip


def _status(cluster: Cluster, path: str, check: Callable[[dict[str, Any]], bool]) -> Any:
    def fetch() -> dict[str, Any] | None:
        found = (cluster.api("GET", path) or {}).get("status") or {}
        return found if found and check(found) else None

    return fetch


def _finished(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed")


def _warnings(cluster: Cluster, namespace: str, name: str) -> list[str]:
    items = (cluster.api("GET", f"/api/v1/namespaces/{namespace}/events") or {}).get("items", [])
    return [e["reason"] for e in items
            if e["type"] == "Warning" and e["involvedObject"]["name"] == name]  # fmt: skip


@pytest.mark.slow
def test_training_run_in_another_namespace_uses_its_own_s3_endpoint_and_secret(
    cluster: Cluster, s3_server: Any, research: AuthS3, tmp_path: Path
) -> None:
    doc = {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
           "metadata": {"name": "tenant-run", "namespace": "research"},
           "spec": template(storage=_research_storage(research))}  # fmt: skip
    path = _path("research", "trainingruns", "tenant-run")
    with NamespacedKubelet(cluster, tmp_path / "logs", ["research"]), operator() as runner:
        uid = cluster.api("POST", _path("research", "trainingruns"), doc)["metadata"]["uid"]
        # No Secret yet: Degraded, saying which, and nothing created.
        missing = _status(cluster, path, lambda s: conditions(s)["Degraded"][0] == "True")
        status = wait_for(missing, what="Degraded for the missing Secret")
        assert conditions(status)["Degraded"] == ("True", "StorageSecretNotFound")
        expected = f"Secret research/{S3_SECRET} (spec.storage.s3SecretRef) not found"
        assert expected in status["message"]
        assert (cluster.api("GET", jobs_path("research")) or {}).get("items") == []
        # The Secret appears: the timer's next reconcile creates the Job, which trains.
        cluster.api("POST", _secrets("research"), research.secret(S3_SECRET))
        status = wait_for(_status(cluster, path, _finished), timeout=240, what="the run's end")
        cluster.settle()
    assert runner.exception is None
    assert status["phase"] == "Succeeded", status
    assert isinstance(status["validation"]["sharpe"], float)  # result.json, read by the operator
    assert status["progress"]["percent"] == 100
    folder = f"stevie/research/trainingruns/tenant-run/{uid}"
    assert status["artifacts"]["uri"] == research.uri(folder)
    assert conditions(status)["Degraded"] == ("False", "AsExpected")
    assert _warnings(cluster, "research", "tenant-run") == ["StorageSecretNotFound"]
    written = research.keys(folder)
    assert f"{folder}/result.json" in written and f"{folder}/model.zip" in written
    # Nothing went to the operator's own bucket.
    assert "Contents" not in s3_server.client.list_objects_v2(Bucket=s3_server.bucket)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_database("tenant-pw") as url:
        yield url


def _study(namespace: str, storage: dict[str, Any] | None) -> dict[str, Any]:
    doc = hpo_study("shared-name", maxTrials=2, parallelism=2, significance={"enabled": False},
                    storage={"urlSecretRef": "hpo-db"})  # fmt: skip
    doc["metadata"]["namespace"] = namespace
    if storage is not None:
        doc["spec"]["template"]["storage"] = storage
    return doc


@pytest.mark.slow
def test_same_named_studies_in_two_namespaces_keep_their_own_trials_in_one_postgres(
    cluster: Cluster, s3_server: Any, research: AuthS3, postgres_url: str, tmp_path: Path
) -> None:
    db = {"metadata": {"name": "hpo-db"}, "data": {"url": base64.b64encode(
        postgres_url.encode()).decode()}}  # fmt: skip
    cluster.api("POST", _secrets("research"), research.secret(S3_SECRET))
    uids: dict[str, str] = {}
    kubelet = NamespacedKubelet(cluster, tmp_path / "logs", ["default", "research"])
    with kubelet, operator() as runner:
        for namespace, storage in (("default", None), ("research", _research_storage(research))):
            cluster.api("POST", _secrets(namespace), db)
            study = _study(namespace, storage)
            created = cluster.api("POST", _path(namespace, "hpostudies"), study)
            uids[namespace] = created["metadata"]["uid"]
        done = {}
        for ns in uids:
            finished = _status(cluster, _path(ns, "hpostudies", "shared-name"), _finished)
            done[ns] = wait_for(finished, timeout=400, what=f"the study in {ns}")
        cluster.settle()
    assert runner.exception is None
    for namespace, status in done.items():
        assert status["phase"] == "Succeeded", (namespace, status)
        assert status["trials"]["completed"] + status["trials"]["pruned"] == 2, status
        assert status["trials"]["failed"] == 0
    # One study per object in the shared database, each with its own two trials; none under
    # the bare name, which both would have shared.
    names = sorted(optuna.get_all_study_names(storage=postgres_url))
    assert names == sorted(f"{ns}.shared-name.{uid}" for ns, uid in uids.items())
    for name in names:
        trials = optuna.load_study(study_name=name, storage=postgres_url).get_trials()
        assert sorted(t.number for t in trials) == [0, 1]
        assert all(t.state.is_finished() for t in trials)
    # The research study's outputs are in the research bucket, its trials' too.
    folder = f"stevie/research/hpostudies/shared-name/{uids['research']}"
    written = research.keys(folder)
    assert f"{folder}/study.json" in written and f"{folder}/optimization_results.json" in written
    assert any(key.startswith(f"{folder}/shared-name-t1/") for key in written)
