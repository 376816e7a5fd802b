"""The RSI/MA expert (signals, sizing, stops, causality) and look-ahead by stepping."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from stevie_api.market import EnvSpec, ExpertSpec
from stevie_trainer.data.features import Indicators
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from stevie_trainer.evaluation.baselines import ExpertPolicy, expert_targets
from stevie_trainer.evaluation.episode import run_policy
from support.data import MarketFiles
from support.mechanics import mechanics_spec

SPEC = ExpertSpec()  # RSI 30/70, stop loss 5%, take profit 10%, shorts allowed


def indicators(rsi: list[float], fast: list[float], slow: list[float]) -> Indicators:
    n = len(rsi)
    return Indicators(
        close=np.full(n, 100.0),
        rsi=np.asarray(rsi, dtype=np.float64),
        ma_fast=np.asarray(fast, dtype=np.float64),
        ma_slow=np.asarray(slow, dtype=np.float64),
        volatility=np.full(n, 0.01),
    )


def decide(
    ind: Indicators,
    t: int,
    pos: float = 0.0,
    entry: float = np.nan,
    spec: ExpertSpec = SPEC,
    short_max: float = 1.0,
) -> float:
    out = expert_targets(
        ind,
        spec,
        np.array([t]),
        np.array([pos]),
        np.array([entry]),
        long_max=1.0,
        short_max=short_max,
    )
    return float(out[0])


# Bar 1 of each case is the decision bar; bar 0 is the previous bar (for crossovers).
@pytest.mark.parametrize(
    ("rsi", "fast", "slow", "target"),
    [
        ([50, 50], [99, 99], [100, 100], 0.0),  # no signal: stay flat
        ([50, 25], [101, 101], [100, 100], 1.0),  # oversold in an uptrend: full long
        ([50, 25], [99, 99], [100, 100], 0.5),  # oversold against the trend: half long
        ([50, 45], [99, 101], [100, 100], 1.0),  # bullish cross with RSI < 50: full long
        ([50, 55], [99, 101], [100, 100], 0.5),  # bullish cross, RSI > 50: half long
        ([50, 75], [99, 99], [100, 100], -1.0),  # overbought in a downtrend: full short
        ([50, 75], [101, 101], [100, 100], -0.5),  # overbought against the trend: half
        ([50, 55], [101, 99], [100, 100], -1.0),  # bearish cross with RSI > 50: full short
        ([50, 45], [101, 99], [100, 100], -0.5),  # bearish cross, RSI < 50: half short
        ([50, 25], [101, 99], [100, 100], 0.0),  # buy and sell at once: no entry
    ],
)
def test_signals_and_sizing_on_constructed_indicators(
    rsi: list[float], fast: list[float], slow: list[float], target: float
) -> None:
    assert decide(indicators(rsi, fast, slow), 1) == target


def test_a_sell_signal_closes_a_long_then_may_flip_it_only_when_shorts_are_allowed() -> None:
    ind = indicators([50, 75], [99, 99], [100, 100])
    assert decide(ind, 1, pos=1.0, entry=100.0) == -1.0  # closed and flipped
    no_short = ExpertSpec(allow_short=False)
    assert decide(ind, 1, pos=1.0, entry=100.0, spec=no_short) == 0.0
    assert decide(ind, 1, pos=1.0, entry=100.0, short_max=0.0) == 0.0  # no short levels
    buy = indicators([50, 25], [101, 101], [100, 100])
    assert decide(buy, 1, pos=-0.5, entry=100.0) == 1.0  # a buy flips a short to long
    assert decide(buy, 1, pos=0.5, entry=100.0) == 0.5  # a held long is kept


@pytest.mark.parametrize(
    ("pos", "entry", "target"),
    [
        (1.0, 100.0 / 0.96, 1.0),  # long down 4%: held (the stop is 5%)
        (1.0, 100.0 / 0.95, 0.0),  # long down 5%: stopped out
        (1.0, 100.0 / 1.09, 1.0),  # long up 9%: held (the target is 10%)
        (1.0, 100.0 / 1.10, 0.0),  # long up 10%: take profit
        (-1.0, 100.0 / 1.05, 0.0),  # short, price up 5%: stopped out
        (-1.0, 100.0 / 0.89, 0.0),  # short, price down 11%: take profit
        (-0.5, 100.0 / 0.97, -0.5),  # short, price down 3%: held
    ],
)
def test_stop_loss_and_take_profit_close_the_position(
    pos: float, entry: float, target: float
) -> None:
    quiet = indicators([50, 50], [99, 99], [100, 100])  # no signal at all
    assert decide(quiet, 1, pos=pos, entry=entry) == target


def test_a_stopped_position_is_not_reentered_on_the_same_bar() -> None:
    buy = indicators([50, 25], [101, 101], [100, 100])  # a buy signal on the stop bar
    assert decide(buy, 1, pos=1.0, entry=100.0 / 0.94) == 0.0
    sell = indicators([50, 75], [99, 99], [100, 100])
    assert decide(sell, 1, pos=-1.0, entry=100.0 / 1.06) == 0.0


@pytest.mark.parametrize(("step", "exit_after"), [(-0.01, "stop"), (0.01, "target")])
def test_the_expert_in_the_simulator_exits_at_the_first_close_past_its_stop_or_target(
    step: float, exit_after: str
) -> None:
    """A buy signal at bar S, then prices moving 1% a bar: the long is closed at the open
    after the first close 5% below (stop) or 10% above (target) its entry price."""
    n, signal = 200, 140
    close = 100.0 * np.concatenate([np.ones(signal + 1), (1.0 + step) ** np.arange(1, n - signal)])
    open_ = np.concatenate([[100.0], close[:-1]])
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    frame = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
         "close": close}, index=index)  # fmt: skip
    spec = mechanics_spec()  # no hold: the stop is 5 bars away
    mkt = MarketData.from_frame(frame, spec)
    rsi = np.full(n, 50.0)
    rsi[signal] = 25.0  # oversold, with the fast MA above the slow one: a full-size buy
    ind = Indicators(close, rsi, np.full(n, 101.0), np.full(n, 100.0), np.full(n, 0.01))
    first_decision = mkt.first_obs
    episode = run_policy(mkt, spec, (0, n), ExpertPolicy(ind, SPEC))
    held = np.flatnonzero(episode.targets != 0.0) + first_decision + 1  # bars held long
    entry = open_[signal + 1]
    if exit_after == "stop":
        crossed = close <= entry * (1 - SPEC.stop_loss)
    else:
        crossed = close >= entry * (1 + SPEC.take_profit)
    first = int(np.flatnonzero(crossed[signal + 1 :])[0]) + signal + 1
    np.testing.assert_array_equal(held, np.arange(signal + 1, first + 1))  # out at next open
    (trade,) = episode.trade_returns
    cost = 15e-4
    assert trade == pytest.approx(open_[first + 1] / entry * (1 - cost) ** 2 - 1, rel=1e-9)


class Recording(ExpertPolicy):
    """The expert, recording the target it picks at every decision."""

    def __init__(self, market: MarketData) -> None:
        super().__init__(market.features.indicators, SPEC)
        self.decided: list[float] = []

    def act(self, obs: np.ndarray, accounts: Accounts) -> np.ndarray:
        targets = self.targets(accounts)
        self.decided.append(float(targets[0]))
        return accounts.actions_for_targets(targets)


def _expert_targets_along(frame: pd.DataFrame, spec: EnvSpec) -> np.ndarray:
    mkt = MarketData.from_frame(frame, spec)
    policy = Recording(mkt)
    run_policy(mkt, spec, (0, mkt.n_bars), policy)
    return np.asarray(policy.decided)


def _altered_future(frame: pd.DataFrame, cut: int, seed: int, jump: float = 1.0) -> pd.DataFrame:
    """``frame`` with every bar after ``cut`` replaced by another random path, which starts
    with a ``jump`` (a crash or a spike: what an indicator that peeked would react to)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(frame) - cut - 1
    scale = jump * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    for col in ("open", "high", "low", "close"):
        out[col] = np.concatenate(
            [frame[col].to_numpy()[: cut + 1], frame[col].to_numpy()[cut + 1 :] * scale]
        )
    return out


