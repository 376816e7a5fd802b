"""The curriculum of a prepared run: regime labels of its training market, start pools."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stevie_trainer.env.prepare import Prepared
from stevie_trainer.rl.curriculum import Curriculum, label_regimes, regime_edges, stage_starts


def regime_start_pools(prepared: Prepared) -> list[npt.NDArray[np.int64]]:
    """Episode start bars per volatility regime (0 = stable .. 3 = turbulent).

    Regime edges are the quartiles of realised volatility over the real training split
    only; augmented copies are labelled on the same scale, and each copy's pools stay inside
    it (no episode crosses from one copy into the next).
    """
    spec = prepared.spec
    edges = regime_edges(prepared.market.features.indicators.volatility, prepared.splits.train)
    train = prepared.train_market
    labels = label_regimes(train.features.indicators.volatility, prepared.train_bounds, edges=edges)
    pools: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(len(edges) + 1)]
    for first, last in prepared.ranges:
        for regime, starts in enumerate(stage_starts(labels, first, last, spec.env.episode_length)):
            pools[regime].append(starts)
    return [np.concatenate(p) if p else np.zeros(0, dtype=np.int64) for p in pools]


def make_curriculum(prepared: Prepared) -> Curriculum:
    """The spec's curriculum; a stage never holds more than its share of the budget."""
    spec = prepared.spec
    n = len(spec.curriculum.stages)
    return Curriculum(
        spec.curriculum,
        total_timesteps=spec.total_timesteps,
        max_steps_per_stage=max(1, spec.total_timesteps // n),
    )
