"""The engine's fast paths equal the core's: features bit for bit (compute_features), shadow
votes (tie_break), and whole decisions (Ensemble.markets -> weight_path -> decide)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stevie_trainer.data.features import FEATURE_NAMES, IndicatorParams, compute_features
from stevie_trainer.ensemble.agent import FLAT, AccountState
from stevie_trainer.ensemble.decide import Ensemble
from stevie_trainer.ensemble.voting import METHODS, Method, flat_votes, tie_break
from stevie_trainer.serving import features as fast
from stevie_trainer.serving.bars import Bars
from stevie_trainer.serving.engine import Engine


def bars(frame: pd.DataFrame) -> Bars:
    volume = frame["volume"].to_numpy() if "volume" in frame.columns else None
    return Bars(
        pd.DatetimeIndex(frame.index).as_unit("ns").asi8,
        frame["open"].to_numpy(),
        frame["high"].to_numpy(),
        frame["low"].to_numpy(),
        frame["close"].to_numpy(),
        volume,
    )


@pytest.mark.parametrize("names", [FEATURE_NAMES[:5], FEATURE_NAMES, ("rsi", "volatility")])
@pytest.mark.parametrize("params", [IndicatorParams(), IndicatorParams(7, 5, 20, 10)])
def test_fast_features_are_compute_features_bit_for_bit(
    googl: pd.DataFrame, names: tuple[str, ...], params: IndicatorParams
) -> None:
    assert fast.self_check(names, params) is None
    for start, n in ((0, len(googl)), (1000, 159), (37, 400), (2100, 235)):
        frame = googl.iloc[start : start + n]
        got = fast.fast_features(
            frame["close"].to_numpy(), frame["volume"].to_numpy(), names, params
        )
        assert fast.same(got, compute_features(frame, names, params))


def test_flat_votes_are_tie_break_from_flat() -> None:
    rng = np.random.default_rng(0)
    for levels in (
        np.array([-1.0, 0.0, 1.0]),
        np.array([-0.5, 0.5, 1.0]),
        np.array([0.0, 0.25, 0.5, 1.0]),
        np.array([-1.0, -0.5, 0.5, 1.0]),
    ):
        probs = rng.dirichlet(np.ones(len(levels)), size=400)
        probs[::7] = 1.0 / len(levels)  # exact ties everywhere
        probs[1::7, :2] = probs[1::7, :2].max(axis=1, keepdims=True)  # ties of two
        probs[2::7, -2:] = 0.4  # ties away from flat
        want = [tie_break(p, levels, 0.0) for p in probs]
        assert list(flat_votes(probs, levels)) == want


def test_engine_decides_as_the_core_does(
    ensemble: Ensemble, googl: pd.DataFrame, needed: int
) -> None:
    engine = Engine(ensemble)
    reference = Engine(ensemble, use_fast=False)
    assert engine.features_mode == "fast" and reference.features_mode == "reference"
    held = AccountState(position=1.0, weight=0.97, unrealised=0.03, bars_in=6, drawdown=-0.02)
    for k, start in enumerate(range(0, len(googl) - needed, 97)):
        frame = googl.iloc[start : start + needed + k % 13]
        account = held if k % 2 else FLAT
        markets = ensemble.markets(frame)
        t = len(frame) - 1
        weights = ensemble.weight_path(markets, markets[0].close, np.array([t]))[0]
        want = ensemble.decide(markets, t, weights, account)
        assert engine.decide(bars(frame), account) == want
        assert reference.decide(bars(frame), account) == want


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("window", [None, 5])
def test_every_method_and_window(
    ensemble: Ensemble, googl: pd.DataFrame, method: Method, window: int | None
) -> None:
    other = Ensemble(ensemble.members, method, reweight_window=window)
    engine = Engine(other)
    for start in (0, 900, 1800):
        frame = googl.iloc[start : start + other.bars_needed + 3]
        markets = other.markets(frame)
        t = len(frame) - 1
        weights = other.weight_path(markets, markets[0].close, np.array([t]))[0]
        assert engine.decide(bars(frame), FLAT) == other.decide(markets, t, weights, FLAT)


def test_a_fast_path_that_differs_falls_back(
    ensemble: Ensemble, googl: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, needed: int
) -> None:
    monkeypatch.setattr(fast, "_EPS", 1e-9)  # a drifted copy of the feature code
    engine = Engine(ensemble)
    assert engine.features_mode == "reference" and engine.problems
    frame = googl.iloc[:needed]
    markets = ensemble.markets(frame)
    t = len(frame) - 1
    weights = ensemble.weight_path(markets, markets[0].close, np.array([t]))[0]
    assert engine.decide(bars(frame), FLAT) == ensemble.decide(markets, t, weights, FLAT)
