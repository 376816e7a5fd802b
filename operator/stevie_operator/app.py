"""The kopf entry point: operator-wide handlers (settings, login, cleanup) and every kind of
:mod:`.registry` registered on the framework (:func:`~.framework.registration.register_kind`).

Run with ``kopf run -m stevie_operator.app --standalone -A`` (or ``stevie operator``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import kopf

from stevie_api import GROUP
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kind import Kind
from stevie_operator.framework.pods import MANAGED_BY
from stevie_operator.framework.registration import context_of, register_kind
from stevie_operator.registry import KINDS

__all__ = ["main", "register"]

logger = logging.getLogger(__name__)


def _operator_handlers(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        ctx = context_of(memo)
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        # Events come from the reconcilers (one per transition), not from every log line.
        settings.posting.level = logging.WARNING
        settings.posting.reporting_component = MANAGED_BY
        settings.posting.event_name_prefix = "stevie-"
        if ctx.config.metrics_port > 0:
            port = ctx.metrics.serve(ctx.config.metrics_port)
            logger.info("Serving metrics on :%d/metrics", port)

    @kopf.on.login(registry=registry)
    def login(
        settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
    ) -> kopf.ConnectionInfo | None:
        ctx = context_of(memo)
        server = OperatorConfig.from_env().kube_server
        info = (
            kopf.ConnectionInfo(server=server, default_namespace="default")
            if server
            else kopf.login_with_service_account(settings=settings)
            or kopf.login_with_kubeconfig(settings=settings)
        )
        ctx.connection = info
        return info

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        ctx = context_of(memo)
        if ctx.client is not None:
            await ctx.client.close()


def register(
    registry: kopf.OperatorRegistry,
    *,
    interval: float | None = None,
    kinds: Iterable[Kind[Any, Any, Any]] = KINDS.values(),
) -> None:
    """Register the operator's handlers and every kind's in ``registry`` (the timers tick
    every ``interval`` s; default ``STEVIE_RECONCILE_INTERVAL``)."""
    every = interval or OperatorConfig.from_env().reconcile_interval
    _operator_handlers(registry)
    for kind in kinds:
        register_kind(registry, kind, every)


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
