"""The kopf entry point: operator-wide handlers (settings, login, leader election, cleanup)
and every kind of :mod:`.registry` registered on the framework
(:func:`~.framework.registration.register_kind`).

Run with ``kopf run -m stevie_operator.app --standalone -A`` (or ``stevie operator``), also
with leader election (``STEVIE_LEADER_ELECTION=1``): that is a Lease (:mod:`.framework.leader`)
taken in a startup handler, and kopf starts watching only once every startup handler has
finished, so a follower makes no call but the Lease's until it leads. kopf's own peering
(``--peering``) is not used: operators of equal priority all pause there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import kopf

from stevie_api import GROUP
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kind import Kind
from stevie_operator.framework.leadership import (
    Leadership,
    connection,
    exit_process,
    step_down,
    take_lead,
)
from stevie_operator.framework.pods import MANAGED_BY
from stevie_operator.framework.registration import context_of, register_indexes, register_kind
from stevie_operator.registry import KINDS

__all__ = ["exit_process", "main", "register"]

logger = logging.getLogger(__name__)
LEADER_KEY = "stevie.leader"
FINALIZER = f"{GROUP}/finalizer"
"""The finalizer kopf puts on unfinished resources (instead of kopf.zalando.org's)."""


def _leader_handlers(
    registry: kopf.OperatorRegistry, on_lost: Callable[[str], None], identity: str | None
) -> None:
    @kopf.on.startup(registry=registry)
    async def lead(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        """Block until this process holds the Lease (kopf watches nothing before)."""
        config = context_of(memo).config
        if config.leader_election:
            memo[LEADER_KEY] = await take_lead(settings, config, identity, on_lost)

    @kopf.on.cleanup(registry=registry)
    async def release(memo: kopf.Memo, **_: Any) -> None:
        """Release the Lease, so the next leader starts at once, not a lease later."""
        held = memo.get(LEADER_KEY)
        if isinstance(held, Leadership):
            await step_down(held)


def _operator_handlers(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        ctx = context_of(memo)
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # kopf puts a finalizer on every resource its timer runs for (it stops the timer
        # before the object goes): ours, by name, so `kubectl get -o yaml` says whose it is.
        # With the operator gone, `kubectl delete` waits on it: remove it by hand
        # (docs/kubernetes.md, "Uninstall").
        settings.persistence.finalizer = FINALIZER
        # Events come from the reconcilers (one per transition), not from every log line.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = MANAGED_BY
        settings.posting.event_name_prefix = "stevie-"
        # A stalled watch is noticed and re-opened (from its last resourceVersion): the API
        # server is asked to end each stream after 5 min, as client-go's reflectors ask
        # (kmock ignores it); the client gives up 30 s after that, or after 10 s without a
        # connection; and kopf's own inactivity timeout (70 s without an event or bookmark)
        # catches a connection that died silently in between.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        if ctx.config.metrics_port > 0:
            port = ctx.metrics.serve(ctx.config.metrics_port)
            logger.info("Serving metrics on :%d/metrics", port)

    @kopf.on.login(registry=registry)
    def login(
        settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
    ) -> kopf.ConnectionInfo | None:
        ctx = context_of(memo)
        info = connection(settings)
        ctx.connection = info
        return info

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        ctx = context_of(memo)
        if ctx.client is not None:
            await ctx.client.close()
        ctx.metrics.close()  # free the /metrics port (several operators share a test process)


def register(
    registry: kopf.OperatorRegistry,
    *,
    interval: float | None = None,
    kinds: Iterable[Kind[Any, Any, Any]] = KINDS.values(),
    on_lost_lease: Callable[[str], None] = exit_process,
    identity: str | None = None,
) -> None:
    """Register the operator's handlers and every kind's in ``registry`` (the timers tick
    every ``interval`` s; default ``STEVIE_RECONCILE_INTERVAL``). With leader election on,
    ``identity`` is this candidate's (default: the pod's name and a random suffix) and
    ``on_lost_lease`` is called with the reason when the Lease is lost (default: exit)."""
    every = interval or OperatorConfig.from_env().reconcile_interval
    _operator_handlers(registry)
    _leader_handlers(registry, on_lost_lease, identity)
    kinds = tuple(kinds)
    for kind in kinds:
        register_kind(registry, kind, every)
    register_indexes(registry, kinds)


register(kopf.get_default_registry())


def main(argv: Sequence[str] = ()) -> int:
    """``kopf run`` with these handlers; ``argv`` are extra ``kopf run`` options
    (default: ``--standalone --all-namespaces``)."""
    from kopf import cli

    args = ["run", "-m", __name__, *(argv or ("--standalone", "--all-namespaces"))]
    try:
        cli.main.main(args=args, prog_name="stevie operator", standalone_mode=False)
    except KeyboardInterrupt:
        return 130
    return 0
