"""drive(): the one reconcile loop, with a small Kind and an in-memory API. The order of
its steps (persist before create, patch, events), re-planning after persist, children that
already exist, and objects that are gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, ParamSpec, TypeVar

from stevie_api.kinds import KINDS, KindInfo
from stevie_operator.framework.children import Owned, pod_problem
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.controller import (
    MAX_EVENT_READS,
    MAX_PASSES,
    drive,
    owned_children,
)
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import KubeAPI, object_path
from stevie_operator.framework.metrics import KindMetrics, OperatorMetrics
from stevie_operator.framework.plan import Child, Plan
from stevie_operator.framework.pods import Owner, owner_labels
from stevie_operator.framework.status import Event, merge_patch
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher
from stevie_trainer.common.storage import StorageError

P = ParamSpec("P")
T = TypeVar("T")
RUNS = object_path("stevie.dev/v1alpha1", "trainingruns", "default")
JOBS = object_path("batch/v1", "jobs", "default")


class Quiet(LocalLauncher):
    """Jobs that never start (these tests are about the API calls)."""

    def start(self, job: Any, secrets: Any, log: Any) -> None:
        pass


class Recorded(LocalCluster):
    """The in-memory API, recording every write."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(Quiet(), lambda job: None)
        self.log = log

    async def create(self, path: str, body: Any) -> dict[str, Any] | None:
        created = await super().create(path, body)
        self.log.append(f"create {body['metadata']['name']}" + ("" if created else " (409)"))
        return created

    async def merge_patch(self, path: str, patch: Any) -> dict[str, Any] | None:
        self.log.append(f"patch {sorted(patch['status'])}")
        return await super().merge_patch(path, patch)


class Ctx(Context):
    def __init__(self, api: Recorded) -> None:
        super().__init__(OperatorConfig(), OperatorMetrics())
        self._api = api
        self.events: list[Event] = []

    def api(self) -> KubeAPI:
        return self._api

    def post(self, body: Body, events: Iterable[Event]) -> None:
        self.events.extend(events)

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return fn(*args, **kwargs)


@dataclass
class Seen:
    jobs: list[str]
    saved: int


@dataclass
class Toy(Kind[Seen, int, KindMetrics]):
    """Wants ``wanted`` Jobs; saves a counter before creating them; asks to be planned
    again ``replans`` times after saving."""

    info: ClassVar[KindInfo] = KINDS["TrainingRun"]
    wanted: int = 2
    replans: int = 0
    log: list[str] = field(default_factory=list)
    saved: int = 0
    recorded: list[str | None] = field(default_factory=list)
    broken: Exception | None = None

    async def observe(self, ctx: Context, body: Body, owned: Owned) -> Seen:
        self.log.append("observe")
        return Seen(sorted(owned.jobs), self.saved)

    def plan(self, body: Body, observed: Seen, config: OperatorConfig) -> Plan[int]:
        name = body["metadata"]["name"]
        labels = owner_labels(self.name, name)
        refs = Owner(self.name, name, body["metadata"].get("uid")).reference()
        children = tuple(
            Child(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": job, "labels": labels, "ownerReferences": refs},
                },
                Event("Normal", "Created", job),
            )
            for job in (f"{name}-j{i}" for i in range(self.wanted))
            if job not in observed.jobs
        )
        phase = "Running" if children or observed.jobs else "Pending"
        status = {"phase": phase, "message": f"saved {observed.saved}"}
        patch = merge_patch(body.get("status") or {}, status)
        return Plan(status, patch, phase, (Event("Normal", "Planned", phase),), children, 1)

    def persist(self, ctx: Context, observed: Seen, plan: Plan[int]) -> bool:
        self.log.append("persist")
        if self.broken is not None:
            raise self.broken
        self.saved += plan.work or 0
        again = self.replans > 0
        self.replans -= 1
        return again

    def record(self, metrics: OperatorMetrics, own: KindMetrics, namespace: str, name: str,
               plan: Plan[int], observed: Seen) -> None:  # fmt: skip
        self.recorded.append(plan.phase)

    def references(self, body: Body) -> set[tuple[str, str]]:
        return {("HPOStudy", "other")}


