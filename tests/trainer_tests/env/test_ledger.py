"""The simulator against an independent cash-and-units ledger (support.ledger, plain Python).

Every position kind (long, fractional, short; held, always rebalanced, rebalanced on drift)
must give the simulator's equity at every close to 1e-9, on synthetic and on real bars.
Shorts allowed and no minimum hold (support.mechanics): the accounting, not the defaults.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_api.market import EnvSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.env.kernel import L_TRADED
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from stevie_trainer.evaluation.episode import round_trips
from support.bars import bars, switching
from support.data import MarketFiles
from support.ledger import Ledger
from support.mechanics import mechanics_spec

LEVELS = [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]


def run_both(
    frame: pd.DataFrame, spec: EnvSpec, targets: list[float]
) -> tuple[list[float], list[float], TradingEnv]:
    """Equity at every close: (simulator, ledger), for the same sequence of targets."""
    market = MarketData.from_frame(frame, spec)
    env = TradingEnv(market, spec, mode="eval")
    env.reset(seed=0)
    t = env.start_bar
    ledger = Ledger.of(spec, market.bars_per_year)
    o, h, c = (frame[k].to_numpy() for k in ("open", "high", "close"))
    sim, book = [1.0], [1.0]
    for k, target in enumerate(targets):
        _, reward, terminated, truncated, info = env.step(env.action_for_target(target))
        # The default reward: the log growth of equity net of every cost, scaled.
        growth = math.log(info["equity"] / sim[-1]) * spec.reward_scale
        assert reward == pytest.approx(growth, rel=1e-5, abs=1e-6)
        sim.append(info["equity"])
        book.append(ledger.step(target, o[t + k + 1], h[t + k + 1], c[t + k + 1]))
        assert terminated == ledger.closed_out, f"step {k}: close-out disagrees"
        if terminated or truncated:
            break
    return sim, book, env


KINDS = {
    "long": [1.0],
    "fractional long": [0.25, 0.5],
    "short": [-1.0],
    "fractional short": [-0.25, -0.5],
    "mixed": LEVELS,
}
REBALANCE: list[dict[str, Any]] = [
    {"rebalance": "never"},
    {"rebalance": "always"},
    {"rebalance": "drift", "rebalance_drift": 0.02},
]


@pytest.mark.parametrize("rebalance", REBALANCE, ids=[r["rebalance"] for r in REBALANCE])
@pytest.mark.parametrize("kind", list(KINDS))
def test_simulator_matches_the_ledger_on_synthetic_bars(
    kind: str, rebalance: dict[str, Any]
) -> None:
    spec = mechanics_spec(positions=LEVELS, borrow_bps=800.0, **rebalance)
    frame = bars(seed=hash(kind) % 1000)
    targets = switching(450, KINDS[kind], seed=1) if kind == "mixed" else KINDS[kind] * 450
    sim, book, env = run_both(frame, spec, targets)
    np.testing.assert_allclose(sim, book, rtol=0, atol=1e-9)
    assert len(sim) > 100
    if kind.startswith("fractional") and rebalance["rebalance"] == "never":
        # Held units: the weight drifts away from the target (the old model reset it).
        assert env.weight != env.position


@pytest.mark.parametrize("rebalance", REBALANCE, ids=[r["rebalance"] for r in REBALANCE])
@pytest.mark.parametrize("name", ["BTCUSDT_1h.csv", "SPY_1d.csv"])
def test_simulator_matches_the_ledger_on_real_bars(
    market: MarketFiles, name: str, rebalance: dict[str, Any]
) -> None:
    frame = load_ohlcv(market.uri(name)).iloc[:3000]
    spec = mechanics_spec(positions=LEVELS, **rebalance)
    sim, book, _ = run_both(frame, spec, switching(2900, LEVELS, seed=2, hold=40))
    np.testing.assert_allclose(sim, book, rtol=0, atol=1e-9)


def test_a_held_short_in_a_rally_is_closed_out_at_the_maintenance_margin() -> None:
    frame = bars(n=400, seed=3, drift=0.004)  # prices about x4 over the series
    spec = mechanics_spec(borrow_bps=500.0, maintenance_margin=0.3)
    sim, book, env = run_both(frame, spec, [-1.0] * 390)
    np.testing.assert_allclose(sim, book, rtol=0, atol=1e-9)
    assert len(sim) < 300  # the episode ended at the close-out
    # Out where equity = 30% of the notional: the price rose by (1 - 0.3) / 1.3, less costs.
    assert sim[-1] == pytest.approx(1 - 0.7 / 1.3, abs=0.02)
    assert env.position == 0.0 and env.weight == 0.0


def test_without_margin_a_short_runs_until_equity_is_gone() -> None:
    frame = bars(n=400, seed=3, drift=0.004)
    spec = mechanics_spec(maintenance_margin=0.0, borrow_bps=0.0)
    sim, book, _ = run_both(frame, spec, [-1.0] * 390)
    assert sim[-1] == pytest.approx(1e-6) and book[-1] <= 0.0  # BUST; the ledger's is <= 0
    np.testing.assert_allclose(sim[:-1], book[:-1], rtol=0, atol=1e-9)


def test_borrow_is_charged_per_bar_on_the_short_notional() -> None:
    flat = pd.DataFrame(
        {"open": 50.0, "high": 50.0, "low": 50.0, "close": 50.0},
        index=pd.date_range("2024-01-01", periods=400, freq="1D", tz="UTC"),
    )
    spec = mechanics_spec(fee_bps=0, slippage_bps=0, borrow_bps=365.0)
    market = MarketData.from_frame(flat, spec)
    env = TradingEnv(market, spec, mode="eval")
    env.reset()
    for _ in range(100):
        _, _, _, _, info = env.step(env.action_for_target(-1.0))
    daily = 0.0365 / market.bars_per_year
    # At constant prices the short's notional stays at the entry equity: borrow is linear.
    assert info["equity"] == pytest.approx(1.0 - 100 * daily, rel=1e-12)


def test_only_a_changed_target_or_the_rebalance_rule_trades() -> None:
    """Holding -0.5 with rebalance=always is the old constant-weight model, now paying for
    every trade it implies; held units trade once, at the entry."""
    frame = bars(n=600, seed=4)
    traded: dict[str, np.ndarray] = {}
    for mode in ("never", "always", "drift"):
        spec = mechanics_spec(positions=LEVELS, rebalance=mode, rebalance_drift=0.02)
        env = TradingEnv(MarketData.from_frame(frame, spec), spec, mode="eval")
        env.reset()
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_for_target(-0.5))
            done = terminated or truncated
        traded[mode] = np.asarray(env.ledger)[:, L_TRADED]
    steps = len(traded["never"])
    assert steps > 400
    assert np.count_nonzero(traded["never"]) == 1  # the entry only
    assert np.count_nonzero(traded["always"]) == steps  # the entry, then every bar
    assert 1 < np.count_nonzero(traded["drift"]) < 100
    # Each rebalance trades the weight's drift: about 0.5 x 1.5 x the bar's 1% move.
    assert traded["always"][1:].mean() == pytest.approx(0.0075 * math.sqrt(2 / math.pi), rel=0.3)


def test_trades_still_compound_to_the_final_equity_with_drift_and_close_outs() -> None:
    frame = bars(n=800, seed=5, drift=0.001)
    spec = mechanics_spec(positions=LEVELS, borrow_bps=800.0, rebalance="drift")
    _, _, env = run_both(frame, spec, switching(790, LEVELS, seed=6, hold=10))
    trades = round_trips(np.asarray(env.ledger))
    assert len(trades) > 10
    assert np.prod(1.0 + trades) == pytest.approx(env.accounts.equity[0], rel=1e-9)
