"""``stevie run FILE.yaml``: the operator's own reconcile loop, with no cluster.

Every resource in the file goes into an in-memory API (:class:`~.cluster.LocalCluster`),
and :func:`~stevie_operator.framework.controller.drive` reconciles it exactly as the
operator does: the same observe, plan, persist and record of its Kind, the same statuses,
conditions, Events and messages. Jobs the plan creates run as local processes
(:class:`~.launcher.LocalLauncher`), reporting Job-shaped status. Resources run one after
the other, in file order, each until it succeeds or fails, or until nothing runs and
nothing changes (a state that needs someone to act: the status says what). Artifacts go
under a local data directory, and each final resource is printed as ``kubectl get -o yaml``
would show it. Ctrl-C stops the processes (checkpoints stay); running the same file again
continues: finished work is kept, unfinished children start again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import yaml

from stevie_api import API_VERSION
from stevie_api.kinds import Resource
from stevie_api.loader import load_resources
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.controller import drive
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import KubeAPI
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.framework.pods import KIND_LABEL, ROLE_LABEL
from stevie_operator.framework.status import Event
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher
from stevie_trainer.common import storage

__all__ = ["LocalContext", "run_file", "run_resources"]

P = ParamSpec("P")
T = TypeVar("T")
Say = Callable[[str], None]
IDLE_PASSES = 3  # reconciles with nothing running before a resource counts as waiting


class LocalContext(Context):
    """The context of ``stevie run``: the in-memory API, Events as lines, blocking calls
    inline (nothing else runs in this loop, and forked children must not inherit threads)."""

    def __init__(self, config: OperatorConfig, cluster: LocalCluster, say: Say) -> None:
        super().__init__(config, OperatorMetrics())
        self.cluster = cluster
        self.say = say

    def api(self) -> KubeAPI:
        return self.cluster

    def post(self, body: Body, events: Iterable[Event]) -> None:
        for event in events:
            self.say(f"{event.type:7s} {event.reason}: {event.message}")

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return fn(*args, **kwargs)


class _Logs:
    """Where a Job's output goes: children of a kind's parallel roles (all, with ``stream``
    off) write to ``<resource folder>/logs/<job>.log``; the others stream to this terminal."""

    def __init__(
        self,
        kinds: Mapping[str, Kind[Any, Any, Any]],
        cluster: LocalCluster,
        data_dir: Path,
        config: OperatorConfig,
        stream: bool,
    ) -> None:
        self.kinds, self.cluster, self.data_dir, self.config = kinds, cluster, data_dir, config
        self.stream = stream

    def folder(self, kind: Kind[Any, Any, Any], body: Body) -> Path:
        meta = body["metadata"]
        uri = kind.location(body, self.config)
        local = storage.local_path(uri) if uri else None
        base = local or self.data_dir / meta["namespace"] / kind.info.plural / meta["name"]
        return Path(base) / "logs"

    def __call__(self, job: Mapping[str, Any]) -> Path | None:
        labels = job["metadata"].get("labels") or {}
        kind = self.kinds.get(labels.get(KIND_LABEL, ""))
        if kind is None:
            return None
        if self.stream and labels.get(ROLE_LABEL) not in kind.parallel_roles:
            return None
        owners: list[dict[str, Any]] = job["metadata"].get("ownerReferences") or [{}]
        owner = owners[0].get("name")
        body = self.cluster.obj(
            API_VERSION, kind.info.plural, job["metadata"]["namespace"], str(owner)
        )
        return None if body is None else self.folder(kind, body) / f"{job['metadata']['name']}.log"


async def _run_one(
    ctx: LocalContext, kind: Kind[Any, Any, Any], body: Body, launcher: LocalLauncher, poll: float
) -> dict[str, Any]:
    """Reconcile one resource until it is finished, or waits for what only a cluster does."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    last, idle = None, 0
    while True:
        busy = bool(launcher.running())  # before observing: a child may end meanwhile
        plan = await drive(ctx, kind, namespace, name)
        assert plan is not None
        running = launcher.running()
        message = plan.status.get("message")
        if message != last and not plan.finished and all(p.log is not None for p in running):
            ctx.say(f"{kind.name}/{name}: {plan.phase}: {message}")
        last = message
        if plan.finished:
            break
        if running:
            launcher.wait(poll)
        if plan.children or running or busy:
            idle = 0
            continue
        idle += 1  # nothing ran while this plan was made, and it started nothing
        if not plan.status_patch or idle > IDLE_PASSES:
            ctx.say(f"{kind.name}/{name}: nothing runs and nothing changes; stopping here")
            break
    found = ctx.cluster.obj(API_VERSION, kind.info.plural, namespace, name)
    assert found is not None
    ctx.forget(kind, namespace, name)
    return found