def world(**toy: Any) -> tuple[Toy, Ctx, list[str]]:
    log: list[str] = []
    api = Recorded(log)
    api.add("stevie.dev/v1alpha1", "trainingruns", {"metadata": {"name": "run"}})
    kind = Toy(log=log, **toy)
    return kind, Ctx(api), log


def test_persist_comes_before_creating_then_status_and_events() -> None:
    kind, ctx, log = world()
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert plan is not None and plan.phase == "Running"
    assert log == ["observe", "persist", "create run-j0", "create run-j1",
                   "patch ['message', 'phase']"]  # fmt: skip
    assert [e.reason for e in ctx.events] == ["Created", "Created", "Planned"]
    assert kind.recorded == ["Running"]
    assert ctx.references.referrers("HPOStudy", "default", "other") == [
        ("TrainingRun", "default", "run")
    ]
    assert (
        ctx.metrics.registry.get_sample_value(
            "stevie_operator_resources", {"kind": "TrainingRun", "phase": "Running"}
        )
        == 1
    )


def test_a_persist_that_changed_the_world_is_observed_and_planned_again() -> None:
    kind, ctx, log = world(replans=1)
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert log[:4] == ["observe", "persist", "observe", "persist"]
    assert plan is not None and plan.status["message"] == "saved 1"  # the second plan's
    kind, ctx, log = world(replans=100)
    asyncio.run(drive(ctx, kind, "default", "run"))
    assert log.count("persist") == MAX_PASSES  # bounded


def test_children_that_exist_are_not_created_again_and_a_409_posts_no_event() -> None:
    kind, ctx, log = world()
    asyncio.run(drive(ctx, kind, "default", "run"))
    log.clear()
    ctx.events.clear()
    asyncio.run(drive(ctx, kind, "default", "run"))
    assert not any(entry.startswith("create") for entry in log)  # listed: none planned
    # A Job of that name exists but is not listed as the run's (no labels): it is the run's
    # (its controller is the run), so the 409 adopts it, with no Event and no problem.
    api = ctx.api()
    assert isinstance(api, Recorded)
    run = api.objects[("stevie.dev/v1alpha1", "trainingruns", "default", "run")]
    ours = Owner("TrainingRun", "run", run["metadata"]["uid"]).reference()
    api.add("batch/v1", "jobs", {"metadata": {"name": "run-j2", "ownerReferences": ours}})
    kind.wanted = 3
    log.clear()
    ctx.events.clear()
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert "create run-j2 (409)" in log
    assert [e.reason for e in ctx.events] == ["Planned"]
    assert plan is not None and "conditions" not in plan.status


def _degraded(status: dict[str, Any]) -> tuple[str, str, str]:
    found = next(c for c in status["conditions"] if c["type"] == "Degraded")
    return found["status"], found["reason"], found["message"]


def test_a_409_on_a_job_with_no_owner_is_not_adopted() -> None:
    """An orphaned Job (kubectl delete --cascade=orphan) or one made by hand: nothing says it
    ran this spec. Degraded says so, once as an Event; the Job's status is never read."""
    kind, ctx, log = world(wanted=1)
    api = ctx.api()
    assert isinstance(api, Recorded)
    api.add("batch/v1", "jobs", {"metadata": {"name": "run-j0"}})
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert "create run-j0 (409)" in log
    assert plan is not None
    state, reason, message = _degraded(plan.status)
    assert (state, reason) == ("True", "ForeignChild")
    assert message.startswith("Job run-j0 exists but no TrainingRun owns it")
    assert plan.status["message"] == message
    assert [e.reason for e in ctx.events] == ["Planned", "ForeignChild"]
    stored = api.objects[("stevie.dev/v1alpha1", "trainingruns", "default", "run")]["status"]
    assert _degraded(stored) == (state, reason, message)
    ctx.events.clear()
    asyncio.run(drive(ctx, kind, "default", "run"))
    assert [e.reason for e in ctx.events] == ["Planned"]  # the Warning once, not every time


