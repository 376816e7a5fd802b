"""PBTPopulation metrics (beside the shared families):

- ``stevie_operator_pbt_member_fitness{namespace,name,member}``: latest validation fitness;
- ``stevie_operator_pbt_exploits_total{namespace,name}``: exploit decisions (the series
  exists at 0 from the first reconcile, so ``increase()`` sees the first exploit);
- ``stevie_operator_pbt_intervals_completed{namespace,name}``: member intervals completed;
- ``stevie_operator_pbt_interval_duration_seconds{namespace,name}``: wall time of completed
  intervals (Job start to completion);
- ``stevie_operator_pbt_last_interval_timestamp_seconds{namespace,name}``: Unix time at
  which the operator last saw an interval of the population complete, or first saw it
  training (a new population, or an operator that restarted: the clock starts again rather
  than alerting on a population it has not watched). Present only while members are
  training: a finished (or finishing) population has none, so
  ``time() - this > threshold`` alerts on stalled populations only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stevie_operator.framework.metrics import KindMetrics, remove_series

__all__ = ["PBTPopulationMetrics"]


class PBTPopulationMetrics(KindMetrics):
    """The families of PBTPopulations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        labels = ["namespace", "name"]
        self.fitness = Gauge(
            "stevie_operator_pbt_member_fitness",
            "Latest validation fitness of each PBT member.",
            [*labels, "member"],
            registry=registry,
        )
        self.exploits = Counter(
            "stevie_operator_pbt_exploits",
            "Exploit decisions (a member copied another), per population.",
            labels,
            registry=registry,
        )
        self.intervals = Gauge(
            "stevie_operator_pbt_intervals_completed",
            "Member intervals completed, per population.",
            labels,
            registry=registry,
        )
        self.interval_duration = Histogram(
            "stevie_operator_pbt_interval_duration_seconds",
            "Wall-clock duration of completed PBT member intervals (Job start to completion).",
            labels,
            registry=registry,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
        )
        self.last_interval = Gauge(
            "stevie_operator_pbt_last_interval_timestamp_seconds",
            "When an interval of the population last completed (Unix time; while training).",
            labels,
            registry=registry,
        )
        self._members: dict[tuple[str, str], set[str]] = {}
        self._completed: dict[tuple[str, str], int] = {}  # intervals completed, while training

    def observe(
        self,
        namespace: str,
        name: str,
        *,
        fitness: Mapping[int, float],
        intervals_completed: int,
        new_exploits: int,
        interval_seconds: Iterable[float],
        training: bool = True,
        now: float | None = None,
    ) -> None:
        """Record a population: latest fitness per member, intervals completed, the exploits
        and the durations of the intervals seen completed in this reconcile; ``training``:
        whether members are still training (the last-interval clock runs only then)."""
        key = (namespace, name)
        members = self._members.setdefault(key, set())
        for member, value in fitness.items():
            self.fitness.labels(namespace, name, str(member)).set(value)
            members.add(str(member))
        self.intervals.labels(namespace, name).set(intervals_completed)
        self.exploits.labels(namespace, name).inc(new_exploits)
        for seconds in interval_seconds:
            self.interval_duration.labels(namespace, name).observe(seconds)
        self._clock(key, intervals_completed, training, now)

    def stopped(self, namespace: str, name: str) -> None:
        """The population trains no more (its spec was refused): stop its clock."""
        self._clock((namespace, name), 0, False, None)

    def _clock(
        self, key: tuple[str, str], completed: int, training: bool, now: float | None
    ) -> None:
        """Restart the last-interval clock on a completed interval (or a first sight)."""
        if not training:
            if self._completed.pop(key, None) is not None:
                remove_series(self.last_interval, *key)
            return
        if self._completed.get(key, -1) < completed:
            self.last_interval.labels(*key).set(time.time() if now is None else now)
        self._completed[key] = completed

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._completed.pop(key, None)
        members = self._members.pop(key, None)
        if members is None:
            return
        for member in members:
            remove_series(self.fitness, namespace, name, member)
        for family in (self.intervals, self.exploits, self.interval_duration, self.last_interval):
            remove_series(family, namespace, name)
