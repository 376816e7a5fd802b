"""Cost-aware acting: the no-trade band, the minimum hold and the turnover penalty.

The simulator against the independent ledger (support.ledger) with each rule alone and all
together, in both action schemes and every rebalance mode, on synthetic and real bars; then
what each rule promises on its own, and that with the rules off it is the old arithmetic
exactly. Shorts and no hold unless a test sets one (support.mechanics), as before the
long/flat, 8-bar-hold defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_api.market import EnvSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.env.kernel import L_TARGET, L_TRADED
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from support.bars import bars, switching
from support.data import MarketFiles
from support.ledger import Ledger
from support.mechanics import mechanics_spec

LEVELS = [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]

RULES: dict[str, dict[str, Any]] = {
    "band": {"no_trade_band": 0.3},
    "hold": {"min_hold_bars": 7},
    "penalty": {"turnover_penalty": 0.004},
    "all": {"no_trade_band": 0.3, "min_hold_bars": 7, "turnover_penalty": 0.004},
}
REBALANCE: dict[str, dict[str, Any]] = {
    "never": {"rebalance": "never"},
    "always": {"rebalance": "always"},
    "drift": {"rebalance": "drift", "rebalance_drift": 0.02},
}


@dataclass
class Run:
    """One episode in the simulator and the ledger, step by step."""

    sim: list[float] = field(default_factory=lambda: [1.0])
    book: list[float] = field(default_factory=lambda: [1.0])
    rewards: list[float] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)  # the simulator's, after each step
    traded: list[float] = field(default_factory=list)  # the ledger's
    ledger: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))


def requested(spec: EnvSpec, book: Ledger, action: int) -> float:
    """The target an action asks for, from the ledger's own target (trade scheme: a step)."""
    if spec.action_scheme == "target":
        return float(spec.positions[action])
    step = spec.trade_size * ((action == 1) - (action == 2))
    lo = -spec.max_position if spec.allow_short else 0.0
    return min(max(book.target + step, lo), spec.max_position)


def drive(frame: pd.DataFrame, spec: EnvSpec, actions: list[int]) -> Run:
    """Step the simulator and the ledger with the same actions; they must agree on the
    targets held and on every close-out as they go."""
    market = MarketData.from_frame(frame, spec)
    env = TradingEnv(market, spec, mode="eval")
    env.reset(seed=0)
    t = env.start_bar
    book = Ledger.of(spec, market.bars_per_year)
    o, h, c = (frame[k].to_numpy() for k in ("open", "high", "close"))
    run = Run()
    for k, action in enumerate(actions):
        wish = requested(spec, book, action)
        _, reward, terminated, truncated, info = env.step(action)
        run.book.append(book.step(wish, o[t + k + 1], h[t + k + 1], c[t + k + 1]))
        run.sim.append(info["equity"])
        run.rewards.append(reward)
        run.targets.append(info["position"])
        run.traded.append(book.traded)
        assert info["position"] == pytest.approx(book.target, abs=1e-12), f"step {k}"
        assert terminated == book.closed_out, f"step {k}: close-out disagrees"
        if terminated or truncated:
            break
    run.ledger = np.asarray(env.ledger)
    return run


def check_against_ledger(spec: EnvSpec, run: Run) -> None:
    """Equity, traded notional and the (log_return) reward, penalty included."""
    np.testing.assert_allclose(run.sim, run.book, rtol=0, atol=1e-9)
    np.testing.assert_allclose(run.ledger[:, L_TRADED], run.traded, rtol=0, atol=1e-9)
    growth = np.log(np.asarray(run.book[1:]) / np.asarray(run.book[:-1]))
    expected = (growth - spec.turnover_penalty * np.asarray(run.traded)) * spec.reward_scale
    np.testing.assert_allclose(run.rewards, expected, rtol=1e-5, atol=1e-5)


def actions_for(spec: EnvSpec, n: int, seed: int) -> list[int]:
    """Target scheme: levels switching every ~5 bars; trade scheme: random buy/sell/hold."""
    if spec.action_scheme == "trade":
        rng = np.random.default_rng(seed)
        return [int(a) for a in rng.choice(3, size=n, p=[0.6, 0.2, 0.2])]
    return [LEVELS.index(x) for x in switching(n, LEVELS, seed=seed, hold=5)]


