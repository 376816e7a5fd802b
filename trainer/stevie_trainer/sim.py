"""The trading simulation shared by TradingEnv and VecTradingEnv.

One numba kernel steps any number of accounts over one price series, so the single and the
batched environment have identical semantics by construction (and a test checks it).

Timing and costs (design.md section 4): the agent observes bar t after its close and picks a
target position. The order fills at the OPEN of bar t+1. Over that step the equity moves by

    g = 1 + p_old * (open[t+1] / close[t] - 1)       overnight / gap, old position
    c = 1 - |p_new - p_old| * (fee + slippage)        costs on the traded fraction of equity
    m = 1 + p_new * (close[t+1] / open[t+1] - 1)      the bar itself, new position

Positions are fractions of equity held (constant-weight rebalancing; p = 1 is exactly
buy-and-hold). The equity never goes below BUST (then the episode terminates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

SCHEME_TARGET = 0
SCHEME_TRADE = 1
REWARDS = {"log_return": 0, "differential_sharpe": 1, "drawdown_penalized": 2}
SCHEMES = {"target": SCHEME_TARGET, "trade": SCHEME_TRADE}
ACCOUNT_FEATURES = 4
BUST = 1e-6

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SimParams:
    """Numeric form of EnvSpec's trading rules, ready for the kernel."""

    scheme: int
    levels: F64  # target scheme: position per action
    trade_size: float
    min_position: float
    max_position: float
    cost_rate: float  # (fee + slippage) per unit of equity traded
    reward: int
    reward_scale: float
    drawdown_penalty: float
    sharpe_eta: float
    window: int

    @property
    def n_actions(self) -> int:
        return len(self.levels) if self.scheme == SCHEME_TARGET else 3


# Kernel argument bundles (numba takes tuples of arrays):
# params  (scheme, levels, trade_size, lo, hi, cost_rate, reward, scale, dd_penalty, eta)
# market  (open, gap_ret, bar_ret, flat_features, n_features, window): gap_ret[t] is
#         open[t] / close[t-1] - 1 and bar_ret[t] is close[t] / open[t] - 1
# state   (t, end, pos, equity, peak, entry_eq, entry_px, bars_in, dsr_a, dsr_b)
# results (rewards, terminated, truncated, dones, ledger); a ledger with no rows records nothing


@numba.njit(cache=True, error_model="numpy", inline="always")
def _write_obs(
    dst: F32,
    src: F32,
    k: int,
    pos: float,
    equity: float,
    entry_eq: float,
    peak: float,
    bars: int,
    window: int,
) -> None:
    # Copying through slice views lets numba vectorise the copy.
    for c in range(k):
        dst[c] = src[c]
    dst[k] = pos
    unreal = (equity / entry_eq - 1.0) * 10.0 if pos != 0.0 else 0.0
    dst[k + 1] = min(max(unreal, -10.0), 10.0)
    dst[k + 2] = bars / (bars + window)
    dst[k + 3] = max((equity / peak - 1.0) * 10.0, -10.0)


