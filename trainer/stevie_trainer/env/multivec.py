"""MultiMarketVecEnv: one batched env whose accounts trade several markets (``data.markets``).

The ``n_envs`` environments are cut into contiguous blocks, one block per market (sizes
differ by at most one), and each block is a :class:`VecTradingEnv` over its market's own
arrays. So an episode reads one market's bars only, by construction (an account never holds
another market's arrays, so no episode can straddle two markets), and every market trades in
every rollout. Each market keeps its own bars per year, so its borrow cost per bar is its own
(one concatenated array would have one). Markets are weighted equally, by environments, not
by bars: a short market is revisited more often rather than drowned by a long one.

Environment ``i`` is seeded ``seed + i`` as in a single-market VecTradingEnv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvObs,
    VecEnvStepReturn,
)

from stevie_api.market import EnvSpec
from stevie_trainer.env.market import Bounds, MarketData
from stevie_trainer.env.vec import InProcessVecEnv, VecTradingEnv

__all__ = ["MarketLeg", "MultiMarketVecEnv", "block_sizes"]


@dataclass(frozen=True)
class MarketLeg:
    """One market's training data: its (possibly augmented) market, bounds, episode starts."""

    market: MarketData
    bounds: Bounds
    starts: npt.NDArray[np.int64]


def block_sizes(n_envs: int, n_markets: int) -> list[int]:
    """Environments per market: ``n_envs`` shared as evenly as possible, each at least one."""
    if n_markets < 1 or n_envs < n_markets:
        raise ValueError(f"{n_envs} environments cannot trade {n_markets} markets")
    base, extra = divmod(n_envs, n_markets)
    return [base + (k < extra) for k in range(n_markets)]


class MultiMarketVecEnv(InProcessVecEnv):
    """``n_envs`` accounts over several markets, in one contiguous block of envs per market."""

    def __init__(
        self, legs: Sequence[MarketLeg], spec: EnvSpec, n_envs: int, *, seed: int | None = None
    ) -> None:
        sizes = block_sizes(n_envs, len(legs))
        self.groups: list[VecTradingEnv] = []
        self.blocks: list[slice] = []
        first = 0
        for leg, size in zip(legs, sizes, strict=True):
            group = VecTradingEnv(
                leg.market,
                spec,
                size,
                bounds=leg.bounds,
                split_name=f"train split of {leg.market.name}",
            )
            group.planner.set_starts(leg.starts)
            self.groups.append(group)
            self.blocks.append(slice(first, first + size))
            first += size
        spaces = {(g.observation_space.shape, g.action_space.n) for g in self.groups}  # type: ignore[attr-defined]
        if len(spaces) != 1:
            raise ValueError("all markets must give observations and actions of one shape")
        self.env_spec = spec
        self.render_mode = None
        self._actions = np.zeros(n_envs, dtype=np.int64)
        lead = self.groups[0]
        super().__init__(n_envs, lead.observation_space, lead.action_space)
        if seed is not None:
            self.seed(seed)

    @property
    def market_of_env(self) -> npt.NDArray[np.int64]:
        """The market index each environment trades."""
        return np.repeat(np.arange(len(self.groups)), [g.num_envs for g in self.groups])

    # --- VecEnv API ---------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        for group, block in zip(self.groups, self.blocks, strict=True):
            group.seed(None if seed is None else seed + block.start)
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset(self) -> VecEnvObs:
        obs = np.concatenate([np.asarray(g.reset()) for g in self.groups])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        results = [g.step(self._actions[b]) for g, b in zip(self.groups, self.blocks, strict=True)]
        infos: list[dict[str, Any]] = []
        for k, (_, _, _, group_infos) in enumerate(results):
            for info in group_infos:
                if "terminal_observation" in info:  # a real dict (see VecTradingEnv)
                    info["market"] = k
                infos.append(info)
        obs = np.concatenate([np.asarray(r[0]) for r in results])
        rewards = np.concatenate([r[1] for r in results])
        dones = np.concatenate([r[2] for r in results])
        return obs, rewards, dones, infos
