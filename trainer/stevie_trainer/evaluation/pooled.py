"""Pooled metrics of a multi-market run: one block with the keys of one market's.

Every reader of result.json (the operator's status, HPO's objective, the result table) reads
one ``validation`` and one ``test`` block; a multi-market run has one per market. The pooled
block gives each market equal weight:

- counts (``trades``, ``orders``, ``bars``) are summed over the markets;
- every other metric is the mean over the markets, and undefined (None) when it is
  undefined on any market: a policy that never trades on one market has no Sharpe there,
  and dropping that market would let a policy be selected for the markets it happens to
  trade on (so the model selection's pooled Sharpe is the mean of the per-market Sharpes,
  defined only when all of them are);
- ``bars_per_year`` is the markets' common value, or None when they differ.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from stevie_trainer.evaluation.performance import Performance

__all__ = ["COUNTS", "as_performance", "pool_metrics"]

COUNTS = frozenset({"trades", "orders", "bars"})

Metrics = Mapping[str, float | int | None]


def pool_metrics(per_market: Mapping[str, Metrics]) -> dict[str, float | int | None]:
    """The pooled block of per-market metric blocks (keys of the first market's)."""
    if not per_market:
        raise ValueError("no markets to pool")
    blocks = list(per_market.values())
    out: dict[str, float | int | None] = {}
    for key in blocks[0]:
        values = [b.get(key) for b in blocks]
        if key in COUNTS:
            out[key] = int(sum(int(v) for v in values if v is not None))
        elif key == "bars_per_year":
            out[key] = values[0] if len(set(values)) == 1 else None
        elif any(v is None or not math.isfinite(float(v)) for v in values):
            out[key] = None
        else:
            out[key] = math.fsum(float(v) for v in values if v is not None) / len(values)
    return out


def as_performance(metrics: Metrics) -> Performance:
    """A :class:`Performance` of a metrics block (None as nan), e.g. a pooled one."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Performance):
        value = metrics.get(f.name)
        values[f.name] = (0 if f.name in COUNTS else math.nan) if value is None else value
    return Performance(**values)
