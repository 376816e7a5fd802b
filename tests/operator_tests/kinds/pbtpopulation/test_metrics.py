"""PBTPopulation metrics: fitness per member, exploits, intervals, durations, and the clock
of the last completed interval."""

from __future__ import annotations

from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.kinds.pbtpopulation.metrics import PBTPopulationMetrics

LAST = "stevie_operator_pbt_last_interval_timestamp_seconds"


def value(m: OperatorMetrics, metric: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(metric, labels)


def test_pbt_population_fitness_exploits_intervals_and_durations() -> None:
    m = OperatorMetrics()
    own = m.of("PBTPopulation", PBTPopulationMetrics)
    labels = {"namespace": "ns", "name": "pop"}
    own.observe("ns", "pop", fitness={}, intervals_completed=0, new_exploits=0,
                interval_seconds=[])  # fmt: skip
    assert value(m, "stevie_operator_pbt_exploits_total", **labels) == 0  # exists from the start
    own.observe("ns", "pop", fitness={0: 0.5, 1: -0.2}, intervals_completed=2,
                         new_exploits=1, interval_seconds=[30.0, 50.0])  # fmt: skip
    own.observe("ns", "pop", fitness={1: 0.3}, intervals_completed=3,
                         new_exploits=2, interval_seconds=[])  # fmt: skip
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="1") == 0.3
    assert value(m, "stevie_operator_pbt_member_fitness", **labels, member="0") == 0.5
    assert value(m, "stevie_operator_pbt_exploits_total", **labels) == 3
    assert value(m, "stevie_operator_pbt_intervals_completed", **labels) == 3
    assert value(m, "stevie_operator_pbt_interval_duration_seconds_count", **labels) == 2
    assert value(m, "stevie_operator_pbt_interval_duration_seconds_sum", **labels) == 80
    m.forget("PBTPopulation", "ns", "pop")
    families = ("member_fitness", "exploits_total", "intervals_completed",
                "interval_duration_seconds_count", "last_interval_timestamp_seconds")  # fmt: skip
    for family in families:
        extra = {"member": "0"} if family == "member_fitness" else {}
        assert value(m, f"stevie_operator_pbt_{family}", **labels, **extra) is None, family


def test_the_last_interval_clock_restarts_on_completed_intervals_while_training() -> None:
    m = OperatorMetrics()
    own = m.of("PBTPopulation", PBTPopulationMetrics)
    pop = {"namespace": "ns", "name": "pop"}

    def seen(completed: int, now: float, training: bool = True) -> float | None:
        own.observe("ns", "pop", fitness={}, intervals_completed=completed, new_exploits=0,
                    interval_seconds=[], training=training, now=now)  # fmt: skip
        return value(m, LAST, **pop)

    assert seen(0, now=100.0) == 100.0  # first sight: the clock starts
    assert seen(0, now=160.0) == 100.0  # nothing completed: it keeps running
    assert seen(2, now=200.0) == 200.0  # intervals completed
    assert seen(2, now=260.0) == 200.0
    assert seen(4, now=300.0, training=False) is None  # finishing: no clock, no alert
    own.stopped("ns", "pop")  # no error when already stopped
    assert seen(4, now=400.0) == 400.0  # training again (never in practice): a fresh clock
    own.stopped("ns", "pop")
    assert value(m, LAST, **pop) is None
