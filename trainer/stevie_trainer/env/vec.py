"""VecTradingEnv: N trading environments stepped at once by one numba kernel.

It is an SB3 ``VecEnv`` with the semantics of ``DummyVecEnv([TradingEnv] * N)`` seeded with
``seed + i`` (a test drives both with the same actions and compares every reward and
observation), minus the per-environment Python overhead.

Infos: SB3 reads them and only ever writes into the infos of environments that just finished
(terminal observation, episode statistics). So environments that did not finish share one
read-only empty mapping instead of a fresh dict each (1024 dicts per step cost more than the
whole simulation); finished ones get a real dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from stevie_api.market import EnvSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.market import Bounds, MarketData, sim_params
from stevie_trainer.env.trading import EpisodePlanner, Mode, observation_space

_NO_INFO: Any = MappingProxyType({})


class InProcessVecEnv(VecEnv):
    """The VecEnv plumbing of an env whose accounts all live in this process (nothing to
    close; attributes and methods are the env's own, the same for every index)."""

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices) if isinstance(indices, Iterable) else [int(indices)]


class VecTradingEnv(InProcessVecEnv):
    """``n_envs`` accounts trading one market (random episode windows in ``train`` mode)."""

    def __init__(
        self,
        market: MarketData,
        spec: EnvSpec,
        n_envs: int,
        *,
        bounds: Bounds | None = None,
        mode: Mode = "train",
        split_name: str = "data",
        seed: int | None = None,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1 (got {n_envs})")
        self.market = market
        self.env_spec = spec
        self.mode: Mode = mode
        self.params = sim_params(spec)
        self.bounds = bounds or (0, market.n_bars)
        self.planner = EpisodePlanner(market, self.bounds, mode, spec.episode_length, split_name)
        self.accounts = Accounts(n_envs, self.params, market, record=False)
        self._rngs = [np.random.default_rng() for _ in range(n_envs)]
        self._actions = np.zeros(n_envs, dtype=np.int64)
        self.render_mode = None
        super().__init__(
            n_envs,
            observation_space(self.accounts.obs_size),
            gym.spaces.Discrete(self.params.n_actions),
        )
        if seed is not None:
            self.seed(seed)

    # --- VecEnv API ---------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        for i, s in enumerate(self._seeds):
            if s is not None:
                self._rngs[i] = np.random.default_rng(s)
        self._reset_seeds()
        self._reset_options()
        self._restart(np.arange(self.num_envs, dtype=np.int64))
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.accounts.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        acc = self.accounts
        obs = acc.step_observe(self._actions)
        dones = acc.dones.copy()
        infos: list[dict[str, Any]] = [_NO_INFO] * self.num_envs
        if acc.n_done:
            done_idx = np.flatnonzero(dones)
            # One copy for all terminal observations (rows of it stay valid when the
            # restarts overwrite obs), and plain Python values fetched in bulk.
            terminal = obs[done_idx]
            truncated = acc.truncated[done_idx].tolist()  # never set together with terminated
            equity = acc.equity[done_idx].tolist()
            for j, i in enumerate(done_idx.tolist()):
                infos[i] = {
                    "terminal_observation": terminal[j],
                    "TimeLimit.truncated": truncated[j],
                    "equity": equity[j],
                }
            self._restart(done_idx, obs)
        return obs, acc.rewards.copy(), dones, infos

    # --- helpers ------------------------------------------------------------------------
    def _restart(
        self, idx: npt.NDArray[np.intp], obs: npt.NDArray[np.float32] | None = None
    ) -> None:
        """New episodes for envs ``idx``; with ``obs``, their first observations go to its rows."""
        rngs = self._rngs
        starts, ends = self.planner.plan_many([rngs[i] for i in idx.tolist()])
        self.accounts.reset(idx, starts, ends, obs)

    def actions_for_targets(self, targets: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        return self.accounts.actions_for_targets(targets)
