"""The trading simulation shared by TradingEnv and VecTradingEnv.

One numba kernel steps any number of accounts over one price series, so the single and the
batched environment have identical semantics by construction (and a test checks it).

Timing and costs (design.md section 4): the agent observes bar t after its close and picks a
target position (a fraction of equity). The order fills at the OPEN of bar t+1.

Positions are held quantities (units): an account's weight w = units x price / equity drifts
with the price until the agent picks another target (or the rebalance rule trades it back).
Over one step, with k = fee + slippage per unit of notional, the equity moves by

    g = 1 + w * (open[t+1] / close[t] - 1)            overnight / gap, units held
    w' = w * (open[t+1] / close[t]) / g               the weight at the open, before the fill
    c = 1 - |w_fill - w'| * k                         costs on the notional traded at the open
    m = 1 + w_fill * r - borrow * s * (1 + r)         the bar, r = close[t+1] / open[t+1] - 1

where w_fill is the new target when the agent changed it (or the rebalance rule fires), else
w' (nothing traded, nothing paid), and s = max(-w_fill, 0) is the short weight, whose
notional pays ``borrow`` per bar. The fill is sized so that w_fill is the weight of the
equity after its cost: a cash-and-units ledger with the fee charged on |w_fill - w'| x the
equity at the open gives exactly these numbers (a test keeps such a ledger). p = 1 held is
exactly buy-and-hold.

Shorts and margin: a short is closed out, and the episode ends (terminated), when equity
falls to ``maintenance_margin`` of the short notional: at the open (before the fill) when
the price gapped there, else inside the bar at the liquidation price, when the bar's high
reaches it: r_liq = (1 - mm * s) / (s * (1 + mm)). The close-out pays k on its notional.
The equity never goes below BUST (then the episode terminates too).

Cost-aware acting (each off at 0, its default; EnvSpec's fields say the same to users):

* the hold (``min_hold``, k): after a step whose fill changed the target, the next k steps
  read the agent's action as "keep the current target" (rebalancing still runs; a margin
  close-out is never held back). The account's HOLD clock counts those steps down.
* the band (``band``, b): any order -- the agent's new target, or a rebalancing trade back to
  the held one -- with |target - w'| < b is not placed: no trade, the target stays. An
  account that is flat (target 0) is exempt, so an entry is always placed.
* the turnover penalty (``turnover_penalty``, q): the reward of a step is lowered by
  q x the notional traded (L_TRADED: fill and close-out, as a fraction of the equity at the
  step's start), before the reward scale (differential_sharpe: from the ratio itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from stevie_trainer.env import fastmath
from stevie_trainer.env.fastmath import loaded, log
from stevie_trainer.env.jitcache import depends_on

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
    rebalance_threshold: float = np.inf  # |weight - target| that triggers a rebalancing trade
    borrow_rate: float = 0.0  # per year, on short notional
    maintenance_margin: float = 0.0  # equity / short notional below which a short is closed
    no_trade_band: float = 0.0  # orders with |target - weight| below this are not placed
    min_hold_bars: int = 0  # steps after a target change in which it cannot change again
    turnover_penalty: float = 0.0  # reward cost per unit of traded notional (before scale)

    @property
    def n_actions(self) -> int:
        return len(self.levels) if self.scheme == SCHEME_TARGET else 3


# Kernel arguments. Few, packed and flat: each array argument costs call overhead, and LLVM
# must assume that any two arrays may overlap, so with many of them it reloads values and
# gives up on reordering. Records with a compile-time stride (``i * NS + column``) let it
# see that accounts never overlap; one record per account is also one cache line, not ten.
# params  (scheme, levels, trade_size, lo, hi, cost_rate, reward, scale, dd_penalty, eta,
#         rebalance_threshold, borrow per bar, maintenance_margin, no_trade_band,
#         min_hold_bars (int), turnover_penalty)
# market  (bars, flat_features, n_features, window); bars is flat [T, 4] float64 holding per
#         bar gap_ret (open[t] / close[t-1] - 1), bar_ret (close[t] / open[t] - 1), open and
#         high_ret (high[t] / open[t] - 1);
#         flat_features is [T, F] float32 flattened, plus ACCOUNT_FEATURES zeros of padding
# acct    flat [N, NS] float64 records: see the column names below (prev_*: the equity and
#         peak before the last step, for the reward pass)
# clock   flat [N, NC] int64 records: BAR (t), END, BARS_IN, HOLD (steps the target is still
#         held for, see min_hold_bars)
# results (rewards, flags [3, N] bool: terminated, truncated, done; ledger); a ledger with no
#         rows records nothing, an ``out`` with no rows observes nothing
# POS is the target the agent holds (its action state), WEIGHT the position's drifted weight,
# TRADED the last step's traded notional (L_TRADED), which the reward pass reads.
POS, EQUITY, PEAK, ENTRY_EQ, ENTRY_PX, DSR_A, DSR_B, PREV_EQ, PREV_PEAK, WEIGHT, TRADED = range(11)
NS = 11
BAR, END, BARS_IN, HOLD = range(4)
NC = 4
NB = 4  # floats per bar in market[0]
# Ledger columns, per step and account: the weight held over the gap, the weight held over
# the bar (after the fill), the gap, cost and bar multipliers of equity, and the notional
# traded (fill and any close-out) as a fraction of the equity at the step's start, and the
# target held after the step (the agent's, or 0 after a close-out).
L_OLD, L_NEW, L_GAP, L_COST, L_BAR, L_TRADED, L_TARGET = range(7)
LEDGER_COLUMNS = 7


@numba.njit(cache=True, error_model="numpy", inline="always")
def _observe_one(dst: F32, market: Any, acct: F64, clock: I64, i: int) -> None:
    _, flat, n_features, window = market
    # Row-major [T, F] features: the window t-W+1..t is one contiguous run of W*F floats.
    # The copy takes the 4 floats after it too (the next bar, or the padding at the end of
    # flat), which the account features overwrite at once: a loop over the whole row was
    # measured ~2 us a step faster at N=1024 than one over the window alone.
    k = window * n_features
    base = (clock[i * NC + BAR] + 1) * n_features - k
    src = flat[base : base + k + ACCOUNT_FEATURES]
    for c in range(k + ACCOUNT_FEATURES):
        dst[c] = src[c]
    r = i * NS
    pos, equity, bars = acct[r + POS], acct[r + EQUITY], clock[i * NC + BARS_IN]
    unreal = (equity / acct[r + ENTRY_EQ] - 1.0) * 10.0 if pos != 0.0 else 0.0
    dst[k] = min(max(acct[r + WEIGHT], -10.0), 10.0)
    dst[k + 1] = min(max(unreal, -10.0), 10.0)
    dst[k + 2] = bars / (bars + window)
    dst[k + 3] = max((equity / acct[r + PEAK] - 1.0) * 10.0, -10.0)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _move(
    w: float,
    p_old: float,
    p_new: float,
    bar: Any,
    cost_rate: float,
    rules: Any,
    borrow: float,
    mm: float,
) -> Any:
    """One account over one step (see the module docstring), from the weight ``w`` held at
    the last close: (gap, cost and bar multipliers, the weight at the open and after the
    fill, the weight at the close, the close-out notional, called at the open, liquidated
    in the bar, the target held after the fill). ``bar`` is (gap return, bar return, high
    return); ``rules`` (rebalance threshold, no-trade band, whether a hold is running)."""
    rg, rb, rh = bar
    threshold, band, holding = rules
    # The gap moves the units held; a short whose equity no longer covers its margin at
    # the open is closed out there, before any fill.
    g = 1.0 + w * rg
    alive = g > BUST
    w_open = w * (1.0 + rg) / g if alive else 0.0
    called = (w_open * mm <= -1.0) | (not alive)
    # The hold reads any action as "keep the target"; the band then drops any order (a new
    # target or a rebalancing trade) smaller than itself, unless the account is flat.
    p_req = p_old if holding else p_new
    size = abs(p_req - w_open)
    small = (p_old != 0.0) & (size < band)
    keep = small | ((p_req == p_old) & (size <= threshold))
    p_tgt = p_old if small else p_req
    w_held = w_open if keep else p_tgt
    w_fill = 0.0 if called else w_held
    c = 1.0 - abs(w_fill - w_open) * cost_rate
    # The bar: a short is liquidated where equity meets its maintenance margin.
    short = max(-w_fill, 0.0)
    r_liq = (1.0 - mm * short) / (short * (1.0 + mm)) if short > 0.0 else np.inf
    liquidated = rh >= r_liq
    rr = r_liq if liquidated else rb
    out_notional = short * (1.0 + rr) if liquidated else 0.0
    mb = 1.0 + w_fill * rr - borrow * short * (1.0 + rr) - out_notional * cost_rate
    w_end = w_fill * (1.0 + rr) / mb if (mb > 0.0) & (not liquidated) else 0.0
    return g, c, mb, w_open, w_fill, w_end, out_notional, called, liquidated, p_tgt


@numba.njit(cache=True, error_model="numpy", inline="always")
def _record(row: F64, values: Any) -> None:
    """One ledger row, in the L_* column order."""
    for k in range(LEDGER_COLUMNS):
        row[k] = values[k]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _rewards(reward: int, n: int, acct: F64, rewards: F32, scale: float, dd_pen: float,
             eta: float, turn_pen: float) -> None:  # fmt: skip
    """Pass 2 of the step kernel (see there). The turnover penalty is subtracted in every
    loop, even when 0 (x - 0.0 * traded == x exactly): one more load and multiply, and no
    branch to keep the loops vectorised."""
    if reward == 0:
        for i in range(n):
            r = i * NS
            growth = log(acct[r + EQUITY] / acct[r + PREV_EQ])
            rewards[i] = (growth - turn_pen * acct[r + TRADED]) * scale
    elif reward == 1:
        for i in range(n):
            r = i * NS
            # Moody & Saffell's differential Sharpe ratio (dimensionless: not scaled).
            ret = acct[r + EQUITY] / acct[r + PREV_EQ] - 1.0
            a_old = acct[r + DSR_A]
            b_old = acct[r + DSR_B]
            da = ret - a_old
            db = ret * ret - b_old
            var = b_old - a_old * a_old
            dsr = (b_old * da - 0.5 * a_old * db) / var**1.5 if var > 1e-12 else 0.0
            rewards[i] = dsr - turn_pen * acct[r + TRADED]
            acct[r + DSR_A] = a_old + eta * da
            acct[r + DSR_B] = b_old + eta * db
    else:
        for i in range(n):
            r = i * NS
            e0, e1 = acct[r + PREV_EQ], acct[r + EQUITY]
            dd_old = 1.0 - e0 / acct[r + PREV_PEAK]
            dd_new = 1.0 - e1 / acct[r + PEAK]
            penalties = dd_pen * max(0.0, dd_new - dd_old) + turn_pen * acct[r + TRADED]
            rewards[i] = (log(e1 / e0) - penalties) * scale


@numba.njit(cache=True, error_model="numpy")
def _step_kernel(
    actions: I64, params: Any, market: Any, acct: F64, clock: I64, results: Any, out: F32
) -> int:
    """Step every account; write its next observation into ``out`` if out has rows.

    Returns how many accounts are done (terminated or truncated).
    """
    scheme, levels, trade_size, lo, hi, cost_rate, reward, scale, dd_pen, eta = params[:10]
    threshold, borrow, mm, band, min_hold, turn_pen = params[10:]
    bars = market[0]
    rewards, flags, ledger = results
    record = ledger.shape[0] > 0
    n = actions.shape[0]
    terminated, truncated, dones = flags[0], flags[1], flags[2]
    n_done = 0
    # Pass 1: accounting and episode ends, with no calls and few jumps (selects mostly):
    # actions are random, and mispredicted branches used to cost more than the arithmetic.
    for i in range(n):
        r, q = i * NS, i * NC
        a = actions[i]
        p_old = acct[r + POS]
        if scheme == SCHEME_TARGET:
            p_new = levels[a]
        else:
            p_new = min(max(p_old + trade_size * ((a == 1) - (a == 2)), lo), hi)
        t1 = clock[q + BAR] + 1
        b = t1 * NB
        w = acct[r + WEIGHT]
        hold = clock[q + HOLD]
        rules = (threshold, band, hold > 0)
        g, c, mb, w_open, w_fill, w_end, out_notional, called, liquidated, p_tgt = _move(
            w, p_old, p_new, (bars[b], bars[b + 1], bars[b + 3]), cost_rate, rules, borrow, mm
        )
        e0 = acct[r + EQUITY]
        e1 = e0 * g * c * mb
        e1 = BUST if e1 <= BUST else e1
        p_end = 0.0 if called | liquidated else p_tgt
        opened = (p_end != 0.0) & ((p_old == 0.0) | ((p_end > 0.0) != (p_old > 0.0)))
        closed = p_end == 0.0
        # Loads through ``loaded``, and BARS_IN by arithmetic: LLVM sank plain loads into the
        # one select arm that used them and then jumped around them, mispredicted on about
        # half of the (random) actions: this pass took 16 us instead of 11 at N=1024.
        entry_eq, entry_px = loaded(acct[r + ENTRY_EQ]), loaded(acct[r + ENTRY_PX])
        open_px = loaded(bars[b + 2])
        kept_eq = e1 if closed else entry_eq
        kept_px = np.nan if closed else entry_px
        acct[r + ENTRY_EQ] = e0 * g if opened else kept_eq
        acct[r + ENTRY_PX] = open_px if opened else kept_px
        clock[q + BARS_IN] = (clock[q + BARS_IN] + 1) * (1 - (opened | closed))
        clock[q + HOLD] = min_hold if p_end != p_old else max(hold - 1, 0)
        traded = (abs(w_fill - w_open) + out_notional * c) * g
        acct[r + TRADED] = traded
        if record:
            _record(ledger[i], (w, w_fill, g, c, mb, traded, p_end))
        peak = acct[r + PEAK]
        acct[r + PREV_EQ] = e0
        acct[r + PREV_PEAK] = peak
        acct[r + EQUITY] = e1
        acct[r + PEAK] = max(peak, e1)
        acct[r + POS] = p_end
        acct[r + WEIGHT] = w_end
        clock[q + BAR] = t1
        bust = (e1 <= BUST) | called | liquidated  # e1 was clamped to exactly BUST above
        at_end = t1 >= clock[q + END]
        terminated[i] = bust
        truncated[i] = at_end & (not bust)
        dones[i] = bust | at_end
        n_done += bust | at_end
    # Pass 2: rewards, apart from pass 1 so that LLVM vectorises it (8 accounts per instruction):
    # the log is inline arithmetic (fastmath.log; libm's math.log was a call, which blocks
    # that), and each reward kind has its own loop (a reward branch inside one loop kept the
    # loop scalar, and was slower than math.log had been).
    _rewards(reward, n, acct, rewards, scale, dd_pen, eta, turn_pen)
    # Pass 3: observations (mostly the copy of each feature window).
    if out.shape[0] > 0:
        for i in range(n):
            _observe_one(out[i], market, acct, clock, i)
    return n_done


@numba.njit(cache=True, error_model="numpy")
def _obs_kernel(market: Any, acct: F64, clock: I64, idx: I64, out: F32, rows: I64) -> None:
    """Write the observation of account ``idx[j]`` into ``out[rows[j]]``."""
    for j in range(idx.shape[0]):
        _observe_one(out[rows[j]], market, acct, clock, idx[j])


@numba.njit(cache=True, error_model="numpy")
def _reset_kernel(
    market: Any, acct: F64, clock: I64, idx: I64, starts: I64, ends: I64, out: F32
) -> None:
    # One call instead of a dozen fancy-index assignments: restarts happen every step of a
    # large batch, and each numpy call costs about a microsecond.
    for j in range(idx.shape[0]):
        r, q = idx[j] * NS, idx[j] * NC
        acct[r : r + NS] = 0.0
        acct[r + EQUITY] = 1.0
        acct[r + PEAK] = 1.0
        acct[r + ENTRY_EQ] = 1.0
        acct[r + ENTRY_PX] = np.nan
        clock[q + BAR] = starts[j]
        clock[q + END] = ends[j]
        clock[q + BARS_IN] = 0
        clock[q + HOLD] = 0
    if out.shape[0] > 0:
        _obs_kernel(market, acct, clock, idx, out, idx)


# The kernels inline fastmath's log and load pin: their caches go stale with fastmath.py.
for _jitted in (_step_kernel, _obs_kernel, _reset_kernel):
    depends_on(_jitted, fastmath)
