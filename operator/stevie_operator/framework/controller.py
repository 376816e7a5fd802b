"""The one reconcile loop of every kind, on a cluster and in ``stevie run``.

:func:`drive` reconciles one object level-based: every trigger (create, resume, a spec
update, a timer while unfinished, an event of a child it owns or of an object it
references) calls it, and the same world gives the same plan. In order:

    lock -> fresh read -> its children and their pods (the watches' index on a cluster,
    :mod:`.informer`) -> observe -> plan -> persist
    (-> observe, plan again when persisting changed the world) -> create (and update)
    children -> patch status -> post Events -> record metrics (phases, failed child Jobs,
    the kind's own)

Persisting comes before creating, so a crash in between leaves saved state whose children
are missing; the next reconcile creates them (names are deterministic). A child that
already exists (409) is not an error when it is this object's (its controlling
ownerReference has this object's uid): its Event is not posted, and its own events bring
the next reconcile. A child of another owner (the Job of a deleted object of the same name,
not yet garbage-collected) is neither observed nor adopted: the object is Degraded until it
is gone (:mod:`.ownership`). A state that cannot be read or saved (storage unwritable or
unreachable) creates nothing either: the object is Degraded (StorageUnavailable) until a
later reconcile reads and saves it (:func:`_planned`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from stevie_api import API_VERSION
from stevie_api.naming import label_value
from stevie_operator.framework import podstatus
from stevie_operator.framework.children import (
    CHILD_TYPES,
    DEPLOYMENTS,
    JOBS,
    Owned,
    job_outcome,
    with_pods,
)
from stevie_operator.framework.informer import POD_PLURAL, owner_key
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import KubeAPI, field_selector, object_path
from stevie_operator.framework.ownership import foreign_owner, split_owned, with_foreign
from stevie_operator.framework.plan import Plan, unsaved
from stevie_operator.framework.pods import KIND_LABEL, NAME_LABEL
from stevie_operator.framework.resource import namespace_of
from stevie_operator.framework.s3access import S3Problem, resource_profile
from stevie_trainer.common import storage

__all__ = ["MAX_EVENT_READS", "MAX_PASSES", "drive", "failed_jobs", "live_object", "owned_children"]

logger = logging.getLogger(__name__)
Foreign = dict[tuple[str, str], str]  # (child kind, name) -> whose it is (see .ownership)
MAX_PASSES = 3
"""Plans per reconcile at most (persist -> observe -> plan again); two settle in practice."""


async def live_object(
    api: KubeAPI, kind: Kind[Any, Any, Any], namespace: str, name: str
) -> dict[str, Any] | None:
    """The object as the API server has it now; None if it is gone or being deleted."""
    body = await api.get(object_path(API_VERSION, kind.info.plural, namespace, name))
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return body


async def owned_children(
    ctx: Context, kind: Kind[Any, Any, Any], namespace: str, name: str, uid: str | None = None
) -> Owned:
    """The children of one object, by type and name (found by their stevie.dev/kind and
    stevie.dev/name labels, kept when their controlling ownerReference is ``uid``'s: see
    :mod:`.ownership`), each Job and Deployment with what its pods say."""
    return (await _children(ctx, kind, namespace, name, uid))[0]


async def _listed(
    ctx: Context, api_version: str, plural: str, namespace: str, labels: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The objects of one type carrying ``labels``, by name: from the watches' index when
    the operator keeps one (:mod:`.informer`), else one LIST (``stevie run``)."""
    index = ctx.children
    if index is not None and index.covers(plural):
        key = owner_key(namespace, labels[KIND_LABEL], labels[NAME_LABEL])
        return index.children(plural, key)
    items = await ctx.api().list(object_path(api_version, plural, namespace), labels)
    return {item["metadata"]["name"]: item for item in items}


async def _children(
    ctx: Context, kind: Kind[Any, Any, Any], namespace: str, name: str, uid: str | None
) -> tuple[Owned, Foreign]:
    """:func:`owned_children`, and the listed children another owner controls."""
    labels = {KIND_LABEL: kind.name, NAME_LABEL: label_value(name)}
    listed = {}
    for child in kind.children:
        listed[child.kind] = await _listed(ctx, child.api_version, child.plural, namespace, labels)
    found, foreign = split_owned(listed, kind.name, name, uid)
    if any(t in kind.children for t in (JOBS, DEPLOYMENTS)):
        await _with_pods(ctx, namespace, labels, found)
    return Owned(found), foreign


