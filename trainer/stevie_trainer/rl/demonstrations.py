"""Expert demonstrations for behaviour cloning: what the agent would see and what the RSI/MA
expert did, on random training episodes (:func:`collect_demonstrations`), and a purged
chronological validation split of them (:func:`split_demonstrations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stevie_api.market import EnvSpec, ExpertSpec
from stevie_trainer.env.market import Bounds, MarketData
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.evaluation.baselines import ExpertPolicy

__all__ = [
    "Demonstrations",
    "action_distribution",
    "collect_demonstrations",
    "split_demonstrations",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Demonstrations:
    """(observation, expert action) pairs; row i was decided at relative time ``time[i]``."""

    obs: F32  # [M, D] exactly as the agent observes them
    actions: I64  # [M] the expert's actions
    time: F64  # [M] position of the decision bar within its split, 0 (first) .. 1 (last)
    holds: B  # [M] the action keeps the position unchanged
    n_actions: int
    purge: float = 0.0  # an observation window as a fraction of the split (the widest)

    def __post_init__(self) -> None:
        m = len(self.actions)
        if self.obs.ndim != 2 or len(self.obs) != m or len(self.time) != m or len(self.holds) != m:
            raise ValueError(
                f"demonstrations disagree in length: obs {self.obs.shape}, actions {m}, "
                f"time {len(self.time)}, holds {len(self.holds)}"
            )

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def expert_distribution(self) -> F64:
        """Share of each action among the expert's actions."""
        return action_distribution(self.actions, self.n_actions)

    @classmethod
    def concatenate(cls, parts: Sequence[Demonstrations]) -> Demonstrations:
        """One set from several (e.g. the training split and its augmented copies)."""
        if not parts:
            raise ValueError("concatenate needs at least one set of demonstrations")
        n_actions = {p.n_actions for p in parts}
        widths = {p.obs.shape[1] for p in parts}
        if len(n_actions) != 1 or len(widths) != 1:
            raise ValueError("demonstrations of different action or observation spaces")
        return cls(
            obs=np.concatenate([p.obs for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            time=np.concatenate([p.time for p in parts]),
            holds=np.concatenate([p.holds for p in parts]),
            n_actions=n_actions.pop(),
            purge=max(p.purge for p in parts),
        )


def collect_demonstrations(
    market: MarketData,
    env_spec: EnvSpec,
    expert: ExpertSpec,
    bounds: Bounds,
    *,
    n_envs: int,
    steps: int,
    seed: int,
) -> Demonstrations:
    """``n_envs * steps`` decisions of the expert on random training episodes in ``bounds``.

    For several markets (augmented copies), call once per market and
    :meth:`Demonstrations.concatenate` the results.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    env = VecTradingEnv(
        market,
        env_spec,
        n_envs,
        bounds=bounds,
        mode="train",
        split_name="training split",
        seed=seed,
    )
    policy = ExpertPolicy(market.features.indicators, expert)
    acc = env.accounts
    m = n_envs * steps
    obs_out = np.empty((m, acc.obs_size), dtype=np.float32)
    actions = np.empty(m, dtype=np.int64)
    bars = np.empty(m, dtype=np.int64)
    holds = np.empty(m, dtype=np.bool_)
    obs = env.reset()
    assert isinstance(obs, np.ndarray)
    for k in range(steps):
        rows = slice(k * n_envs, (k + 1) * n_envs)
        act = acc.actions_for_targets(policy.targets(acc))
        obs_out[rows] = obs
        actions[rows] = act
        bars[rows] = acc.t
        holds[rows] = act == acc.actions_for_targets(acc.pos)
        obs, _, _, _ = env.step(act)
    lo, hi = env.planner.first, env.planner.last
    span = max(hi - lo, 1)
    return Demonstrations(
        obs=obs_out,
        actions=actions,
        time=(bars - lo) / span,
        holds=holds,
        n_actions=env.params.n_actions,
        purge=env_spec.window / span,
    )


def split_demonstrations(demos: Demonstrations, validation_fraction: float) -> tuple[I64, I64]:
    """(train rows, validation rows): validation is the latest ``validation_fraction`` of the
    demonstrations by bar; training rows within an observation window before it are purged."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1) (got {validation_fraction})")
    cut = float(np.quantile(demos.time, 1.0 - validation_fraction))
    val = np.flatnonzero(demos.time >= cut)
    train = np.flatnonzero(demos.time < cut - demos.purge)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"too few demonstrations ({len(demos)}) for a training and a validation block: "
            "collect more steps or spread them over a longer split"
        )
    return train.astype(np.int64), val.astype(np.int64)


# --------------------------------------------------------------------------- helpers


def action_distribution(actions: npt.NDArray[np.integer[Any]], n_actions: int) -> F64:
    """Share of each of ``n_actions`` actions among ``actions``."""
    counts = np.bincount(actions, minlength=n_actions).astype(np.float64)
    return np.asarray(counts / max(counts.sum(), 1.0), dtype=np.float64)
