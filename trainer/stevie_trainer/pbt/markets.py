"""Several markets in a PBT population (``template.data.markets``): validation and test.

A multi-market member trains on every market at once (the session's
:class:`~stevie_trainer.env.multivec.MultiMarketVecEnv`, as a TrainingRun does). Its interval
is scored on the pooled validation block (:mod:`~stevie_trainer.evaluation.pooled`, the
pooling a multi-market TrainingRun's model selection reads: its Sharpe is the mean of the
markets' Sharpes), beside each market's own block; its per-bar validation returns are the
markets' series joined end to end in the spec's market order, so their length is the pooled
block's ``bars`` (what :mod:`stevie_trainer.pbt.luck` reads, unchanged). The finish tests the
best member on every market's test split with a TrainingRun's
:func:`~stevie_trainer.rl.train.test_markets`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.base_class import BaseAlgorithm

from stevie_trainer.env.prepare import Prepared
from stevie_trainer.evaluation.performance import returns_from_equity
from stevie_trainer.evaluation.pooled import as_performance, pool_metrics
from stevie_trainer.rl.agent import validation_episode

__all__ = ["pooled_validation"]

Metrics = dict[str, float | int | None]


def pooled_validation(
    prepared: Prepared, model: BaseAlgorithm
) -> tuple[Metrics, dict[str, Metrics], npt.NDArray[np.float64]]:
    """A multi-market model on every market's validation split: the pooled block (as
    :func:`~stevie_trainer.rl.agent.validation_performance` gives it), each market's by name,
    and the markets' per-bar returns joined in the spec's order. One greedy pass a market."""
    episodes = [validation_episode(part, model) for part in prepared.parts]
    per_market = {
        part.market.name: episode.performance().to_dict()
        for part, episode in zip(prepared.parts, episodes, strict=True)
    }
    pooled = as_performance(pool_metrics(per_market)).to_dict()
    returns = np.concatenate([returns_from_equity(e.equity) for e in episodes])
    return pooled, per_market, returns
