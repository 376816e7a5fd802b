"""PBT fitness: one bounded score of a member's VALIDATION metrics (never the test split).

Default 0.4 tanh(Sharpe/2) + 0.3 tanh(profit/10%) + 0.2 win rate + 0.1 signed R^2 stability,
each term bounded so that one lucky metric cannot swamp the others. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from stevie_api.pbt import FitnessWeights

__all__ = [
    "PROFIT_SCALE",
    "SHARPE_SCALE",
    "WORST_FITNESS",
    "finite_float",
    "fitness",
    "fitness_terms",
]

SHARPE_SCALE = 2.0
"""Sharpe term = tanh(sharpe / 2): annualised Sharpe 1 -> 0.46, 2 -> 0.76, 4 -> 0.96."""
PROFIT_SCALE = 0.10
"""Profit term = tanh(profit / 0.10): +5% -> 0.46, +10% -> 0.76, -10% -> -0.76."""
WORST_FITNESS = -1.0e6
"""What a non-finite fitness is recorded as (below any fitness() value)."""

_WORST_TERM = {"sharpe": -1.0, "mean_profit": -1.0, "win_rate": 0.0, "stability": -1.0}


def finite_float(value: object) -> float | None:
    """A finite float, or None (None, booleans, strings, NaN, infinities, huge ints)."""
    if value is None or isinstance(value, bool | str):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _finite(metrics: Mapping[str, Any], key: str) -> float | None:
    return finite_float(metrics.get(key))


def fitness_terms(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The four normalised fitness terms of VALIDATION metrics (``Performance.to_dict()`` keys).

    - ``sharpe`` = tanh(sharpe / SHARPE_SCALE), in [-1, 1]: bounded, so one lucky Sharpe of
      8 cannot swamp the other terms, yet monotonic over the usual range (-4..4).
    - ``mean_profit`` = tanh(profit / PROFIT_SCALE), in [-1, 1], where profit is
      ``mean_profit`` (mean over several validation episodes) if given, else ``total_return``
      (the profit of the one validation episode). Not the mean trade return: it is undefined
      when the policy does not trade and ignores how often it trades.
    - ``win_rate`` in [0, 1] as is (share of round trips that made money).
    - ``stability`` = R^2 of log equity against time, in [0, 1], made negative when the total
      return is negative (a steady decline is not the stability we want): in [-1, 1].

    A missing, None or non-finite metric gives that term its worst value (-1, or 0 for the win
    rate): a policy that never trades (no Sharpe, no win rate, no stability) ranks low.
    """
    sharpe = _finite(metrics, "sharpe")
    profit = _finite(metrics, "mean_profit")
    total = _finite(metrics, "total_return")
    profit = total if profit is None else profit
    win = _finite(metrics, "win_rate")
    stab = _finite(metrics, "stability")
    terms = dict(_WORST_TERM)
    if sharpe is not None:
        terms["sharpe"] = math.tanh(sharpe / SHARPE_SCALE)
    if profit is not None:
        terms["mean_profit"] = math.tanh(profit / PROFIT_SCALE)
    if win is not None:
        terms["win_rate"] = min(max(win, 0.0), 1.0)
    if stab is not None:
        stab = min(max(stab, 0.0), 1.0)
        terms["stability"] = -stab if total is not None and total < 0 else stab
    return terms


def fitness(
    metrics: Mapping[str, Any],
    weights: FitnessWeights | Mapping[str, float] | None = None,
) -> float:
    """Weighted sum of :func:`fitness_terms` (default 0.4 Sharpe + 0.3 mean profit + 0.2 win
    rate + 0.1 stability). Never NaN; with weights summing to 1 it lies in [-0.9, 1]."""
    if weights is None:
        weights = FitnessWeights()
    w = weights.as_dict() if isinstance(weights, FitnessWeights) else dict(weights)
    terms = fitness_terms(metrics)
    return float(sum(float(w.get(key, 0.0)) * value for key, value in terms.items()))
