"""Accounts: N trading accounts over one market, stepped by the numba kernel
(:mod:`stevie_trainer.env.kernel` has the rules); the engine of both environments."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from stevie_trainer.env.kernel import (
    ACCOUNT_FEATURES,
    BAR,
    BARS_IN,
    DSR_A,
    DSR_B,
    END,
    ENTRY_EQ,
    ENTRY_PX,
    EQUITY,
    F32,
    F64,
    HOLD,
    I64,
    LEDGER_COLUMNS,
    NB,
    NC,
    NS,
    PEAK,
    POS,
    SCHEME_TRADE,
    TRADED,
    WEIGHT,
    SimParams,
    _obs_kernel,
    _reset_kernel,
    _step_kernel,
)

__all__ = ["Accounts", "Prices"]


class Prices(Protocol):
    """What the kernel reads of a market (MarketData has it)."""

    @property
    def open(self) -> F64: ...
    @property
    def high(self) -> F64: ...
    @property
    def close(self) -> F64: ...
    @property
    def observed(self) -> F32: ...
    @property
    def bars_per_year(self) -> float: ...


class Accounts:
    """State of N trading accounts over one market; the engine of both environments."""

    def __init__(self, n: int, params: SimParams, prices: Prices, *, record: bool = True) -> None:
        """``prices.observed``: [T, F] float32 features, defined (no NaN) from the first
        observable bar on.

        ``record``: keep each step's ledger row per account (evaluation needs it to rebuild
        trades; training does not).
        """
        self.n = n
        self.params = params
        features = prices.observed
        self.open = np.ascontiguousarray(prices.open, dtype=np.float64)
        self.close = np.ascontiguousarray(prices.close, dtype=np.float64)
        high = np.maximum(np.asarray(prices.high, dtype=np.float64), self.open)
        bars = np.zeros((len(self.open), NB))
        bars[1:, 0] = self.open[1:] / self.close[:-1] - 1.0
        bars[:, 1] = self.close / self.open - 1.0
        bars[:, 2] = self.open
        bars[:, 3] = high / self.open - 1.0
        self.n_features = features.shape[1]
        # Flat features, padded with ACCOUNT_FEATURES zeros (see _observe_one).
        self.flat_features = np.zeros(features.size + ACCOUNT_FEATURES, dtype=np.float32)
        self.flat_features[: features.size] = np.asarray(features, dtype=np.float32).reshape(-1)
        self.obs_size = params.window * self.n_features + ACCOUNT_FEATURES
        self._market = (bars.reshape(-1), self.flat_features, self.n_features, params.window)
        self._kernel_params = (
            params.scheme,
            np.ascontiguousarray(params.levels, dtype=np.float64),
            float(params.trade_size),
            float(params.min_position),
            float(params.max_position),
            float(params.cost_rate),
            params.reward,
            float(params.reward_scale),
            float(params.drawdown_penalty),
            float(params.sharpe_eta),
            float(params.rebalance_threshold),
            float(params.borrow_rate) / float(prices.bars_per_year),
            float(params.maintenance_margin),
            float(params.no_trade_band),
            int(params.min_hold_bars),
            float(params.turnover_penalty),
        )
        # The public per-account arrays are (strided) column views of the packed records.
        acct = np.zeros((n, NS))
        clock = np.zeros((n, NC), dtype=np.int64)
        self._acct, self._clock = acct.reshape(-1), clock.reshape(-1)
        # pos: the target the agent holds (its action state); weight: what the position weighs
        self.pos, self.equity, self.peak = acct[:, POS], acct[:, EQUITY], acct[:, PEAK]
        self.entry_eq, self.entry_px = acct[:, ENTRY_EQ], acct[:, ENTRY_PX]
        self.dsr_a, self.dsr_b = acct[:, DSR_A], acct[:, DSR_B]
        self.weight, self.traded = acct[:, WEIGHT], acct[:, TRADED]
        self.t, self.end, self.bars_in = clock[:, BAR], clock[:, END], clock[:, BARS_IN]
        self.hold = clock[:, HOLD]  # steps in which the target cannot change yet
        self._flags = np.zeros((3, n), dtype=bool)
        self.terminated, self.truncated, self.dones = self._flags
        self.rewards = np.zeros(n, dtype=np.float32)
        self.n_done = 0
        self._no_obs = np.empty((0, self.obs_size), dtype=np.float32)
        # Per step and account: the L_* columns (see LEDGER_COLUMNS).
        self.ledger = np.zeros((n if record else 0, LEDGER_COLUMNS))
        self._results = (self.rewards, self._flags, self.ledger)
        self._all = np.arange(n, dtype=np.int64)
        self.reset(self._all, self.t.copy(), self.end.copy())

    def reset(self, idx: I64, starts: I64, ends: I64, out: F32 | None = None) -> None:
        """Start accounts ``idx`` flat with equity 1 at bars ``starts``, ending at ``ends``.

        With ``out`` ([N, obs_size]), also write their first observations into its rows idx.
        """
        _reset_kernel(
            self._market,
            self._acct,
            self._clock,
            np.asarray(idx, dtype=np.int64),
            np.asarray(starts, dtype=np.int64),
            np.asarray(ends, dtype=np.int64),
            self._no_obs if out is None else out,
        )

    def step(self, actions: I64) -> None:
        """Advance every account one bar; results land in rewards/terminated/truncated/ledger."""
        self.n_done = _step_kernel(
            actions,
            self._kernel_params,
            self._market,
            self._acct,
            self._clock,
            self._results,
            self._no_obs,
        )

    def step_observe(self, actions: I64) -> F32:
        """:meth:`step`, then :meth:`observe` of every account, in one pass."""
        # A fresh array each step: SB3 keeps references to the observations it is given.
        out = np.empty((self.n, self.obs_size), dtype=np.float32)
        self.n_done = _step_kernel(
            actions, self._kernel_params, self._market, self._acct, self._clock, self._results, out
        )
        return out

    def observe(self, idx: I64 | None = None) -> F32:
        """Observations of accounts ``idx`` (all by default), as a new float32 array."""
        idx = self._all if idx is None else np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.obs_size), dtype=np.float32)
        rows = self._all if idx is self._all else np.arange(len(idx), dtype=np.int64)
        _obs_kernel(self._market, self._acct, self._clock, idx, out, rows)
        return out

    def actions_for_targets(self, targets: F64, idx: I64 | None = None) -> I64:
        """The action that moves each account toward ``targets`` (position fractions).

        Target scheme: the level nearest to the target, preferring a level of the target's
        sign (so a half-size wish still takes a position when the levels are -1/0/1).
        Trade scheme: buy, sell or hold.
        """
        pos = self.pos if idx is None else self.pos[idx]
        targets = np.asarray(targets, dtype=np.float64)
        params = self.params
        if params.scheme == SCHEME_TRADE:
            step = params.trade_size / 2.0
            return np.where(targets > pos + step, 1, np.where(targets < pos - step, 2, 0)).astype(
                np.int64
            )
        levels = params.levels
        dist = np.abs(levels[None, :] - targets[:, None])
        wrong_sign = np.sign(levels)[None, :] != np.sign(targets)[:, None]
        dist = dist + np.where(wrong_sign, 1e6, 0.0)
        best = np.argmin(dist, axis=1)
        # Fall back to plain nearest when no level shares the target's sign.
        plain = np.argmin(np.abs(levels[None, :] - targets[:, None]), axis=1)
        ok = ~wrong_sign[np.arange(len(targets)), best]
        return np.asarray(np.where(ok, best, plain), dtype=np.int64)
