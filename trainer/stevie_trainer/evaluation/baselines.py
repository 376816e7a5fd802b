"""Baseline policies: buy-and-hold, the RSI/MA expert heuristic, and a seeded random policy.

A policy maps the state of N accounts (their observations, bars, positions and entry prices)
to N actions. Baselines decide on prices and indicators up to the current bar only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from stevie_api.market import ExpertSpec
from stevie_trainer.data.features import Indicators
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import SCHEME_TARGET, SimParams

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

BASELINES = ("buy-and-hold", "expert", "random")


class Policy(Protocol):
    name: str

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> I64:
        """Actions for every account, given their observations and state."""
        ...


def long_limit(params: SimParams) -> float:
    """The largest long position the action space allows."""
    if params.scheme == SCHEME_TARGET:
        return float(np.max(params.levels))
    return params.max_position


def short_limit(params: SimParams) -> float:
    """The largest short position (as a positive number) the action space allows."""
    if params.scheme == SCHEME_TARGET:
        return float(max(0.0, -np.min(params.levels)))
    return -params.min_position


class BuyAndHold:
    """Go fully long at the first decision and hold to the end."""

    name = "buy-and-hold"

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> I64:
        target = np.full(accounts.n, long_limit(accounts.params))
        return accounts.actions_for_targets(target)


class RandomPolicy:
    """Uniformly random actions from a seeded generator."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> I64:
        return self.rng.integers(0, accounts.params.n_actions, size=accounts.n).astype(np.int64)


def expert_targets(
    ind: Indicators,
    spec: ExpertSpec,
    t: I64,
    pos: F64,
    entry_px: F64,
    *,
    long_max: float,
    short_max: float,
) -> F64:
    """The seed's expert heuristic, for accounts at bars ``t`` holding ``pos``.

    Signals: RSI below ``rsiOversold`` or the fast MA crossing above the slow MA is a buy;
    RSI above ``rsiOverbought`` or the fast MA crossing below is a sell. Sizing: full size
    when RSI and the MA trend agree, half size on a single signal. Risk management: a
    position is closed at ``stopLoss`` loss or ``takeProfit`` gain from its entry price
    (judged on the close) and not re-entered on the same bar. A sell flips a long to short
    when shorts are allowed; a buy flips a short to long.
    """
    rsi = ind.rsi[t]
    fast, slow = ind.ma_fast[t], ind.ma_slow[t]
    fast_prev, slow_prev = ind.ma_fast[t - 1], ind.ma_slow[t - 1]
    close = ind.close[t]
    bull_cross = (fast > slow) & (fast_prev <= slow_prev)
    bear_cross = (fast < slow) & (fast_prev >= slow_prev)
    rsi_buy = rsi < spec.rsi_oversold
    rsi_sell = rsi > spec.rsi_overbought
    buy = rsi_buy | bull_cross
    sell = rsi_sell | bear_cross
    trend_up = fast > slow
    long_size = np.where((rsi_buy & trend_up) | (bull_cross & (rsi < 50.0)), 1.0, 0.5) * long_max
    short_size = np.where((rsi_sell & ~trend_up) | (bear_cross & (rsi > 50.0)), 1.0, 0.5)
    short_size = short_size * short_max

    held = pos != 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        trade_ret = np.where(held, np.sign(pos) * (close / entry_px - 1.0), 0.0)
    stopped = held & ((trade_ret <= -spec.stop_loss) | (trade_ret >= spec.take_profit))

    target = pos.astype(np.float64, copy=True)
    target[((pos > 0) & (sell | stopped)) | ((pos < 0) & (buy | stopped))] = 0.0
    enter_long = buy & ~sell & (target <= 0.0) & ~(stopped & (pos > 0)) & (long_max > 0)
    target = np.where(enter_long, long_size, target)
    can_short = spec.allow_short and short_max > 0
    enter_short = sell & ~buy & (target >= 0.0) & ~(stopped & (pos < 0)) & can_short
    return np.where(enter_short, -short_size, target)


class ExpertPolicy:
    """The RSI 30/70 + MA 10/30 crossover expert with stops and sizing."""

    name = "expert"

    def __init__(self, indicators: Indicators, spec: ExpertSpec) -> None:
        self.indicators = indicators
        self.expert_spec = spec

    def targets(self, accounts: Accounts, idx: I64 | None = None) -> F64:
        sel = slice(None) if idx is None else idx
        return expert_targets(
            self.indicators,
            self.expert_spec,
            accounts.t[sel],
            accounts.pos[sel],
            accounts.entry_px[sel],
            long_max=long_limit(accounts.params),
            short_max=short_limit(accounts.params),
        )

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> I64:
        return accounts.actions_for_targets(self.targets(accounts))


def make_baseline(name: str, indicators: Indicators, expert: ExpertSpec, seed: int = 0) -> Policy:
    if name == "buy-and-hold":
        return BuyAndHold()
    if name == "expert":
        return ExpertPolicy(indicators, expert)
    if name == "random":
        return RandomPolicy(seed)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(BASELINES)}")
