"""Operator metrics (prometheus-client) served on ``/metrics``.

- ``stevie_operator_reconcile_duration_seconds{kind}``: histogram of reconcile durations;
- ``stevie_operator_reconcile_errors_total{kind}``: reconciles that raised;
- ``stevie_operator_resources{kind,phase}``: resources known to the operator, by phase;
- ``stevie_operator_best_validation_sharpe{kind,namespace,name}``: best validation Sharpe
  of each resource (absent until known);
- ``stevie_operator_hpo_trials{namespace,name,state}``: trials of each HPOStudy by state
  (running, completed, pruned, failed);
- ``stevie_operator_hpo_best_value{namespace,name}``: the best trial's (first) objective value;
- ``stevie_operator_hpo_trial_duration_seconds{state}``: wall-clock time of finished trials
  (Optuna's start to completion), observed once per trial when the operator sees it finished.
  Trials that finished before the operator first saw their study (e.g. while it was
  restarting) are not observed: a new process would otherwise count them a second time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["PHASES", "TRIAL_STATES", "OperatorMetrics"]

PHASES = ("Pending", "Running", "Succeeded", "Failed")
TRIAL_STATES = ("running", "completed", "pruned", "failed")
PBT_KIND = "PBTPopulation"
HPO_KIND = "HPOStudy"
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
        self.hpo_trials = Gauge(
            "stevie_operator_hpo_trials",
            "Trials of each HPOStudy, by state.",
            ["namespace", "name", "state"],
            registry=self.registry,
        )
        self.hpo_best_value = Gauge(
            "stevie_operator_hpo_best_value",
            "Objective value of each HPOStudy's best trial (its first objective).",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.hpo_trial_duration = Histogram(
            "stevie_operator_hpo_trial_duration_seconds",
            "Wall-clock duration of finished HPO trials, by final state.",
            ["state"],
            registry=self.registry,
            buckets=(1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400),
        )
        self.pbt_fitness = Gauge(
            "stevie_operator_pbt_member_fitness",
            "Latest validation fitness of each PBT member.",
            ["namespace", "name", "member"],
            registry=self.registry,
        )
        self.pbt_exploits = Counter(
            "stevie_operator_pbt_exploits",
            "Exploit decisions (a member copied another), per population.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.pbt_intervals = Gauge(
            "stevie_operator_pbt_intervals_completed",
            "Member intervals completed, per population.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.pbt_interval_duration = Histogram(
            "stevie_operator_pbt_interval_duration_seconds",
            "Wall-clock duration of completed PBT member intervals (Job start to completion).",
            registry=self.registry,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
        )
        self._members: dict[tuple[str, str], set[str]] = {}
        self._phases: dict[Key, str] = {}
        self._sharpe: set[Key] = set()
        self._studies: dict[tuple[str, str], set[int]] = {}  # trial numbers seen finished
        self._best: set[tuple[str, str]] = set()

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

    def observe_study(
        self,
        namespace: str,
        name: str,
        counts: Mapping[str, int],
        best_value: float | None,
        finished: Iterable[tuple[int, str, float | None]],
    ) -> None:
        """Record an HPOStudy's trials by state, its best value, and the duration of each
        trial seen finished for the first time (``finished``: number, state, seconds)."""
        study = (namespace, name)
        for state in TRIAL_STATES:
            self.hpo_trials.labels(namespace, name, state).set(counts.get(state, 0))
        if best_value is not None:
            self.hpo_best_value.labels(namespace, name).set(best_value)
            self._best.add(study)
        elif study in self._best:
            self.hpo_best_value.remove(namespace, name)
            self._best.discard(study)
        first_sight = study not in self._studies
        seen = self._studies.setdefault(study, set())
        for number, state, seconds in finished:
            if number in seen:
                continue
            seen.add(number)
            if not first_sight and seconds is not None:
                self.hpo_trial_duration.labels(state).observe(seconds)

    def observe_population(
        self,
        namespace: str,
        name: str,
        *,
        fitness: Mapping[int, float],
        intervals_completed: int,
        new_exploits: int,
        interval_seconds: Iterable[float],
    ) -> None:
        """Record a PBTPopulation: latest fitness per member, intervals completed, the
        exploits and the durations of the intervals seen completed in this reconcile."""
        members = self._members.setdefault((namespace, name), set())
        for member, value in fitness.items():
            self.pbt_fitness.labels(namespace, name, str(member)).set(value)
            members.add(str(member))
        self.pbt_intervals.labels(namespace, name).set(intervals_completed)
        if new_exploits:
            self.pbt_exploits.labels(namespace, name).inc(new_exploits)
        for seconds in interval_seconds:
            self.pbt_interval_duration.observe(seconds)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a deleted resource from the gauges."""
        key = (kind, namespace, name)
        self._phases.pop(key, None)
        if key in self._sharpe:
            self.best_validation_sharpe.remove(*key)
            self._sharpe.discard(key)
        if kind == HPO_KIND and self._studies.pop((namespace, name), None) is not None:
            for state in TRIAL_STATES:
                self.hpo_trials.remove(namespace, name, state)
        members = self._members.pop((namespace, name), None) if kind == PBT_KIND else None
        if members is not None:
            for member in members:
                self.pbt_fitness.remove(namespace, name, member)
            self.pbt_intervals.remove(namespace, name)
            with contextlib.suppress(KeyError):
                self.pbt_exploits.remove(namespace, name)
        if kind == HPO_KIND and (namespace, name) in self._best:
            self.hpo_best_value.remove(namespace, name)
            self._best.discard((namespace, name))
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