MAX_EVENT_READS = 4
"""Events LISTs per reconcile at most: the first few stuck children say why (they share the
cause, most often), and a population of pods starting at once costs no more."""


async def _with_pods(
    ctx: Context,
    namespace: str,
    labels: dict[str, str],
    found: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """Attach a :class:`~.podstatus.PodReport` to each Job and Deployment: the owner's pods
    (they carry its labels), and the Events of a child with no pod or a pod
    Pending for no reason its status gives (see :func:`.podstatus.event_subjects`)."""
    pods = list((await _listed(ctx, "v1", POD_PLURAL, namespace, labels)).values())
    # A LIST's items carry no kind (the list does), a watch's do: podstatus tells Jobs by it.
    watched = {
        t.kind: {n: {**obj, "kind": t.kind} for n, obj in found.get(t.kind, {}).items()}
        for t in (JOBS, DEPLOYMENTS)
    }
    subjects = [uid for objs in watched.values() for obj in objs.values()
                for uid in podstatus.event_subjects(obj, pods)]  # fmt: skip
    events: list[dict[str, Any]] = []
    for uid in subjects[:MAX_EVENT_READS]:
        path = field_selector(object_path("v1", "events", namespace), {"involvedObject.uid": uid})
        events += await ctx.api().list(path)
    for kind_name, objs in watched.items():
        if kind_name in found:
            found[kind_name] = {
                n: with_pods(obj, podstatus.report(obj, pods, events)) for n, obj in objs.items()
            }


def failed_jobs(owned: Owned) -> list[str]:
    """``name/uid`` of each failed Job among the children (the uid tells a Job re-created
    under the same name from the one that failed)."""
    return [
        f"{name}/{(job.get('metadata') or {}).get('uid') or ''}"
        for name, job in owned.jobs.items()
        if job_outcome(job)[0] == "Failed"
    ]


async def _create(
    api: KubeAPI, ctx: Context, kind: Kind[Any, Any, Any], body: Body, plan: Plan[Any],
    foreign: Foreign,
) -> list[str]:  # fmt: skip
    """Create the planned children; why each that another owner's child stands in the way
    of was not (a 409 is this object's child only when its controller is this object)."""
    namespace, meta = namespace_of(body), body.get("metadata") or {}
    name, uid = str(meta.get("name")), meta.get("uid")
    problems = []
    for child in plan.children:
        type_ = CHILD_TYPES[child.kind]
        if (why := foreign.get((child.kind, child.name))) is not None:
            problems.append(why)
            continue
        collection = object_path(type_.api_version, type_.plural, namespace)
        created = await api.create(collection, child.manifest)
        if created is not None:
            if ctx.children is not None:
                ctx.children.expect(type_.plural, namespace, created)
            if child.event is not None:
                ctx.post(body, [child.event])
            continue
        existing = await api.get(f"{collection}/{quote(child.name)}")
        if existing is None:
            continue  # deleted since: the next reconcile creates it
        why = foreign_owner({"kind": child.kind, **existing}, kind.name, name, uid)
        if why is not None:
            problems.append(why)
    return problems


async def _update(
    api: KubeAPI, ctx: Context, body: Body, plan: Plan[Any], foreign: Foreign
) -> None:
    namespace = namespace_of(body)
    for child in plan.updates:
        if (child.kind, child.name) in foreign:
            continue  # never patch another owner's child
        type_ = CHILD_TYPES[child.kind]
        path = object_path(type_.api_version, type_.plural, namespace, child.name)
        updated = await api.merge_patch(path, {"spec": child.manifest["spec"]})
        if updated is not None and child.event is not None:
            ctx.post(body, [child.event])


def _stored(body: Body) -> dict[str, Any]:
    status = body.get("status")
    return status if isinstance(status, dict) else {}


async def _planned(
    ctx: Context, kind: Kind[Any, Any, Any], body: Body, owned: Owned
) -> tuple[Any, Plan[Any], bool]:
    """Observe, plan and persist (observing and planning again while persisting changes the
    world); and whether the state was saved.

    A storage or file-system error while reading or saving the state (an unwritable or
    read-only path, S3 unreachable or refusing) is no crash: the plan is
    :func:`~.plan.unsaved`'s (nothing created, Degraded saying what failed, one Warning
    Event), counted in ``stevie_operator_reconcile_errors_total`` (the reconcile failed its
    purpose, so the alert on it fires), and retried by the next timer tick or event, not by
    kopf's backoff loop on a handler that raises (which would leave the status silent, back
    a timer off for 60 s and drop child events)."""
    observed, doing = None, "read"
    try:
        observed = await kind.observe(ctx, body, owned)
        plan = kind.plan(body, observed, ctx.config)
        doing = "save"
        for _ in range(MAX_PASSES):
            if not await ctx.blocking(kind.persist, ctx, observed, plan):
                break
            doing = "read"
            observed = await kind.observe(ctx, body, owned)
            plan = kind.plan(body, observed, ctx.config)
            doing = "save"
    except (storage.StorageError, OSError) as exc:
        why = str(exc) if isinstance(exc, storage.StorageError) else f"{type(exc).__name__}: {exc}"
        message = f"cannot {doing} this {kind.name}'s state, so nothing was created: {why}"
        meta = body.get("metadata") or {}
        logger.warning("%s %s/%s: %s", kind.name, namespace_of(body), meta.get("name"), message)
        ctx.metrics.reconcile_errors.labels(kind.name).inc()
        plan = unsaved(_stored(body), meta.get("generation"), message, datetime.now(UTC))
        return observed, plan, False
    return observed, plan, True


async def _with_storage(
    ctx: Context, kind: Kind[Any, Any, Any], body: Body, owned: Owned
) -> tuple[Any, Plan[Any], bool]:
    """:func:`_planned` with the object's S3 profile current: its artifacts are read and
    written with its own endpoint and Secret, as its pods reach them (:mod:`.s3access`).
    When that Secret cannot be had, nothing is observed, saved or created: the object is
    Degraded saying which Secret or key is missing (never a value)."""
    access = await resource_profile(ctx.api(), kind.info.model, body, ctx.config)
    if isinstance(access, S3Problem):
        name = (body.get("metadata") or {}).get("name")
        logger.warning("%s %s/%s: %s", kind.name, namespace_of(body), name, access.message)
        return None, access.plan(body), False
    with storage.using_s3(access):
        return await _planned(ctx, kind, body, owned)


async def drive(
    ctx: Context, kind: Kind[Any, Any, Any], namespace: str, name: str
) -> Plan[Any] | None:
    """Reconcile one object from fresh reads; None if it is gone or being deleted."""
    async with ctx.lock(kind.name, namespace, name):
        with ctx.metrics.reconciling(kind.name):
            api = ctx.api()
            body = await live_object(api, kind, namespace, name)
            if body is None:
                return None
            uid = (body.get("metadata") or {}).get("uid")
            owned, foreign = await _children(ctx, kind, namespace, name, uid)
            observed, plan, saved = await _with_storage(ctx, kind, body, owned)
            problems = await _create(api, ctx, kind, body, plan, foreign) if saved else []
            if problems:
                meta = body.get("metadata") or {}
                plan = with_foreign(plan, _stored(body), meta.get("generation"), problems)
            if saved:
                await _update(api, ctx, body, plan, foreign)
            if plan.status_patch:
                path = object_path(API_VERSION, kind.info.plural, namespace, name, "status")
                await api.merge_patch(path, {"status": plan.status_patch})
            ctx.post(body, plan.events)
            ctx.references.update((kind.name, namespace, name), kind.references(body))
            ctx.metrics.observe(kind.name, namespace, name, plan.phase)
            ctx.metrics.failed_jobs(kind.name, namespace, name, failed_jobs(owned))
            if saved:  # else the kind's own metrics keep what was last saved
                own = ctx.metrics.of(kind.name, kind.make_metrics)
                kind.record(ctx.metrics, own, namespace, name, plan, observed)
            return plan
