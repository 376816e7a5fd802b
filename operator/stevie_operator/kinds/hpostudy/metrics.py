"""HPOStudy metrics (beside the shared families):

- ``stevie_operator_hpo_trials{namespace,name,state}``: trials of each HPOStudy by state
  (running, completed, pruned, failed);
- ``stevie_operator_hpo_best_value{namespace,name}``: the best trial's (first) objective value;
- ``stevie_operator_hpo_trial_duration_seconds{namespace,name,state}``: wall-clock time of
  finished trials (Optuna's start to completion), observed once per trial when the operator
  sees it finished; state is the final one (completed, pruned, failed).
  Trials that finished before the operator first saw their study (e.g. while it was
  restarting) are not observed: a new process would otherwise count them a second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Gauge, Histogram

from stevie_operator.framework.metrics import KindMetrics, remove_series

__all__ = ["FINISHED_STATES", "TRIAL_STATES", "HPOStudyMetrics"]

TRIAL_STATES = ("running", "completed", "pruned", "failed")
FINISHED_STATES = ("completed", "pruned", "failed")


class HPOStudyMetrics(KindMetrics):
    """The families of HPOStudies."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.trials = Gauge(
            "stevie_operator_hpo_trials",
            "Trials of each HPOStudy, by state.",
            ["namespace", "name", "state"],
            registry=registry,
        )
        self.best_value = Gauge(
            "stevie_operator_hpo_best_value",
            "Objective value of each HPOStudy's best trial (its first objective).",
            ["namespace", "name"],
            registry=registry,
        )
        self.trial_duration = Histogram(
            "stevie_operator_hpo_trial_duration_seconds",
            "Wall-clock duration of finished HPO trials, by study and final state.",
            ["namespace", "name", "state"],
            registry=registry,
            buckets=(1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400),
        )
        self._seen: dict[tuple[str, str], set[int]] = {}  # trial numbers seen finished

    def observe(
        self,
        namespace: str,
        name: str,
        counts: Mapping[str, int],
        best_value: float | None,
        finished: Iterable[tuple[int, str, float | None]],
    ) -> None:
        """Record a study's trials by state, its best value, and the duration of each trial
        seen finished for the first time (``finished``: number, state, seconds)."""
        for state in TRIAL_STATES:
            self.trials.labels(namespace, name, state).set(counts.get(state, 0))
        if best_value is not None:
            self.best_value.labels(namespace, name).set(best_value)
        else:
            remove_series(self.best_value, namespace, name)
        first_sight = (namespace, name) not in self._seen
        seen = self._seen.setdefault((namespace, name), set())
        for number, state, seconds in finished:
            if number in seen:
                continue
            seen.add(number)
            if not first_sight and seconds is not None:
                self.trial_duration.labels(namespace, name, state).observe(seconds)

    def forget(self, namespace: str, name: str) -> None:
        if self._seen.pop((namespace, name), None) is not None:
            for state in TRIAL_STATES:
                remove_series(self.trials, namespace, name, state)
            for state in FINISHED_STATES:
                remove_series(self.trial_duration, namespace, name, state)
        remove_series(self.best_value, namespace, name)
