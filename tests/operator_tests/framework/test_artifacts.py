"""Artifacts keyed by the object: ``<root>/<namespace>/<plural>/<name>/<uid>``, the same
helper for every kind; ``stevie run``'s deterministic uids."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stevie_operator.framework.artifacts import (
    artifact_root,
    local_uid,
    object_uid,
    resource_root,
)
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher
from stevie_operator.registry import KINDS
from support.paths import example
from support.specs import hpo_study, pbt_population

A, B = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def test_the_folder_is_keyed_by_the_uid() -> None:
    assert artifact_root("s3://b/root", "team", "trainingruns", "quick", A) == (
        f"s3://b/root/team/trainingruns/quick/{A}"
    )
    assert artifact_root("file:///data", "ns", "hpostudies", "h", None) == (
        "file:///data/ns/hpostudies/h"  # never seen by an API server: no uid to key by
    )


def test_local_uids_are_deterministic_and_distinct() -> None:
    uid = local_uid("TrainingRun", "default", "quick")
    assert uid == local_uid("TrainingRun", "default", "quick")
    others = {local_uid("HPOStudy", "default", "quick"), local_uid("TrainingRun", "ns", "quick"),
              local_uid("TrainingRun", "default", "quick2")}  # fmt: skip
    assert uid not in others and len(others) == 3
    assert object_uid("TrainingRun", "default", "quick", A, local=True) == A  # its own first
    assert object_uid("TrainingRun", "default", "quick", None, local=True) == uid
    assert object_uid("TrainingRun", "default", "quick", None, local=False) is None


def test_the_local_cluster_gives_resources_their_local_uid_and_jobs_fresh_ones() -> None:
    cluster = LocalCluster(LocalLauncher(), lambda job: None)
    run = {"kind": "TrainingRun", "metadata": {"name": "quick"}}
    added = cluster.add("stevie.dev/v1alpha1", "trainingruns", run)
    assert added["metadata"]["uid"] == local_uid("TrainingRun", "default", "quick")
    again = LocalCluster(LocalLauncher(), lambda job: None)  # the next `stevie run`
    assert (
        again.add("stevie.dev/v1alpha1", "trainingruns", run)["metadata"]["uid"]
        == (added["metadata"]["uid"])
    )
    jobs = [cluster.add("batch/v1", "jobs", {"metadata": {"name": f"j{i}"}}) for i in (0, 1)]
    assert jobs[0]["metadata"]["uid"] != jobs[1]["metadata"]["uid"]


def _bodies() -> dict[str, dict[str, Any]]:
    members = [{"trainingRun": "a"}, {"uri": "file:///m/model.zip"}]
    ensemble = {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "Ensemble",
        "metadata": {"name": "ens"},
        "spec": {"members": members},
    }
    return {
        "TrainingRun": example("trainingrun-quickstart.yaml"),
        "HPOStudy": hpo_study("h"),
        "PBTPopulation": pbt_population("p"),
        "Ensemble": ensemble,
    }


@pytest.mark.parametrize("kind", ["TrainingRun", "HPOStudy", "PBTPopulation", "Ensemble"])
def test_every_kind_keys_its_folder_by_the_object(kind: str) -> None:
    """Two objects of one name (one deleted, the other created after it) never share a
    folder; each kind's folder is the one helper's."""
    config = OperatorConfig(storage_uri="file:///data")
    body = _bodies()[kind]
    first, second = copy.deepcopy(body), copy.deepcopy(body)
    name = body["metadata"]["name"]
    first["metadata"] |= {"namespace": "team", "uid": A}
    second["metadata"] |= {"namespace": "team", "uid": B}
    plural = KINDS[kind].info.plural
    assert KINDS[kind].location(first, config) == f"file:///data/team/{plural}/{name}/{A}"
    assert KINDS[kind].location(second, config) == f"file:///data/team/{plural}/{name}/{B}"
    local = OperatorConfig(storage_uri="file:///runs", local=True)
    uid = local_uid(kind, "default", name)
    assert KINDS[kind].location(body, local) == f"file:///runs/default/{plural}/{name}/{uid}"


def test_resource_root_takes_the_plural_from_the_kind() -> None:
    from stevie_api.common import ObjectMeta

    meta = ObjectMeta(name="h", uid=A)
    assert resource_root("file:///d", "ns", "HPOStudy", meta, local=False) == (
        f"file:///d/ns/hpostudies/h/{A}"
    )
