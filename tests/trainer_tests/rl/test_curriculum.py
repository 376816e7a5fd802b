"""curriculum: regime labels from the training split only, balanced quartiles, episode starts
by dominant regime (turbulent windows really are more volatile), promotion by score and by
steps, and a JSON state round trip that restores behaviour exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stevie_api.techniques import CurriculumSpec
from stevie_trainer.data.features import IndicatorParams, compute_indicators
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.rl.curriculum import (
    Curriculum,
    cumulative_starts,
    label_regimes,
    regime_edges,
    stage_starts,
)
from support.data import MarketFiles


def volatility(uri: str) -> np.ndarray:
    frame = load_ohlcv(uri)
    return compute_indicators(frame, IndicatorParams()).volatility


@pytest.fixture(scope="module")
def btc_vol(market: MarketFiles) -> np.ndarray:
    """BTCUSDT hourly (bundled EUR/USD hourly on a clone with no ../shared)."""
    return volatility(market.uri("BTCUSDT_1h.csv"))


@pytest.fixture(scope="module")
def spy_vol(market: MarketFiles) -> np.ndarray:
    """SPY daily, 21 years: the fallback test relies on its regimes (1000-day windows)."""
    return volatility(market.exact("SPY_1d.csv"))


def train_bounds(vol: np.ndarray) -> tuple[int, int]:
    return 0, int(len(vol) * 0.7)


def test_labels_use_only_in_bounds_data(btc_vol: np.ndarray) -> None:
    lo, hi = len(btc_vol) * 2 // 15, len(btc_vol) * 2 // 3
    labels = label_regimes(btc_vol, (lo, hi))
    assert (labels[:lo] == -1).all() and (labels[hi:] == -1).all()
    changed = btc_vol.copy()
    changed[:lo] *= 10.0
    changed[hi:] = 1e-9
    np.testing.assert_array_equal(label_regimes(changed, (lo, hi)), labels)
    changed[hi - 1] *= 100.0  # a bar inside does matter
    assert label_regimes(changed, (lo, hi))[hi - 1] == 3


def test_labels_balanced_and_ordered(btc_vol: np.ndarray) -> None:
    bounds = train_bounds(btc_vol)
    labels = label_regimes(btc_vol, bounds)
    inside = labels[bounds[0] : bounds[1]]
    warmup = np.isnan(btc_vol[bounds[0] : bounds[1]])
    assert (inside[warmup] == -1).all() and warmup.sum() == 20  # volatility window
    counts = np.bincount(inside[~warmup], minlength=4)
    assert len(counts) == 4
    assert (np.abs(counts / counts.sum() - 0.25) < 0.01).all()
    means = [np.nanmean(btc_vol[: bounds[1]][inside == k]) for k in range(4)]
    assert means == sorted(means)
    edges = regime_edges(btc_vol, bounds)
    np.testing.assert_array_equal(label_regimes(btc_vol, bounds, edges=edges), labels)


def test_labels_errors() -> None:
    with pytest.raises(ValueError, match="no defined volatility"):
        label_regimes(np.full(50, np.nan), (0, 50))
    with pytest.raises(ValueError, match="outside"):
        label_regimes(np.ones(10), (0, 11))


def test_dominant_label_is_window_median() -> None:
    gen = np.random.default_rng(0)
    labels = gen.integers(0, 4, size=400)
    labels[:7] = -1
    first, last, length = 3, 390, 24
    per_stage = stage_starts(labels, first, last, length, fallback=False)
    got = {int(s): k for k, starts in enumerate(per_stage) for s in starts}
    for s in range(first, last - length + 1):
        window = labels[s : s + length]
        if (window < 0).any():
            assert s not in got
        else:
            assert got[s] == int(np.sort(window)[(length - 1) // 2])


@pytest.fixture(scope="module")
def btc_only_vol(market: MarketFiles) -> np.ndarray:
    """BTCUSDT hourly itself: how much more volatile its turbulent windows are is its own."""
    return volatility(market.exact("BTCUSDT_1h.csv"))


def test_starts_valid_and_regimes_ordered_on_btc(btc_only_vol: np.ndarray) -> None:
    btc_vol = btc_only_vol
    bounds = train_bounds(btc_vol)
    labels = label_regimes(btc_vol, bounds)
    first, last, length = 140, bounds[1] - 1, 500
    per_stage = stage_starts(labels, first, last, length)
    assert all(len(s) > 100 for s in per_stage)
    everything = np.concatenate(per_stage)
    assert len(np.unique(everything)) == len(everything)  # a partition here (none empty)
    assert everything.min() >= first and everything.max() <= last - length
    for starts in per_stage:
        assert starts.dtype == np.int64 and (np.diff(starts) > 0).all()
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(btc_vol))])
    window_vol = [float(np.mean((csum[s + length] - csum[s]) / length)) for s in per_stage]
    assert window_vol == sorted(window_vol)
    assert window_vol[3] > 1.8 * window_vol[0]  # turbulent windows are much more volatile


def test_fallback_fills_an_empty_extreme_regime(spy_vol: np.ndarray) -> None:
    bounds = train_bounds(spy_vol)
    labels = label_regimes(spy_vol, bounds)
    first, last, length = 140, bounds[1] - 1, 1000
    strict = stage_starts(labels, first, last, length, fallback=False)
    assert len(strict[3]) == 0  # 1000-day windows never have a turbulent median
    filled = stage_starts(labels, first, last, length)
    valid = sum(len(s) for s in strict)
    assert len(filled[3]) == valid // 4
    for k in range(3):
        np.testing.assert_array_equal(filled[k], strict[k])
    mean_vol = [float(np.mean([spy_vol[s : s + length].mean() for s in st])) for st in filled]
    assert mean_vol[3] > mean_vol[1]


def test_cumulative_starts(btc_vol: np.ndarray) -> None:
    bounds = train_bounds(btc_vol)
    labels = label_regimes(btc_vol, bounds)
    args = (labels, 140, bounds[1] - 1, 300)
    per_stage, cumulative = stage_starts(*args), cumulative_starts(*args)
    for k in range(4):
        np.testing.assert_array_equal(cumulative[k], np.sort(np.concatenate(per_stage[: k + 1])))
    assert len(cumulative[3]) == bounds[1] - 1 - 300 - 140 + 1  # every start, warm-up is past


def test_short_range_clamps_episode_length() -> None:
    labels = np.zeros(100, dtype=np.int64)
    per_stage = stage_starts(labels, 10, 50, 1000, fallback=False)
    np.testing.assert_array_equal(per_stage[0], [10])
    with pytest.raises(ValueError):
        stage_starts(labels, 50, 50, 10)


def score_spec(**kw: object) -> CurriculumSpec:
    return CurriculumSpec.model_validate(
        {"enabled": True, "promotion": "score", "scoreThreshold": 0.5, "windowEpisodes": 3, **kw}
    )


def test_promotion_by_score() -> None:
    cur = Curriculum(score_spec())
    assert (cur.stage, cur.stage_name, cur.regime, cur.finished) == (0, "stable", 0, False)
    for score in (1.0, 1.0):
        cur.record_episode(score)
    assert not cur.advance(100)  # fewer than windowEpisodes episodes
    cur.record_episode(-1.0)
    assert not cur.advance(200)  # mean 1/3 < 0.5
    cur.record_episode(1.0)
    assert not cur.advance(250)  # the last 3 (1, -1, 1): mean 1/3 < 0.5
    cur.record_episode(0.5)
    assert cur.mean_score == pytest.approx(0.5 / 3)
    cur.record_episode(1.0)
    assert cur.advance(300)  # the last 3 (1, 0.5, 1): the -1 left the window
    assert cur.stage_name == "moderate" and cur.mean_score is None
    done = cur.history[0]
    assert done["stage"] == "stable" and done["episodes"] == 6 and done["reason"] == "score"
    assert done["mean_score"] == pytest.approx(2.5 / 3)
    assert done["entered_at_timestep"] == 0 and done["left_at_timestep"] == 300
    assert cur.history[1]["entered_at_timestep"] == 300
    for stage in range(1, 4):
        for _ in range(3):
            cur.record_episode(2.0)
        assert cur.advance(300 + stage) is (stage < 3)
    assert cur.finished and cur.stage_name == "turbulent"
    cur.record_episode(5.0)
    assert not cur.advance(10**9)  # never past the last stage
    assert [h["stage"] for h in cur.history] == [
        "stable",
        "moderate",
        "high_volatility",
        "turbulent",
    ]


def test_score_rule_step_cap() -> None:
    cur = Curriculum(score_spec(scoreThreshold=10.0), max_steps_per_stage=1000)
    cur.record_episode(0.0)
    assert not cur.advance(999)
    assert cur.advance(1000) and cur.history[0]["reason"] == "max_steps"
    assert not cur.advance(1999) and cur.advance(2000)


def test_promotion_by_steps() -> None:
    spec = CurriculumSpec(enabled=True, promotion="steps", steps_per_stage=100)
    cur = Curriculum(spec)
    assert not cur.advance(99)
    assert cur.advance(100) and cur.stage == 1
    assert not cur.advance(150)
    assert cur.advance(250) and cur.stage == 2  # 150 steps in stage 1
    assert not cur.advance(340) and cur.advance(350) and cur.finished
    assert not cur.advance(10**6)
    default = Curriculum(CurriculumSpec(enabled=True, promotion="steps"), total_timesteps=1000)
    assert default.steps_per_stage == 250
    with pytest.raises(ValueError, match="stepsPerStage"):
        Curriculum(CurriculumSpec(enabled=True, promotion="steps"))


def test_stage_subset_maps_to_regimes() -> None:
    spec = CurriculumSpec(enabled=True, stages=["stable", "turbulent"], promotion="steps")
    cur = Curriculum(spec, total_timesteps=10)
    per_regime = [np.array([1, 2]), np.array([3]), np.array([4]), np.array([5, 6])]
    assert cur.regimes == [0, 3] and cur.active_regimes() == [0]
    np.testing.assert_array_equal(cur.starts(per_regime), [1, 2])
    assert cur.advance(5) and cur.finished
    assert cur.active_regimes() == [0, 3] and cur.active_regimes(cumulative=False) == [3]
    np.testing.assert_array_equal(cur.starts(per_regime), [1, 2, 5, 6])


def test_state_dict_round_trip_restores_behaviour() -> None:
    spec = score_spec(windowEpisodes=4, scoreThreshold=0.3)
    gen = np.random.default_rng(1)
    scores = gen.normal(0.2, 0.5, size=200)
    original = Curriculum(spec, max_steps_per_stage=5_000)
    for i, s in enumerate(scores[:60]):
        original.record_episode(float(s))
        original.advance(i * 100)
    state = json.loads(json.dumps(original.state_dict()))
    restored = Curriculum(spec, max_steps_per_stage=5_000)
    restored.load_state_dict(state)
    assert restored.history == original.history and restored.stage == original.stage
    for i, s in enumerate(scores[60:], start=60):
        for cur in (original, restored):
            cur.record_episode(float(s))
        assert original.advance(i * 100) == restored.advance(i * 100)
        assert original.history == restored.history and original.mean_score == restored.mean_score
    other = Curriculum(CurriculumSpec(enabled=True, stages=["stable", "moderate"]))
    with pytest.raises(ValueError, match="differ"):
        other.load_state_dict(state)
