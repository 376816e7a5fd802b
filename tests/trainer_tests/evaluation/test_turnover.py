"""turnover: orders, traded notional and costs of a pass, against an independent broker's books
(support.ledger: cash and units), for the agent's, the expert's and buy-and-hold's passes.
The scripted passes trade shorts and every bar (support.mechanics), not the defaults."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from stevie_api.market import DataSpec, EnvSpec, ExpertSpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import L_TRADED
from stevie_trainer.env.market import MarketData
from stevie_trainer.evaluation.backtest import run_backtest
from stevie_trainer.evaluation.baselines import BuyAndHold
from stevie_trainer.evaluation.episode import Episode, run_policy
from stevie_trainer.evaluation.performance import Performance, format_table
from stevie_trainer.evaluation.turnover import CostRates, turnover
from support.data import MarketFiles
from support.ledger import Ledger
from support.mechanics import mechanics_spec

LEVELS = [-1.0, -0.5, 0.0, 0.5, 1.0]


def bars(n: int = 400, seed: int = 0, drift: float = 0.0, vol: float = 0.01) -> pd.DataFrame:
    """Synthetic OHLC bars with overnight gaps and real highs."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = np.r_[100.0, close[:-1] * np.exp(rng.normal(0.0, vol / 4, n - 1))]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=index)


class Script:
    """A policy that plays a fixed list of targets (then holds the last one)."""

    name = "script"

    def __init__(self, targets: list[float]) -> None:
        self.targets, self.k = targets, 0

    def act(self, obs: npt.NDArray[np.float32], accounts: Accounts) -> npt.NDArray[np.int64]:
        target = self.targets[min(self.k, len(self.targets) - 1)]
        self.k += 1
        return accounts.actions_for_targets(np.array([target]))


class Broker(Ledger):
    """support.ledger's account, remembering what a close-out sold and at what price."""

    exit_units: float = 0.0
    exit_price: float = 0.0

    def _close_out(self, price: float) -> None:
        self.exit_units, self.exit_price = self.units, price
        super()._close_out(price)


def books(
    frame: pd.DataFrame, spec: EnvSpec, episode: Episode, first: int, targets: list[float]
) -> dict[str, Any]:
    """The broker's own account of the policy's targets: price P&L of the units it held,
    borrow it charged, fees (the rest of the equity change) and their notional."""
    broker = Broker(**vars(Ledger.of(spec, episode.bars_per_year)))
    o, h, c = (frame[k].to_numpy() for k in ("open", "high", "close"))
    gross = borrow = fees = 0.0
    equity = [1.0]
    for k in range(len(episode.ledger)):
        t, target = first + k + 1, targets[min(k, len(targets) - 1)]
        u0, before = broker.units, broker.equity(c[t - 1])
        after = broker.step(float(target), o[t], h[t], c[t])
        if broker.closed_out:  # held from the fill to the close-out (at the open: nothing)
            held, exit_ = broker.exit_units, broker.exit_price
        else:
            held, exit_ = broker.units, c[t]
        gross += u0 * (o[t] - c[t - 1]) + held * (exit_ - o[t])
        at_open = broker.closed_out and exit_ == o[t]  # called at the open: no bar, no borrow
        paid_borrow = 0.0 if at_open else broker.borrow_per_bar * max(-held, 0.0) * exit_
        borrow += paid_borrow
        fees += (before + u0 * (o[t] - c[t - 1]) + held * (exit_ - o[t])) - after - paid_borrow
        equity.append(after)
        if broker.closed_out:
            break
    return {"gross": gross, "borrow": borrow, "fees": fees, "equity": np.asarray(equity),
            "notional": fees / broker.cost}  # fmt: skip


