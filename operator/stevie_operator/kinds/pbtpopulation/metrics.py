"""PBTPopulation metrics (beside the shared families):

- ``stevie_operator_pbt_member_fitness{namespace,name,member}``: latest validation fitness;
- ``stevie_operator_pbt_exploits_total{namespace,name}``: exploit decisions;
- ``stevie_operator_pbt_intervals_completed{namespace,name}``: member intervals completed;
- ``stevie_operator_pbt_interval_duration_seconds``: wall time of completed intervals (Job
  start to completion).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stevie_operator.framework.metrics import KindMetrics, remove_series

__all__ = ["PBTPopulationMetrics"]


class PBTPopulationMetrics(KindMetrics):
    """The families of PBTPopulations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.fitness = Gauge(
            "stevie_operator_pbt_member_fitness",
            "Latest validation fitness of each PBT member.",
            ["namespace", "name", "member"],
            registry=registry,
        )
        self.exploits = Counter(
            "stevie_operator_pbt_exploits",
            "Exploit decisions (a member copied another), per population.",
            ["namespace", "name"],
            registry=registry,
        )
        self.intervals = Gauge(
            "stevie_operator_pbt_intervals_completed",
            "Member intervals completed, per population.",
            ["namespace", "name"],
            registry=registry,
        )
        self.interval_duration = Histogram(
            "stevie_operator_pbt_interval_duration_seconds",
            "Wall-clock duration of completed PBT member intervals (Job start to completion).",
            registry=registry,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
        )
        self._members: dict[tuple[str, str], set[str]] = {}

    def observe(
        self,
        namespace: str,
        name: str,
        *,
        fitness: Mapping[int, float],
        intervals_completed: int,
        new_exploits: int,
        interval_seconds: Iterable[float],
    ) -> None:
        """Record a population: latest fitness per member, intervals completed, the exploits
        and the durations of the intervals seen completed in this reconcile."""
        members = self._members.setdefault((namespace, name), set())
        for member, value in fitness.items():
            self.fitness.labels(namespace, name, str(member)).set(value)
            members.add(str(member))
        self.intervals.labels(namespace, name).set(intervals_completed)
        if new_exploits:
            self.exploits.labels(namespace, name).inc(new_exploits)
        for seconds in interval_seconds:
            self.interval_duration.observe(seconds)

    def forget(self, namespace: str, name: str) -> None:
        members = self._members.pop((namespace, name), None)
        if members is None:
            return
        for member in members:
            remove_series(self.fitness, namespace, name, member)
        remove_series(self.intervals, namespace, name)
        remove_series(self.exploits, namespace, name)
