"""Operator metrics (prometheus-client) served on ``/metrics``: the families every kind
shares, and a place for each kind's own (``kinds/<kind>/metrics.py``), all in one registry.

- ``stevie_operator_reconcile_duration_seconds{kind}``: histogram of reconcile durations;
- ``stevie_operator_reconcile_errors_total{kind}``: reconciles that raised, or whose state
  could not be saved;
- ``stevie_operator_resources{kind,phase}``: resources known to the operator, by phase;
- ``stevie_operator_best_validation_sharpe{kind,namespace,name}``: best validation Sharpe
  of each resource (absent until known);
- ``stevie_operator_job_failures_total{kind,namespace,name}``: child Jobs of each resource
  the operator saw failed, each Job (name and uid) counted once however often it is
  reconciled. The series exists (at 0) from a resource's first reconcile, so ``increase()``
  sees its first failure; Jobs already failed at that first reconcile (an operator that
  restarted) are not counted, or every restart would count them again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["PHASES", "KindMetrics", "OperatorMetrics", "remove_series"]

PHASES = ("Pending", "Running", "Succeeded", "Failed")
_UNKNOWN = "Unknown"
Key = tuple[str, str, str]  # kind, namespace, name
KM = TypeVar("KM", bound="KindMetrics")


class KindMetrics:
    """A kind's own metric families; :meth:`forget` drops a deleted resource's series."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted resource (none by default)."""


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
            "Reconciles that failed with an error or could not save their state (retried).",
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
        self.job_failures = Counter(
            "stevie_operator_job_failures",
            "Child Jobs of each resource seen failed (each Job counted once).",
            ["kind", "namespace", "name"],
            registry=self.registry,
        )
        self._phases: dict[Key, str] = {}
        self._sharpe: set[Key] = set()
        self._failed_jobs: dict[Key, set[str]] = {}  # failed Jobs (name/uid) already seen
        self._kinds: dict[str, KindMetrics] = {}
        self._servers: list[tuple[WSGIServer, threading.Thread]] = []

    def of(self, kind: str, factory: Callable[[CollectorRegistry], KM]) -> KM:
        """The metrics of ``kind``, created with ``factory`` on first use."""
        found = self._kinds.get(kind)
        if found is None:
            found = self._kinds[kind] = factory(self.registry)
        assert isinstance(found, KindMetrics)
        return found  # type: ignore[return-value]

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

    def observe(self, kind: str, namespace: str, name: str, phase: str | None) -> None:
        """Record the current phase of one resource."""
        self._phases[(kind, namespace, name)] = phase or _UNKNOWN
        self._refresh(kind)

    def best_sharpe(self, kind: str, namespace: str, name: str, value: float | None) -> None:
        """Record (or, with None, drop) the best validation Sharpe of one resource."""
        key = (kind, namespace, name)
        if value is not None:
            self.best_validation_sharpe.labels(*key).set(value)
            self._sharpe.add(key)
        elif key in self._sharpe:
            self.best_validation_sharpe.remove(*key)
            self._sharpe.discard(key)

    def failed_jobs(self, kind: str, namespace: str, name: str, failed: Iterable[str]) -> None:
        """Count the resource's failed child Jobs (``failed``: one identity per Job, e.g.
        ``name/uid``) not seen failed before; see the module docstring for the first reconcile."""
        key = (kind, namespace, name)
        first_sight = key not in self._failed_jobs
        seen = self._failed_jobs.setdefault(key, set())
        counter = self.job_failures.labels(*key)
        for job in failed:
            if job not in seen:
                seen.add(job)
                if not first_sight:
                    counter.inc()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a deleted resource from the gauges, the kind's own included."""
        self._phases.pop((kind, namespace, name), None)
        self.best_sharpe(kind, namespace, name, None)
        if self._failed_jobs.pop((kind, namespace, name), None) is not None:
            remove_series(self.job_failures, kind, namespace, name)
        own = self._kinds.get(kind)
        if own is not None:
            own.forget(namespace, name)
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
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._servers.append((server, thread))
        return int(server.server_port)

    def close(self) -> None:
        """Stop serving (an operator stopping inside a process that goes on, e.g. a test)."""
        while self._servers:
            server, thread = self._servers.pop()
            server.shutdown()
            server.server_close()
            thread.join(5)


def remove_series(gauge: Any, *labels: str) -> None:
    """Remove one labelled series if present (prometheus-client raises KeyError otherwise)."""
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