SCENARIOS: dict[str, dict[str, Any]] = {
    "switching long and short": {"spec": {"borrow_bps": 800.0}, "hold": 15, "drift": 0.0},
    "rebalanced every bar": {
        "spec": {"rebalance": "always", "borrow_bps": 300.0},
        "hold": 40,
        "drift": 0.0,
    },
    "a short closed out in a rally": {
        "spec": {"borrow_bps": 500.0, "maintenance_margin": 0.3},
        "hold": 0,
        "drift": 0.004,
    },
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_costs_and_turnover_match_the_brokers_books(name: str) -> None:
    scenario = SCENARIOS[name]
    spec = mechanics_spec(positions=LEVELS, fee_bps=10.0, slippage_bps=5.0, **scenario["spec"])
    frame = bars(seed=len(name), drift=scenario["drift"])
    rng = np.random.default_rng(1)
    if scenario["hold"]:
        targets = [float(x) for x in np.repeat(rng.choice(LEVELS, 30), scenario["hold"])]
    else:
        targets = [-1.0] * 390
    market = MarketData.from_frame(frame, spec)
    episode = run_policy(market, spec, (0, len(frame)), Script(targets))
    first = market.tradable((0, len(frame)), "data")[0]
    ref = books(frame, spec, episode, first, targets)
    np.testing.assert_allclose(episode.equity, ref["equity"], rtol=0, atol=1e-9)
    got = episode.turnover()
    assert got is not None
    assert got.fee_cost + got.slippage_cost == pytest.approx(ref["fees"], rel=1e-7, abs=1e-12)
    assert got.fee_cost == pytest.approx(ref["fees"] * 10 / 15, rel=1e-7)
    assert got.borrow_cost == pytest.approx(ref["borrow"], rel=1e-7) and ref["borrow"] > 0
    assert got.gross_return == pytest.approx(ref["gross"], rel=1e-7, abs=1e-12)
    assert got.turnover == pytest.approx(ref["notional"] / ref["equity"].mean(), rel=1e-7)
    steps = len(episode.ledger)
    assert got.annual_turnover == pytest.approx(got.turnover * episode.bars_per_year / steps)
    assert got.orders == np.count_nonzero(episode.ledger[:, L_TRADED])
    if name.startswith("a short closed out"):
        assert steps < 300 and episode.targets[-1] == 0.0  # it did end at the close-out
        assert got.orders == 2  # the entry and the close-out


def test_buy_and_hold_trades_once_and_pays_once() -> None:
    spec = EnvSpec(fee_bps=7.0, slippage_bps=3.0, borrow_bps=500.0)
    frame = bars(n=500, seed=3, drift=0.001)
    market = MarketData.from_frame(frame, spec)
    episode = run_policy(market, spec, (0, len(frame)), BuyAndHold())
    perf = episode.performance()
    assert perf.trades == 1 and perf.orders == 1
    assert np.flatnonzero(episode.ledger[:, L_TRADED]).tolist() == [0]  # the entry only
    assert perf.fee_cost == pytest.approx(7e-4) and perf.slippage_cost == pytest.approx(3e-4)
    assert perf.borrow_cost == 0.0 and perf.total_cost == pytest.approx(1e-3)
    assert perf.turnover == pytest.approx(1.0 / episode.equity.mean())  # 1 x the start equity
    assert perf.gross_return == pytest.approx(perf.total_return + 1e-3)
    assert perf.gross_return > 0 and perf.cost_share == pytest.approx(1e-3 / perf.gross_return)


def test_a_pass_without_trades_costs_nothing() -> None:
    spec = EnvSpec()
    frame = bars(n=300, seed=4)
    market = MarketData.from_frame(frame, spec)
    perf = run_policy(market, spec, (0, len(frame)), Script([0.0])).performance()
    assert perf.orders == 0 and perf.trades == 0
    assert perf.turnover == 0.0 and perf.annual_turnover == 0.0 and perf.total_cost == 0.0
    assert perf.gross_return == 0.0 and math.isnan(perf.cost_share)  # no profit to share
    assert perf.to_dict()["cost_share"] is None


def test_a_loss_before_costs_has_no_cost_share_and_a_small_profit_can_exceed_one() -> None:
    rates = CostRates(fee=1e-3, slippage=0.0, borrow_per_bar=0.0)
    ledger = np.zeros((2, 7))
    ledger[0, L_TRADED] = 1.0  # one full entry at the start equity: cost 1e-3
    lost = turnover([1.0, 0.99, 0.98], ledger, rates, bars_per_year=252)
    assert lost.total_cost == pytest.approx(1e-3) and lost.gross_return == pytest.approx(-0.019)
    assert math.isnan(lost.cost_share)
    thin = turnover([1.0, 0.9995, 0.9996], ledger, rates, bars_per_year=252)
    assert thin.gross_return == pytest.approx(6e-4) and thin.cost_share == pytest.approx(
        1e-3 / 6e-4
    )
    with pytest.raises(ValueError, match="3 equity points for 2 steps"):
        turnover([1.0, 1.0], ledger, rates, bars_per_year=252)


def test_every_backtest_report_has_the_same_turnover_metrics(market: MarketFiles) -> None:
    data = DataSpec(uri=market.uri("SPY_1d.csv"))
    report = run_backtest(data, EnvSpec(), ExpertSpec(), policy="expert", split="test")
    metrics = json.loads(json.dumps(report.to_dict(), allow_nan=False))["metrics"]
    new = {"orders", "turnover", "annual_turnover", "fee_cost", "slippage_cost",
           "borrow_cost", "total_cost", "gross_return", "cost_share"}  # fmt: skip
    for name in ("expert", "buy-and-hold", "random"):
        assert new <= set(metrics[name])
        m = metrics[name]
        assert m["gross_return"] == pytest.approx(m["total_return"] + m["total_cost"])
        assert m["orders"] >= 1 and m["total_cost"] > 0
    assert metrics["buy-and-hold"]["orders"] == 1
    assert metrics["expert"]["orders"] >= metrics["expert"]["trades"]  # >= 1 order a trip
    assert metrics["random"]["turnover"] > metrics["expert"]["turnover"]
    for label in ("Turnover (x mean equity)", "Costs paid", "Costs / gross return"):
        assert label in report.table()


def test_reports_written_before_the_turnover_metrics_still_load() -> None:
    """A result.json of before: the Performance fields it had, nothing else."""
    old: dict[str, Any] = {
        "total_return": 0.1, "annual_return": 0.1, "volatility": 0.2, "sharpe": 0.5,
        "sortino": 0.7, "calmar": 0.4, "max_drawdown": -0.25, "win_rate": 0.5,
        "profit_factor": 1.2, "trades": 4, "mean_trade_return": 0.02, "exposure": 0.6,
        "stability": None, "bars": 250, "bars_per_year": 252.0,
    }  # fmt: skip
    values: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in old.items()}
    perf = Performance(**values)
    assert perf.orders == 0 and math.isnan(perf.turnover) and math.isnan(perf.cost_share)
    assert set(old) < set(perf.to_dict())
    assert "Costs paid" in format_table({"old": perf})
