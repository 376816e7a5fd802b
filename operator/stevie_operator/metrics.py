"""Operator metrics (prometheus-client) served on ``/metrics``.

- ``stevie_operator_reconcile_duration_seconds{kind}``: histogram of reconcile durations;
- ``stevie_operator_reconcile_errors_total{kind}``: reconciles that raised;
- ``stevie_operator_resources{kind,phase}``: resources known to the operator, by phase;
- ``stevie_operator_best_validation_sharpe{kind,namespace,name}``: best validation Sharpe
  of each resource (absent until known).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["PHASES", "OperatorMetrics"]

PHASES = ("Pending", "Running", "Succeeded", "Failed")
_UNKNOWN = "Unknown"

Key = tuple[str, str, str]  # kind, namespace, name


class OperatorMetrics:
    """The operator's metrics in their own registry (several operators can share a process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconcile_duration = Histogram(
            "stevie_operator_reconcile_duration_seconds",
            "Duration of one reconcile of a resource.",
            ["kind"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.reconcile_errors = Counter(
            "stevie_operator_reconcile_errors",
            "Reconciles that failed with an error (they are retried).",
            ["kind"],
            registry=self.registry,
        )
        self.resources = Gauge(
            "stevie_operator_resources",
            "Resources known to the operator, by kind and phase.",
            ["kind", "phase"],
            registry=self.registry,
        )
        self.best_validation_sharpe = Gauge(
            "stevie_operator_best_validation_sharpe",
            "Best validation Sharpe ratio of each resource.",
            ["kind", "namespace", "name"],
            registry=self.registry,
        )
        self._phases: dict[Key, str] = {}
        self._sharpe: set[Key] = set()

    @contextlib.contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        """Time a reconcile; count it as an error if it raises."""
        start = time.perf_counter()
        try:
            yield
        except Exception:
            self.reconcile_errors.labels(kind).inc()
            raise
        finally:
            self.reconcile_duration.labels(kind).observe(time.perf_counter() - start)

    def observe(
        self,
        kind: str,
        namespace: str,
        name: str,
        phase: str | None,
        best_validation_sharpe: float | None,
    ) -> None:
        """Record the current phase and best validation Sharpe of one resource."""
        key = (kind, namespace, name)
        self._phases[key] = phase or _UNKNOWN
        if best_validation_sharpe is not None:
            self.best_validation_sharpe.labels(*key).set(best_validation_sharpe)
            self._sharpe.add(key)
        elif key in self._sharpe:
            self.best_validation_sharpe.remove(*key)
            self._sharpe.discard(key)
        self._refresh(kind)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a deleted resource from the gauges."""
        key = (kind, namespace, name)
        self._phases.pop(key, None)
        if key in self._sharpe:
            self.best_validation_sharpe.remove(*key)
            self._sharpe.discard(key)
        self._refresh(kind)

    def _refresh(self, kind: str) -> None:
        counts = dict.fromkeys((*PHASES, _UNKNOWN), 0)
        for (k, _, _), phase in self._phases.items():
            if k == kind:
                counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.resources.labels(kind, phase).set(count)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` on ``port`` in a background thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)
