"""TradingEnv: a gymnasium environment over one market, stepped by the shared kernel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from stevie_api.market import EnvSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import SimParams
from stevie_trainer.env.market import Bounds, MarketData, sim_params

Mode = Literal["train", "eval"]
OBS_LIMIT = 10.0


def observation_space(size: int) -> gym.spaces.Box:
    return gym.spaces.Box(low=-OBS_LIMIT, high=OBS_LIMIT, shape=(size,), dtype=np.float32)


class EpisodePlanner:
    """Where episodes start and end: random windows for training, one full pass for eval.

    Training starts are drawn uniformly from a candidate array: by default every bar that
    leaves room for a whole episode inside ``bounds``; a curriculum stage or concatenated
    (augmented) segments narrow it with :meth:`set_starts`.
    """

    def __init__(self, market: MarketData, bounds: Bounds, mode: Mode, length: int, what: str):
        self.first, self.last = market.tradable(bounds, what)
        self.mode = mode
        self.length = min(length, self.last - self.first)
        self.starts = np.arange(self.first, self.last - self.length + 1, dtype=np.int64)

    def set_starts(self, starts: npt.NDArray[np.int64]) -> None:
        """Restrict training episodes to start at ``starts`` (each must leave room for one)."""
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) == 0:
            raise ValueError("no episode start bars to choose from")
        if starts.min() < self.first or starts.max() > self.last - self.length:
            raise ValueError(
                f"episode starts must lie in [{self.first}, {self.last - self.length}] "
                f"(got {starts.min()}..{starts.max()})"
            )
        self.starts = starts

    def plan(self, rng: np.random.Generator) -> tuple[int, int]:
        """The (start, end) bars of the next episode of the environment drawing from ``rng``."""
        starts, ends = self.plan_many([rng])
        return int(starts[0]), int(ends[0])

    def plan_many(
        self, rngs: Sequence[np.random.Generator]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """:meth:`plan` for several environments at once, one draw from each of ``rngs``.

        The single and the batched environment both come here, so a seeded TradingEnv and
        the same-seeded slot of a VecTradingEnv draw the same episodes.
        """
        n = len(rngs)
        if self.mode == "eval":
            return np.full(n, self.first, dtype=np.int64), np.full(n, self.last, dtype=np.int64)
        # One uniform index per environment, floor(u * m) with u = rng.random(): u is j / 2^53
        # for a uniform integer j, so each of the m candidates gets floor or ceil of 2^53 / m
        # of the j's (rounding of u * m moves at most a couple of j's across each boundary):
        # a relative bias of order m / 2^53, nil for any real m. u <= 1 - 2^-53 keeps u * m
        # below m; the minimum only guards that. Why not rng.integers: ~1.1 us a call against
        # ~0.4 us, and a batch of 1024 environments restarts up to 1024 at once.
        m = len(self.starts)
        u = np.array([rng.random() for rng in rngs])
        starts = self.starts[np.minimum((u * m).astype(np.int64), m - 1)]
        return starts, starts + self.length


class TradingEnv(gym.Env[npt.NDArray[np.float32], np.int64]):
    """Single-market trading environment (see :mod:`stevie_trainer.env.kernel` for the rules).

    ``mode="train"`` starts each episode at a random bar of ``bounds`` and runs
    ``episode_length`` bars; ``mode="eval"`` makes one deterministic pass over all of them.
    Every step's ledger (positions and equity multipliers) is kept for the last episode, so
    an evaluation can be turned into trades and metrics afterwards.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        market: MarketData,
        spec: EnvSpec,
        *,
        bounds: Bounds | None = None,
        mode: Mode = "train",
        split_name: str = "data",
    ) -> None:
        super().__init__()
        self.market = market
        self.env_spec = spec
        self.bounds = bounds or (0, market.n_bars)
        self.mode: Mode = mode
        self.params: SimParams = sim_params(spec)
        self.planner = EpisodePlanner(market, self.bounds, mode, spec.episode_length, split_name)
        self.accounts = Accounts(1, self.params, market)
        self.action_space: gym.spaces.Discrete = gym.spaces.Discrete(self.params.n_actions)
        self.observation_space = cast(
            "gym.spaces.Space[npt.NDArray[np.float32]]", observation_space(self.accounts.obs_size)
        )
        self._idx = np.zeros(1, dtype=np.int64)
        self._action = np.zeros(1, dtype=np.int64)
        self.start_bar = 0
        self.ledger: list[npt.NDArray[np.float64]] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        start, end = self.planner.plan(self.np_random)
        self.start_bar = start
        self.accounts.reset(self._idx, np.array([start]), np.array([end]))
        self.ledger = []
        return self.accounts.observe()[0], self._info()

    def step(
        self, action: np.int64 | int
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        a = int(action)
        if not 0 <= a < self.params.n_actions:
            raise ValueError(f"action {a} outside Discrete({self.params.n_actions})")
        self._action[0] = a
        acc = self.accounts
        obs = acc.step_observe(self._action)[0]
        self.ledger.append(acc.ledger[0].copy())
        return (
            obs,
            float(acc.rewards[0]),
            bool(acc.terminated[0]),
            bool(acc.truncated[0]),
            self._info(),
        )

    def _info(self) -> dict[str, Any]:
        acc = self.accounts
        return {
            "equity": float(acc.equity[0]),
            "position": float(acc.pos[0]),
            "weight": float(acc.weight[0]),
            "bar": int(acc.t[0]),
        }

    # Read by expert policies and evaluation.
    @property
    def bar(self) -> int:
        return int(self.accounts.t[0])

    @property
    def position(self) -> float:
        """The target position the agent holds (its last chosen level)."""
        return float(self.accounts.pos[0])

    @property
    def weight(self) -> float:
        """The position's weight in equity now (it drifts with the price)."""
        return float(self.accounts.weight[0])

    @property
    def entry_price(self) -> float:
        return float(self.accounts.entry_px[0])

    def action_for_target(self, target: float) -> int:
        return int(self.accounts.actions_for_targets(np.array([target]))[0])
