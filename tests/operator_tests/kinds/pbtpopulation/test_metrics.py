"""PBTPopulation metrics: fitness per member, exploits, intervals, durations."""

from __future__ import annotations

from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.kinds.pbtpopulation.metrics import PBTPopulationMetrics


def value(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def test_pbt_population_fitness_exploits_intervals_and_durations() -> None:
    m = OperatorMetrics()
    own = m.of("PBTPopulation", PBTPopulationMetrics)
    labels = {"namespace": "ns", "name": "pop"}
    own.observe("ns", "pop", fitness={0: 0.5, 1: -0.2}, intervals_completed=2,
                         new_exploits=1, interval_seconds=[30.0, 50.0])  # fmt: skip
    own.observe("ns", "pop", fitness={1: 0.3}, intervals_completed=3,
                         new_exploits=2, interval_seconds=[])  # fmt: skip
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="1") == 0.3
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="0") == 0.5
    assert value(m, "stevie_operator_pbt_exploits_total", **labels) == 3
    assert value(m, "stevie_operator_pbt_intervals_completed", **labels) == 3
    assert value(m, "stevie_operator_pbt_interval_duration_seconds_count") == 2
    assert value(m, "stevie_operator_pbt_interval_duration_seconds_sum") == 80
    m.forget("PBTPopulation", "ns", "pop")
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="0") is None
    assert value(m, "stevie_operator_pbt_exploits_total", **labels) is None
