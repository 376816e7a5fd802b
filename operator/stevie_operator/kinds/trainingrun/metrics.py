"""TrainingRun metrics (beside the shared best validation Sharpe):

- ``stevie_operator_training_progress_ratio{namespace,name}``: timesteps trained / total.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from stevie_operator.framework.metrics import KindMetrics, remove_series

__all__ = ["TrainingRunMetrics"]


class TrainingRunMetrics(KindMetrics):
    """The families of TrainingRuns."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.progress = Gauge(
            "stevie_operator_training_progress_ratio",
            "Timesteps trained over totalTimesteps, per TrainingRun.",
            ["namespace", "name"],
            registry=registry,
        )

    def observe(self, namespace: str, name: str, done: int, total: int) -> None:
        """Record one run's progress."""
        self.progress.labels(namespace, name).set(done / total if total > 0 else 0.0)

    def forget(self, namespace: str, name: str) -> None:
        remove_series(self.progress, namespace, name)
