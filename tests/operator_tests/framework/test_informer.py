"""Children from the watches' indexes (:mod:`stevie_operator.framework.informer`): a
reconcile makes no LIST for them, and a child it has just created counts as present until
the index has it (expectations), so it is not created twice."""

from __future__ import annotations

import asyncio
from typing import Any

from operator_tests.framework.test_controller import Ctx, Listing, Toy

from stevie_operator.framework.controller import drive, owned_children
from stevie_operator.framework.informer import (
    EXPECTATION_SECONDS,
    ChildIndex,
    IndexKey,
    index_key,
    owner_key,
)
from stevie_operator.framework.pods import owner_labels

KEY = owner_key("default", "TrainingRun", "run")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def job(name: str, uid: str = "u1", owner: str = "run") -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "labels": owner_labels("TrainingRun", owner)}}


def test_index_keys_come_from_the_owner_labels() -> None:
    labels = owner_labels("HPOStudy", "Study.One")
    assert index_key("ns", labels) == owner_key("ns", "HPOStudy", "Study.One")
    assert index_key("ns", {"app": "other"}) is None
    assert index_key(None, labels) == ("default", "HPOStudy", labels["stevie.dev/name"])


def test_children_are_the_indexed_objects_by_name_as_copies() -> None:
    stored = job("run-j0")
    index = ChildIndex({"jobs": {KEY: [stored]}, "pods": {}})
    found = index.children("jobs", KEY)
    assert found == {"run-j0": stored}
    found["run-j0"]["extra"] = 1
    assert "extra" not in stored  # the index's object is never changed by a reconcile
    assert index.children("jobs", owner_key("default", "TrainingRun", "other")) == {}
    assert index.children("pods", KEY) == {}
    assert index.covers("jobs") and not index.covers("deployments")


def test_a_created_child_counts_until_the_index_has_it_or_it_expires() -> None:
    clock = Clock()
    stores: dict[str, dict[IndexKey, list[dict[str, Any]]]] = {"jobs": {}}
    index = ChildIndex(stores, clock=clock)
    index.expect("jobs", "default", job("run-j0", uid="new"))
    assert set(index.children("jobs", KEY)) == {"run-j0"}
    assert index.children("jobs", owner_key("default", "TrainingRun", "other")) == {}
    # The watch delivers it (now with a status): the index's version wins from then on.
    stores["jobs"][KEY] = [{**job("run-j0", uid="new"), "status": {"active": 1}}]
    assert index.children("jobs", KEY)["run-j0"]["status"] == {"active": 1}
    # Deleted afterwards (TTL): gone, not resurrected by the old expectation.
    stores["jobs"][KEY] = []
    assert index.children("jobs", KEY) == {}
    # An expectation the watch never confirms lapses after EXPECTATION_SECONDS.
    index.expect("jobs", "default", job("run-j1"))
    clock.now += EXPECTATION_SECONDS - 1
    assert set(index.children("jobs", KEY)) == {"run-j1"}
    clock.now += 2
    assert index.children("jobs", KEY) == {}


def test_forgetting_a_resource_drops_its_expectations() -> None:
    index = ChildIndex({"jobs": {}})
    index.expect("jobs", "default", job("run-j0"))
    index.expect("jobs", "default", job("other-j0", owner="other"))
    index.forget(KEY)
    assert index.children("jobs", KEY) == {}
    assert set(index.children("jobs", owner_key("default", "TrainingRun", "other"))) == {"other-j0"}


def test_a_reconcile_with_indexes_lists_nothing_and_creates_each_child_once() -> None:
    """Two reconciles before the watch delivers the first one's Jobs: the second sees them
    through the expectations and creates nothing; no LIST of Jobs or pods either time (a
    Job with no pod yet still has its Events read: they say why a pod is not created)."""
    api = Listing([])
    ctx = Ctx(api)
    ctx.children = ChildIndex({"jobs": {}, "pods": {}})
    api.add("stevie.dev/v1alpha1", "trainingruns", {"metadata": {"name": "run"}})
    kind = Toy(wanted=2)
    asyncio.run(drive(ctx, kind, "default", "run"))
    asyncio.run(drive(ctx, kind, "default", "run"))
    assert [e for e in api.log if e.startswith("create")] == ["create run-j0", "create run-j1"]
    assert [p for p in api.lists if "/events?" not in p] == []
    owned = asyncio.run(owned_children(ctx, kind, "default", "run"))
    assert set(owned.jobs) == {"run-j0", "run-j1"}