@numba.njit(cache=True, error_model="numpy")
def _step_kernel(actions: I64, params: Any, market: Any, state: Any, results: Any, out: F32) -> int:
    """Step every account; write its next observation into ``out`` if out has rows.

    Returns how many accounts are done (terminated or truncated).
    """
    scheme, levels, trade_size, lo, hi, cost_rate, reward, scale, dd_pen, eta = params
    open_, gap_ret, bar_ret, flat, n_features, window = market
    t, end, pos, equity, peak, entry_eq, entry_px, bars_in, dsr_a, dsr_b = state
    rewards, terminated, truncated, dones, ledger = results
    record = ledger.shape[0] > 0
    k = window * n_features
    n_done = 0
    for i in range(actions.shape[0]):
        a = actions[i]
        p_old = pos[i]
        if scheme == 0:
            p_new = levels[a]
        else:
            p_new = p_old
            if a == 1:
                p_new = p_old + trade_size
            elif a == 2:
                p_new = p_old - trade_size
            p_new = min(max(p_new, lo), hi)
        t1 = t[i] + 1
        g = 1.0 + p_old * gap_ret[t1]
        c = 1.0 - abs(p_new - p_old) * cost_rate
        m = 1.0 + p_new * bar_ret[t1]
        e0 = equity[i]
        e1 = e0 * g * c * m
        bust = e1 <= BUST
        if bust:
            e1 = BUST
        log_growth = math.log(e1 / e0)
        peak_old = peak[i]
        peak_new = max(peak_old, e1)
        if reward == 0:
            rew = log_growth * scale
        elif reward == 1:
            # Moody & Saffell's differential Sharpe ratio (dimensionless: not scaled).
            r = e1 / e0 - 1.0
            da = r - dsr_a[i]
            db = r * r - dsr_b[i]
            var = dsr_b[i] - dsr_a[i] * dsr_a[i]
            rew = (dsr_b[i] * da - 0.5 * dsr_a[i] * db) / var**1.5 if var > 1e-12 else 0.0
            dsr_a[i] += eta * da
            dsr_b[i] += eta * db
        else:
            dd_old = 1.0 - e0 / peak_old
            dd_new = 1.0 - e1 / peak_new
            rew = (log_growth - dd_pen * max(0.0, dd_new - dd_old)) * scale
        # Branch-free bookkeeping (selects, not jumps): actions are unpredictable, and
        # mispredicted branches here used to cost more than all the arithmetic.
        opened = (p_new != 0.0) & ((p_old == 0.0) | ((p_new > 0.0) != (p_old > 0.0)))
        closed = p_new == 0.0
        entry_eq[i] = e0 * g if opened else (e1 if closed else entry_eq[i])
        entry_px[i] = open_[t1] if opened else (np.nan if closed else entry_px[i])
        bars_in[i] = 0 if (opened | closed) else bars_in[i] + 1
        if record:
            ledger[i, 0] = p_old
            ledger[i, 1] = p_new
            ledger[i, 2] = g
            ledger[i, 3] = c
            ledger[i, 4] = m
        equity[i] = e1
        peak[i] = peak_new
        pos[i] = p_new
        t[i] = t1
        rewards[i] = rew
        at_end = t1 >= end[i]
        terminated[i] = bust
        truncated[i] = at_end & (not bust)
        dones[i] = bust | at_end
        n_done += dones[i]
    # Separate passes for the observations (window copy, then account features over
    # contiguous arrays) vectorise better than writing them inside the loop above.
    if out.shape[0] > 0:
        for i in range(actions.shape[0]):
            base = (t[i] - window + 1) * n_features
            src = flat[base : base + k]
            dst = out[i]
            for c in range(k):
                dst[c] = src[c]
        for i in range(actions.shape[0]):
            unreal = min(max((equity[i] / entry_eq[i] - 1.0) * 10.0, -10.0), 10.0)
            out[i, k] = pos[i]
            out[i, k + 1] = unreal if pos[i] != 0.0 else 0.0
            out[i, k + 2] = bars_in[i] / (bars_in[i] + window)
            out[i, k + 3] = max((equity[i] / peak[i] - 1.0) * 10.0, -10.0)
    return n_done


@numba.njit(cache=True, error_model="numpy")
def _obs_kernel(market: Any, state: Any, idx: I64, out: F32) -> None:
    flat, n_features, window = market[3], market[4], market[5]
    t, _, pos, equity, peak, entry_eq, _, bars_in, _, _ = state
    # Row-major [T, F] features: the window t-W+1..t is one contiguous run of W*F floats.
    k = window * n_features
    for j in range(idx.shape[0]):
        i = idx[j]
        base = (t[i] - window + 1) * n_features
        src = flat[base : base + k]
        _write_obs(out[j], src, k, pos[i], equity[i], entry_eq[i], peak[i], bars_in[i], window)