def test_a_job_of_a_previous_object_of_the_name_is_not_observed_nor_adopted() -> None:
    """Delete a TrainingRun and create it again: the old object's Job (same name, same
    labels) lingers until garbage collection. The new object neither sees it nor creates
    over it; it waits, Degraded, and creates its own Job once the old one is gone."""
    kind, ctx, log = world(wanted=2)
    api = ctx.api()
    assert isinstance(api, Recorded)
    old = Owner("TrainingRun", "run", "0ld-uid").reference()
    labels = owner_labels("TrainingRun", "run")
    done = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    api.add("batch/v1", "jobs", {"metadata": {"name": "run-j0", "labels": labels,
                                              "ownerReferences": old}, "status": done})  # fmt: skip
    run = api.objects[("stevie.dev/v1alpha1", "trainingruns", "default", "run")]
    assert asyncio.run(owned_children(ctx, kind, "default", "run")).jobs.keys() == {"run-j0"}
    mine = asyncio.run(owned_children(ctx, kind, "default", "run", run["metadata"]["uid"]))
    assert dict(mine.jobs) == {}
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert [e for e in log if e.startswith("create")] == ["create run-j1"]  # not over run-j0
    assert plan is not None
    assert _degraded(plan.status) == (
        "True",
        "ForeignChild",
        "Job run-j0 belongs to a previous TrainingRun of this name (uid 0ld-uid); waiting "
        "for Kubernetes to delete it (garbage collection)",
    )
    assert [e.reason for e in ctx.events] == ["Created", "Planned", "ForeignChild"]
    del api.objects[("batch/v1", "jobs", "default", "run-j0")]  # garbage-collected
    log.clear()
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert [e for e in log if e.startswith("create")] == ["create run-j0"]
    assert plan is not None and "conditions" not in plan.status
    created = api.objects[("batch/v1", "jobs", "default", "run-j0")]
    assert created["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]


def _errors(ctx: Ctx) -> float | None:
    labels = {"kind": "TrainingRun"}
    return ctx.metrics.registry.get_sample_value("stevie_operator_reconcile_errors_total", labels)


def test_a_persist_that_fails_creates_nothing_and_degrades_until_it_saves() -> None:
    """Storage that refuses the write (a read-only or unwritable path, S3 down) is no crash
    loop: nothing is created (saving first is what makes creating safe), the status says
    why, keeping the phase, one Warning per transition, and the next reconcile retries."""
    kind, ctx, log = world(broken=StorageError("file:///data/run/state.json: permission denied"))
    api = ctx.api()
    assert isinstance(api, Recorded)
    key = ("stevie.dev/v1alpha1", "trainingruns", "default", "run")
    api.objects[key]["status"] = {"phase": "Running", "message": "saved 0"}
    api.objects[key]["metadata"]["generation"] = 3
    message = (
        "cannot save this TrainingRun's state, so nothing was created: "
        "file:///data/run/state.json: permission denied"
    )
    for _ in range(2):  # the first failing pass, then a retry (a timer tick)
        plan = asyncio.run(drive(ctx, kind, "default", "run"))
        assert plan is not None and plan.phase == "Running" and plan.children == ()
        stored = api.objects[key]["status"]
        assert _degraded(stored) == ("True", "StorageUnavailable", message)
        assert stored["phase"] == "Running" and stored["message"] == message
    assert not any(entry.startswith("create") for entry in log)
    assert [(e.type, e.reason, e.message) for e in ctx.events] == [
        ("Warning", "StorageUnavailable", message)  # once, not every retry
    ]
    assert _errors(ctx) == 2  # each failed reconcile counts: the errors alert fires
    assert kind.recorded == []  # the kind's own metrics keep what was last saved
    since = next(c for c in stored["conditions"] if c["type"] == "Degraded")
    assert since["observedGeneration"] == 3

    kind.broken = NotADirectoryError(20, "Not a directory", "/data/file.txt/sub")
    asyncio.run(drive(ctx, kind, "default", "run"))  # another error: still one Warning
    assert _degraded(api.objects[key]["status"])[2].endswith(
        "NotADirectoryError: [Errno 20] Not a directory: '/data/file.txt/sub'"
    )
    assert len(ctx.events) == 1

    kind.broken = None  # the storage is back
    ctx.events.clear()
    plan = asyncio.run(drive(ctx, kind, "default", "run"))
    assert [e for e in log if e.startswith("create")] == ["create run-j0", "create run-j1"]
    assert plan is not None and "conditions" not in plan.status
    assert "conditions" not in api.objects[key]["status"]  # Degraded cleared
    assert [e.reason for e in ctx.events] == ["Created", "Created", "Planned"]
    assert _errors(ctx) == 3 and kind.recorded == ["Running"]


def test_an_error_that_is_not_storage_still_raises() -> None:
    """Only storage and OS errors are the world's; a bug raises (kopf retries, logs it)."""
    kind, ctx, log = world(broken=KeyError("bug"))
    try:
        asyncio.run(drive(ctx, kind, "default", "run"))
    except KeyError:
        pass
    else:
        raise AssertionError("a bug was swallowed")
    assert not any(entry.startswith("create") for entry in log)
    assert _errors(ctx) == 1


def test_an_object_that_is_gone_or_being_deleted_is_not_reconciled() -> None:
    kind, ctx, log = world()
    assert asyncio.run(drive(ctx, kind, "default", "nobody")) is None
    api = ctx.api()
    assert isinstance(api, Recorded)
    api.add(
        "stevie.dev/v1alpha1",
        "trainingruns",
        {"metadata": {"name": "leaving", "deletionTimestamp": "2025-01-01T00:00:00Z"}},
    )
    assert asyncio.run(drive(ctx, kind, "default", "leaving")) is None
    assert log == []
    ctx.forget(kind, "default", "run")  # never seen: no error


class Listing(Recorded):
    """The in-memory API, recording every LIST's path."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.lists: list[str] = []

    async def list(self, path: str, labels: Any = None) -> list[dict[str, Any]]:
        self.lists.append(path)
        return await super().list(path, labels)


def test_children_come_with_what_their_pods_say_from_one_pods_list() -> None:
    api = Listing([])
    labels = owner_labels("TrainingRun", "run")
    uid = {}
    for i in range(7):
        job = api.add("batch/v1", "jobs", {"metadata": {"name": f"run-j{i}", "labels": labels}})
        uid[i] = job["metadata"]["uid"]
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}
    pod = {
        "metadata": {"name": "run-j0-abcde", "labels": {**labels, "job-name": "run-j0"},
                     "ownerReferences": [{"kind": "Job", "name": "run-j0", "uid": uid[0]}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": "trainer", "state": {"waiting": waiting}}]},
    }  # fmt: skip
    api.add("v1", "pods", pod)
    refused = {"metadata": {"name": "e1"}, "involvedObject": {"kind": "Job", "uid": uid[1]},
               "type": "Warning", "reason": "FailedCreate",
               "message": "exceeded quota: q"}  # fmt: skip
    api.add("v1", "events", refused)
    owned = asyncio.run(owned_children(Ctx(api), Toy(), "default", "run"))
    assert (pod_problem(owned.jobs["run-j0"]) or ("",))[0] == "ImagePullBackOff"
    assert pod_problem(owned.jobs["run-j1"]) == (
        "FailedCreate",
        "Job run-j1: cannot create its pod: exceeded quota: q (the API server refuses the pod: "
        "raise the namespace's ResourceQuota or lower spec.resources, or allow the pod's "
        "security settings; Kubernetes keeps trying, so it starts once that is fixed)",
    )
    assert pod_problem(owned.jobs["run-j2"]) is None  # no pod, no Event: not created yet
    assert [p for p in api.lists if "/pods" in p] == ["/api/v1/namespaces/default/pods"]
    # The Events of the Jobs with no pod, by uid, at most MAX_EVENT_READS of them.
    events = [p for p in api.lists if "/events" in p]
    assert events == [
        f"/api/v1/namespaces/default/events?fieldSelector=involvedObject.uid%3D{uid[i]}"
        for i in range(1, 1 + MAX_EVENT_READS)
    ]
