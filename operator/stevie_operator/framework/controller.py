"""The one reconcile loop of every kind, on a cluster and in ``stevie run``.

:func:`drive` reconciles one object level-based: every trigger (create, resume, a spec
update, a timer while unfinished, an event of a child it owns or of an object it
references) calls it, and the same world gives the same plan. In order:

    lock -> fresh read -> list children -> observe -> plan -> persist (-> observe, plan
    again when persisting changed the world) -> create (and update) children -> patch status -> post
    Events -> record metrics

Persisting comes before creating, so a crash in between leaves saved state whose children
are missing; the next reconcile creates them (names are deterministic). A child that
already exists (409) is not an error: its Event is not posted, and its own events bring the
next reconcile.
"""

from __future__ import annotations

from typing import Any

from stevie_api import API_VERSION
from stevie_api.naming import label_value
from stevie_operator.framework.children import CHILD_TYPES, Owned
from stevie_operator.framework.kind import Body, Context, Kind
from stevie_operator.framework.kube import KubeAPI, object_path
from stevie_operator.framework.plan import Plan
from stevie_operator.framework.pods import KIND_LABEL, NAME_LABEL
from stevie_operator.framework.resource import namespace_of

__all__ = ["MAX_PASSES", "drive", "live_object", "owned_children"]

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
    api: KubeAPI, kind: Kind[Any, Any, Any], namespace: str, name: str
) -> Owned:
    """The children of one object, by type and name (found by their stevie.dev/kind and
    stevie.dev/name labels)."""
    labels = {KIND_LABEL: kind.name, NAME_LABEL: label_value(name)}
    found = {}
    for child in kind.children:
        items = await api.list(object_path(child.api_version, child.plural, namespace), labels)
        found[child.kind] = {item["metadata"]["name"]: item for item in items}
    return Owned(found)


async def _create(api: KubeAPI, ctx: Context, body: Body, plan: Plan[Any]) -> None:
    namespace = namespace_of(body)
    for child in plan.children:
        type_ = CHILD_TYPES[child.kind]
        created = await api.create(
            object_path(type_.api_version, type_.plural, namespace), child.manifest
        )
        if created is not None and child.event is not None:
            ctx.post(body, [child.event])


async def _update(api: KubeAPI, ctx: Context, body: Body, plan: Plan[Any]) -> None:
    namespace = namespace_of(body)
    for child in plan.updates:
        type_ = CHILD_TYPES[child.kind]
        path = object_path(type_.api_version, type_.plural, namespace, child.name)
        updated = await api.merge_patch(path, {"spec": child.manifest["spec"]})
        if updated is not None and child.event is not None:
            ctx.post(body, [child.event])


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
            owned = await owned_children(api, kind, namespace, name)
            observed = await kind.observe(ctx, body, owned)
            plan = kind.plan(body, observed, ctx.config)
            for _ in range(MAX_PASSES):
                if not await ctx.blocking(kind.persist, ctx, observed, plan):
                    break
                observed = await kind.observe(ctx, body, owned)
                plan = kind.plan(body, observed, ctx.config)
            await _create(api, ctx, body, plan)
            await _update(api, ctx, body, plan)
            if plan.status_patch:
                path = object_path(API_VERSION, kind.info.plural, namespace, name, "status")
                await api.merge_patch(path, {"status": plan.status_patch})
            ctx.post(body, plan.events)
            ctx.references.update((kind.name, namespace, name), kind.references(body))
            ctx.metrics.observe(kind.name, namespace, name, plan.phase)
            own = ctx.metrics.of(kind.name, kind.make_metrics)
            kind.record(ctx.metrics, own, namespace, name, plan, observed)
            return plan
