"""PBT fitness: weights, terms, worst values, monotonicity (of validation metrics)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from stevie_api.pbt import FitnessWeights
from stevie_trainer.pbt.fitness import fitness, fitness_terms

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --------------------------------------------------------------------------- fitness


def test_fitness_default_weights_and_terms() -> None:
    metrics = {"sharpe": 2.0, "total_return": 0.1, "win_rate": 0.6, "stability": 0.9}
    t = fitness_terms(metrics)
    assert t["sharpe"] == pytest.approx(math.tanh(1.0))
    assert t["mean_profit"] == pytest.approx(math.tanh(1.0))
    assert (t["win_rate"], t["stability"]) == (0.6, 0.9)
    expected = 0.4 * math.tanh(1) + 0.3 * math.tanh(1) + 0.2 * 0.6 + 0.1 * 0.9
    assert fitness(metrics) == pytest.approx(expected)
    assert fitness(metrics, FitnessWeights()) == pytest.approx(expected)
    only_sharpe = fitness(metrics, {"sharpe": 1.0})
    assert only_sharpe == pytest.approx(math.tanh(1.0))
    # An explicit mean profit (over several episodes) wins over the total return.
    assert fitness_terms({**metrics, "mean_profit": -0.1})["mean_profit"] == pytest.approx(
        math.tanh(-1.0)
    )


def test_fitness_missing_and_nan_count_as_worst() -> None:
    worst = fitness({})
    assert worst == pytest.approx(-0.4 - 0.3 + 0.0 - 0.1)
    bad: dict[str, Any] = {
        "sharpe": float("nan"),
        "total_return": None,
        "win_rate": float("inf"),
        "stability": "x",
    }
    assert fitness(bad) == pytest.approx(worst)
    assert not math.isnan(fitness({"sharpe": float("nan")}))
    # Any real value beats the worst; bounded terms.
    assert fitness({"sharpe": -50.0, "total_return": -0.99}) >= worst
    assert -1 <= fitness({"sharpe": 1e9, "total_return": 1e9, "win_rate": 5, "stability": 2}) <= 1
    # A steady decline is not rewarded as stability.
    assert fitness_terms({"stability": 0.9, "total_return": -0.2})["stability"] == -0.9


def test_fitness_is_monotonic_in_each_metric() -> None:
    base = {"sharpe": 0.5, "total_return": 0.02, "win_rate": 0.5, "stability": 0.5}
    for key, step in (("sharpe", 0.5), ("total_return", 0.05), ("win_rate", 0.1)):
        assert fitness({**base, key: base[key] + step}) > fitness(base)