def _kind_of(
    kinds: Mapping[str, Kind[Any, Any, Any]], kind: str, where: str
) -> Kind[Any, Any, Any]:
    if kind not in kinds:
        raise ValueError(
            f"{where}: `stevie run` runs {', '.join(kinds)} so far; {kind} is not supported yet"
        )
    return kinds[kind]


Todo = list[tuple[Kind[Any, Any, Any], dict[str, Any], dict[str, dict[str, str]]]]


def _load(
    resources: Iterable[Resource], kinds: Mapping[str, Kind[Any, Any, Any]], cluster: LocalCluster
) -> Todo:
    """Every resource into the local API, with the Secrets each needs from the environment
    (every kind is checked first: an unsupported one runs nothing)."""
    chosen = [(_kind_of(kinds, r.kind, f"{r.kind}/{r.metadata.name}"), r) for r in resources]
    todo: Todo = []
    for kind, res in chosen:
        doc = res.model_dump(by_alias=True, exclude_none=True, mode="json")
        body = cluster.add(API_VERSION, kind.info.plural, doc)
        secrets = kind.local_secrets(body, os.environ)
        for secret, data in secrets.items():
            cluster.add_secret(body["metadata"]["namespace"], secret, data)
        todo.append((kind, body, secrets))
    return _in_dependency_order(todo)


def _in_dependency_order(todo: Todo) -> Todo:
    """Resources after the ones in the file they reference (an Ensemble after its members);
    otherwise in file order. A cycle is refused."""
    key = {(k.name, b["metadata"]["name"]): i for i, (k, b, _) in enumerate(todo)}
    needs = {i: {key[r] for r in k.references(b) if r in key} for i, (k, b, _) in enumerate(todo)}
    order: list[int] = []
    while len(order) < len(todo):
        free = [i for i in range(len(todo)) if i not in order and needs[i] <= set(order)]
        if not free:
            stuck = [f"{todo[i][0].name}/{todo[i][1]['metadata']['name']}" for i in needs]
            raise ValueError(f"resources reference each other in a cycle: {', '.join(stuck)}")
        order.append(free[0])
    return [todo[i] for i in order]


def run_resources(
    resources: Iterable[Resource],
    data_dir: Path,
    kinds: Mapping[str, Kind[Any, Any, Any]],
    *,
    say: Say = print,
    fork: bool = True,
    poll_seconds: float = 1.0,
    done: Callable[[dict[str, Any]], None] | None = None,
    stream: bool = True,
) -> list[dict[str, Any]]:
    """Run the resources in turn; each as it ended, with its status (also given to ``done``
    as soon as it ends). ``fork``: start trainer commands that have a warm-up by forking
    this process once it is warm (False: a fresh interpreter each, as a Job starts).
    ``stream``: let single children (a TrainingRun's trainer, a finish step) write to this
    terminal (False: every child writes to its log file)."""
    config = OperatorConfig(storage_uri=data_dir.resolve().as_uri(), local=True)
    launcher = LocalLauncher(fork=fork)
    cluster = LocalCluster(launcher, lambda job: None)
    cluster.log_place = _Logs(kinds, cluster, data_dir.resolve(), config, stream)
    ctx = LocalContext(config, cluster, say)
    todo = _load(resources, kinds, cluster)
    loop = asyncio.new_event_loop()  # no asyncio SIGINT handler: Ctrl-C raises right away
    finished = []
    try:
        for kind, body, secrets in todo:
            say(f"{kind.name}/{body['metadata']['name']}: {kind.describe(body, config, secrets)}")
            finished.append(
                loop.run_until_complete(_run_one(ctx, kind, body, launcher, poll_seconds))
            )
            if done is not None:
                done(finished[-1])
    finally:
        launcher.stop()
        loop.close()
    return finished


def run_file(path: Path, data_dir: Path, kinds: Mapping[str, Kind[Any, Any, Any]]) -> int:
    """``stevie run``: every resource in ``path`` (all validated before anything runs), each
    printed as it ends, as ``kubectl get -o yaml`` shows it; exit code 0 when all succeeded."""

    def show(doc: dict[str, Any]) -> None:
        print(yaml.safe_dump(doc, sort_keys=False), end="")

    finished = run_resources(load_resources(path), data_dir, kinds, done=show)
    ok = all((d.get("status") or {}).get("phase") == "Succeeded" for d in finished)
    return 0 if ok else 1
