"""Prometheus series of the decision service (``GET /metrics``), in one registry per app.

- ``stevie_serve_requests_total{route,method,status}`` and
  ``stevie_serve_request_duration_seconds{route,status}``: every HTTP request, labelled by
  its route template (``/v2/models/{name}/infer``; ``unmatched`` for unknown paths, so a
  scan cannot blow up the label set);
- ``stevie_ensemble_decisions_total{action}``, ``stevie_ensemble_consensus``,
  ``stevie_ensemble_confidence``: the decisions;
- ``stevie_ensemble_member_weight{member}``: each member's weight in the last decision;
- ``stevie_serve_ready``, ``stevie_ensemble_info{name,version,method}`` and the decision
  log's ``stevie_serve_decision_log_records_total{state}`` (written, dropped).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "MetricsMiddleware", "ServeMetrics"]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
SHARE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServeMetrics:
    """The service's families; label children are cached (a lookup costs ~1 us)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "stevie_serve_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "stevie_serve_request_duration_seconds",
            "HTTP request latency (first byte in to last byte out of the app)",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "stevie_ensemble_decisions", "Decisions by action level", ["action"], registry=r
        )
        self.consensus = Histogram(
            "stevie_ensemble_consensus",
            "Weight share of the members voting for the decision",
            buckets=SHARE_BUCKETS,
            registry=r,
        )
        self.confidence = Histogram(
            "stevie_ensemble_confidence",
            "The ensemble's probability of its decision",
            buckets=SHARE_BUCKETS,
            registry=r,
        )
        self.member_weight = Gauge(
            "stevie_ensemble_member_weight",
            "Each member's weight in the last decision",
            ["member"],
            registry=r,
        )
        self.ready = Gauge("stevie_serve_ready", "1 when the models are loaded", registry=r)
        self.info = Gauge(
            "stevie_ensemble_info",
            "The ensemble served (value 1)",
            ["name", "version", "method"],
            registry=r,
        )
        self.log_records = Counter(
            "stevie_serve_decision_log_records",
            "Decision log records by state (written to storage, or dropped)",
            ["state"],
            registry=r,
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._logged = {"written": 0, "dropped": 0}

    def _child(self, family: Any, *labels: str) -> Any:
        key = (family._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        self._child(self.requests, route, method, code).inc()
        self._child(self.latency, route, code).observe(seconds)

    def decision(self, action: float, consensus: float, confidence: float,
                 weights: dict[str, float]) -> None:  # fmt: skip
        self._child(self.decisions, f"{action:g}").inc()
        self.consensus.observe(consensus)
        self.confidence.observe(confidence)
        for name, weight in weights.items():
            self._child(self.member_weight, name).set(weight)

    def decision_log(self, counts: dict[str, Any]) -> None:
        """Bring the log counters up to the log's own totals (called at scrape time)."""
        for state in ("written", "dropped"):
            delta = int(counts.get(state, 0)) - self._logged[state]
            if delta > 0:
                self._child(self.log_records, state).inc(delta)
                self._logged[state] += delta

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (no BaseHTTPMiddleware: that costs
    ~100 us a request)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "unmatched"))
            self.metrics.request(
                template, str(scope.get("method", "")), status, time.perf_counter() - start
            )