class Accounts:
    """State of N trading accounts over one market; the engine of both environments."""

    def __init__(
        self,
        n: int,
        params: SimParams,
        open_: F64,
        close: F64,
        features: F32,
        *,
        record: bool = True,
    ) -> None:
        """``features``: [T, F] float32, defined (no NaN) from the first observable bar on.

        ``record``: keep each step's ledger row per account (evaluation needs it to rebuild
        trades; training does not).
        """
        self.n = n
        self.params = params
        self.open = np.ascontiguousarray(open_, dtype=np.float64)
        self.close = np.ascontiguousarray(close, dtype=np.float64)
        self.gap_ret = np.zeros_like(self.open)
        self.gap_ret[1:] = self.open[1:] / self.close[:-1] - 1.0
        self.bar_ret = self.close / self.open - 1.0
        self.n_features = features.shape[1]
        self.flat_features = np.ascontiguousarray(features, dtype=np.float32).reshape(-1)
        self.obs_size = params.window * self.n_features + ACCOUNT_FEATURES
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
        )
        self.t = np.zeros(n, dtype=np.int64)
        self.end = np.zeros(n, dtype=np.int64)
        self.pos = np.zeros(n)
        self.equity = np.ones(n)
        self.peak = np.ones(n)
        self.entry_eq = np.ones(n)
        self.entry_px = np.full(n, np.nan)
        self.bars_in = np.zeros(n, dtype=np.int64)
        self.dsr_a = np.zeros(n)
        self.dsr_b = np.zeros(n)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.dones = np.zeros(n, dtype=bool)
        self.n_done = 0
        self._no_obs = np.empty((0, self.obs_size), dtype=np.float32)
        # Per step and account: p_old, p_new, gap, cost and bar multipliers (see module doc).
        self.ledger = np.zeros((n if record else 0, 5))
        self._all = np.arange(n, dtype=np.int64)

    def reset(self, idx: I64, starts: I64, ends: I64) -> None:
        """Start accounts ``idx`` flat with equity 1 at bars ``starts``, ending at ``ends``."""
        self.t[idx] = starts
        self.end[idx] = ends
        self.pos[idx] = 0.0
        self.equity[idx] = 1.0
        self.peak[idx] = 1.0
        self.entry_eq[idx] = 1.0
        self.entry_px[idx] = np.nan
        self.bars_in[idx] = 0
        self.dsr_a[idx] = 0.0
        self.dsr_b[idx] = 0.0

    def _bundles(self) -> tuple[Any, Any, Any]:
        market = (
            self.open,
            self.gap_ret,
            self.bar_ret,
            self.flat_features,
            self.n_features,
            self.params.window,
        )
        state = (
            self.t,
            self.end,
            self.pos,
            self.equity,
            self.peak,
            self.entry_eq,
            self.entry_px,
            self.bars_in,
            self.dsr_a,
            self.dsr_b,
        )
        results = (self.rewards, self.terminated, self.truncated, self.dones, self.ledger)
        return market, state, results

    def step(self, actions: I64) -> None:
        """Advance every account one bar; results land in rewards/terminated/truncated/ledger."""
        market, state, results = self._bundles()
        self.n_done = _step_kernel(
            actions, self._kernel_params, market, state, results, self._no_obs
        )

    def step_observe(self, actions: I64) -> F32:
        """:meth:`step`, then :meth:`observe` of every account, in one pass."""
        market, state, results = self._bundles()
        out = np.empty((self.n, self.obs_size), dtype=np.float32)
        self.n_done = _step_kernel(actions, self._kernel_params, market, state, results, out)
        return out

    def observe(self, idx: I64 | None = None) -> F32:
        """Observations of accounts ``idx`` (all by default), as a new float32 array."""
        idx = self._all if idx is None else idx
        out = np.empty((len(idx), self.obs_size), dtype=np.float32)
        market, state, _ = self._bundles()
        _obs_kernel(market, state, idx, out)
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