def trades(run: Run) -> int:
    return int(np.count_nonzero(run.ledger[:, L_TRADED]))


def changes(run: Run) -> int:
    return int(np.count_nonzero(np.diff([0.0, *run.targets])))


@pytest.mark.parametrize("scheme", ["target", "trade"])
@pytest.mark.parametrize("rebalance", list(REBALANCE))
@pytest.mark.parametrize("rule", list(RULES))
def test_rules_match_the_ledger_on_synthetic_bars(rule: str, rebalance: str, scheme: str) -> None:
    common = {"positions": LEVELS, "borrow_bps": 800.0, "action_scheme": scheme,
              "trade_size": 0.25, **REBALANCE[rebalance]}  # fmt: skip
    spec = mechanics_spec(**common, **RULES[rule])
    frame = bars(seed=7)
    actions = actions_for(spec, 450, seed=3)
    run = drive(frame, spec, actions)
    check_against_ledger(spec, run)
    assert len(run.sim) > 100
    free = drive(frame, mechanics_spec(**common), actions)
    if spec.no_trade_band:  # it refused orders the free run placed (rebalancing ones too)
        assert trades(run) < trades(free)
    if spec.min_hold_bars:  # it refused target changes the free run made
        assert changes(run) < changes(free)
    if (
        not spec.no_trade_band and not spec.min_hold_bars
    ):  # the penalty: the same trades and equity, a lower reward on each trade
        assert run.sim == free.sim
        cost = np.subtract(free.rewards, run.rewards)
        np.testing.assert_allclose(cost, 0.4 * np.asarray(run.traded), rtol=1e-4, atol=1e-6)
        assert np.count_nonzero(cost) == trades(run) > 10


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("name", ["BTCUSDT_1h.csv", "SPY_1d.csv"])
def test_rules_match_the_ledger_on_real_bars(market: MarketFiles, name: str, rule: str) -> None:
    frame = load_ohlcv(market.uri(name)).iloc[:3000]
    spec = mechanics_spec(positions=LEVELS, rebalance="drift", **RULES[rule])
    run = drive(frame, spec, [LEVELS.index(x) for x in switching(2900, LEVELS, seed=2, hold=8)])
    check_against_ledger(spec, run)
    assert len(run.sim) > 2000


@pytest.mark.parametrize("rebalance", list(REBALANCE))
@pytest.mark.parametrize("scheme", ["target", "trade"])
def test_a_band_wider_than_any_order_never_trades_after_the_entry(
    scheme: str, rebalance: str
) -> None:
    spec = mechanics_spec(positions=LEVELS, action_scheme=scheme, no_trade_band=5.0,
                          **REBALANCE[rebalance])  # fmt: skip
    actions = actions_for(spec, 450, seed=4)
    run = drive(bars(seed=8), spec, actions)
    check_against_ledger(spec, run)
    entry = next(k for k, p in enumerate(run.targets) if p != 0.0)
    assert trades(run) == 1 and run.ledger[entry, L_TRADED] > 0.0
    assert set(run.targets[entry:]) == {run.targets[entry]}


@pytest.mark.parametrize("k", [1, 4, 15])
@pytest.mark.parametrize("scheme", ["target", "trade"])
def test_min_hold_never_changes_the_target_within_k_bars(scheme: str, k: int) -> None:
    spec = mechanics_spec(
        positions=LEVELS, action_scheme=scheme, min_hold_bars=k, rebalance="always"
    )
    rng = np.random.default_rng(k)
    actions = [int(a) for a in rng.integers(0, 7 if scheme == "target" else 3, size=450)]
    run = drive(bars(seed=9), spec, actions)
    check_against_ledger(spec, run)
    held = [0.0, *run.targets]
    changes = [s for s in range(1, len(held)) if held[s] != held[s - 1]]
    assert len(changes) > len(held) // (3 * (k + 1))  # it does trade, as often as allowed
    for s in changes:
        assert len(set(held[s : s + k + 1])) == 1, f"changed within {k} bars of step {s}"
    if k == 1:  # and the hold is exactly k: a change two steps after the last is allowed
        assert min(np.diff(changes)) == k + 1