def test_the_experts_decisions_do_not_depend_on_future_bars(market: MarketFiles) -> None:
    frame = load_ohlcv(market.uri("BTCUSDT_1h.csv")).iloc[:3000]
    spec = EnvSpec()
    base = _expert_targets_along(frame, spec)
    first = MarketData.from_frame(frame, spec).first_obs
    for cut, jump in itertools.product((1200, 1500, 2000, 2400, 2700), (0.7, 1.4)):
        other = _expert_targets_along(_altered_future(frame, cut, cut, jump), spec)
        k = cut - first  # decisions made at bars up to ``cut``
        np.testing.assert_array_equal(base[: k + 1], other[: k + 1])
        assert not np.array_equal(base, other)  # the change did reach later decisions


def test_observations_reached_by_stepping_do_not_depend_on_future_bars(
    market: MarketFiles,
) -> None:
    """Step the env with the same actions over a series and over the same series with its
    future replaced: every observation up to the cut is identical, bit for bit."""
    frame = load_ohlcv(market.uri("BTCUSDT_1h.csv")).iloc[:2000]
    spec = mechanics_spec(positions=[-1.0, -0.5, 0.0, 0.5, 1.0], rebalance="drift")
    cut = 1500
    actions = np.random.default_rng(0).integers(0, 5, size=2000)

    def observations(data: pd.DataFrame) -> np.ndarray:
        env = TradingEnv(MarketData.from_frame(data, spec), spec, mode="eval")
        obs, _ = env.reset()
        seen = [obs]
        for a in actions:
            if env.bar >= cut:
                break
            obs, _, terminated, truncated, _ = env.step(a)
            seen.append(obs)
            if terminated or truncated:
                break
        return np.asarray(seen)

    base, other = observations(frame), observations(_altered_future(frame, cut, seed=1))
    assert len(base) > 1000
    np.testing.assert_array_equal(base, other)