def test_a_hold_never_holds_back_a_margin_close_out() -> None:
    frame = bars(n=400, seed=3, drift=0.004)  # a rally a full short does not survive
    held = drive(frame, mechanics_spec(min_hold_bars=10_000, no_trade_band=5.0), [0] * 390)
    free = drive(frame, mechanics_spec(), [0] * 390)
    assert len(held.sim) == len(free.sim) < 300 and held.sim == free.sim
    assert held.targets[-1] == 0.0 and held.ledger[-1, L_TARGET] == 0.0


@pytest.mark.parametrize("reward", ["log_return", "drawdown_penalized", "differential_sharpe"])
def test_the_turnover_penalty_on_hand_computed_steps(reward: str) -> None:
    """Constant prices, k = 15 bps, no borrow: long 1 (trades 1 x equity), hold, then short 1
    (trades 2 x equity): the penalty is q x traded, before the scale of a scaled reward."""
    price = pd.DataFrame(
        {"open": 50.0, "high": 50.0, "low": 50.0, "close": 50.0},
        index=pd.date_range("2024-01-01", periods=300, freq="1D", tz="UTC"),
    )
    q, k = 0.002, 15e-4
    rewards = {}
    for pen in (0.0, q):
        spec = mechanics_spec(reward=reward, borrow_bps=0.0, turnover_penalty=pen)
        env = TradingEnv(MarketData.from_frame(price, spec), spec, mode="eval")
        env.reset()
        rewards[pen] = [env.step(a)[1] for a in (2, 2, 0)]
    traded = [1.0, 0.0, 2.0]
    if reward == "log_return":  # the whole reward, by hand
        expected = [(math.log(1 - k) - q) * 100, 0.0, (math.log(1 - 2 * k) - 2 * q) * 100]
        assert rewards[q] == pytest.approx(expected, rel=1e-6)
    scale = 1.0 if reward == "differential_sharpe" else 100.0
    cost = np.subtract(rewards[0.0], rewards[q])
    np.testing.assert_allclose(cost, q * np.asarray(traded) * scale, rtol=1e-5, atol=1e-6)


def docstring_equity(
    frame: pd.DataFrame, spec: EnvSpec, targets: list[float], t: int
) -> list[float]:
    """Equity by the kernel docstring's multipliers as they were before the cost rules
    (rebalance never, no margin): e' = e x g x c x m, in the kernel's order of operations."""
    o, c_ = frame["open"].to_numpy(), frame["close"].to_numpy()
    k = (spec.fee_bps + spec.slippage_bps) / 1e4
    borrow = spec.borrow_bps / 1e4 / MarketData.from_frame(frame, spec).bars_per_year
    e, w, p_old, out = 1.0, 0.0, 0.0, [1.0]
    for s, p in enumerate(targets):
        rg, rb = o[t + s + 1] / c_[t + s] - 1.0, c_[t + s + 1] / o[t + s + 1] - 1.0
        g = 1.0 + w * rg
        w_open = w * (1.0 + rg) / g
        w_fill = w_open if p == p_old else p
        cost = 1.0 - abs(w_fill - w_open) * k
        short = max(-w_fill, 0.0)
        m = 1.0 + w_fill * rb - borrow * short * (1.0 + rb) - 0.0 * k
        w, p_old = w_fill * (1.0 + rb) / m, p
        e = e * g * cost * m
        out.append(e)
    return out


def test_the_rules_off_are_the_old_arithmetic_exactly() -> None:
    """The band and the penalty are off by default; the hold (8 by default) is turned off."""
    spec = mechanics_spec(positions=LEVELS, maintenance_margin=0.0)
    assert (spec.no_trade_band, spec.min_hold_bars, spec.turnover_penalty) == (0.0, 0, 0.0)
    frame = bars(seed=11)
    targets = switching(450, LEVELS, seed=5, hold=4)
    run = drive(frame, spec, [LEVELS.index(x) for x in targets])
    start = TradingEnv(MarketData.from_frame(frame, spec), spec, mode="eval").planner.first
    steps = targets[: len(run.sim) - 1]  # the episode ends at the last bar
    assert run.sim == docstring_equity(frame, spec, steps, start)  # bit for bit
    assert trades(run) > 50
