"""augment: each technique changes what it should by the expected amount, nothing else;
seeded determinism; every copy is valid OHLCV on real data; the input is never mutated."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_api.techniques import AugmentationSpec
from stevie_trainer.data.augment import (
    REGIME_MAX_BARS,
    REGIME_MIN_BARS,
    augment_copies,
    augment_frame,
    describe,
)
from stevie_trainer.data.ohlcv import load_ohlcv, validate_ohlcv
from support.data import MarketFiles

TECHNIQUES = ("noise", "volume_scaling", "regime_shift", "volatility_scaling", "time_warp")


@pytest.fixture(scope="module")
def btc(market: MarketFiles) -> pd.DataFrame:
    return load_ohlcv(market.uri("BTCUSDT_1h.csv"))


@pytest.fixture(scope="module")
def spy(market: MarketFiles) -> pd.DataFrame:
    return load_ohlcv(market.uri("SPY_1d.csv"))


def only(technique: str | None, **params: Any) -> AugmentationSpec:
    """A spec with only ``technique`` enabled (None: all disabled)."""
    fields: dict[str, Any] = {t: {"enabled": t == technique} for t in TECHNIQUES}
    if technique is not None:
        fields[technique].update(params)
    return AugmentationSpec.model_validate({"enabled": True, **fields})


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def log_returns(frame: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def assert_valid(frame: pd.DataFrame) -> None:
    validate_ohlcv(frame, "augmented")
    o, h, lo, c = (frame[x].to_numpy() for x in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert (lo > 0).all() and frame.index.is_unique and frame.index.is_monotonic_increasing
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert not frame.isna().to_numpy().any()


def test_all_disabled_is_identical(btc: pd.DataFrame) -> None:
    out = augment_frame(btc, only(None), rng())
    pd.testing.assert_frame_equal(out, btc, check_exact=True)
    assert out is not btc


@pytest.mark.parametrize("std", [0.001, 0.01])
def test_noise_std(btc: pd.DataFrame, std: float) -> None:
    out = augment_frame(btc, only("noise", std=std), rng())
    ratio = np.log(out["close"].to_numpy() / btc["close"].to_numpy())
    assert abs(ratio.std() / std - 1) < 0.2
    assert abs(ratio.mean()) < 0.1 * std
    pd.testing.assert_index_equal(out.index, btc.index)
    np.testing.assert_array_equal(out["volume"].to_numpy(), btc["volume"].to_numpy())


def test_volatility_scaling_exact_factor(btc: pd.DataFrame) -> None:
    out = augment_frame(btc, only("volatility_scaling", low=1.5, high=1.5), rng())
    before, after = log_returns(btc), log_returns(out)
    assert after.std() / before.std() == pytest.approx(1.5, rel=1e-9)
    assert after.mean() == pytest.approx(before.mean(), abs=1e-12)  # around the mean
    assert out["close"].iloc[0] == pytest.approx(btc["close"].iloc[0], rel=1e-12)


def test_volatility_scaling_range(btc: pd.DataFrame) -> None:
    ratios = []
    for seed in range(8):
        out = augment_frame(btc, only("volatility_scaling", low=0.8, high=1.2), rng(seed))
        ratios.append(log_returns(out).std() / log_returns(btc).std())
    assert all(0.8 - 1e-9 <= r <= 1.2 + 1e-9 for r in ratios)
    assert max(ratios) - min(ratios) > 0.05  # a factor is drawn per copy


def test_time_warp_length_and_timestamps(btc: pd.DataFrame) -> None:
    n = len(btc)
    out = augment_frame(btc, only("time_warp", low=1.25, high=1.25), rng())
    assert len(out) == int((n - 1) / 1.25) + 1
    assert len(out) / n == pytest.approx(1 / 1.25, rel=1e-3)
    assert out.index[0] == btc.index[0]
    assert (np.diff(pd.DatetimeIndex(out.index).asi8) == 3600 * 10**9).all()  # original 1h spacing
    slow = augment_frame(btc, only("time_warp", low=0.8, high=0.8), rng())
    assert len(slow) / n == pytest.approx(1 / 0.8, rel=1e-3)
    assert_valid(out)
    assert_valid(slow)


def test_time_warp_interpolates_log_prices(btc: pd.DataFrame) -> None:
    out = augment_frame(btc, only("time_warp", low=2.0, high=2.0), rng())
    close = btc["close"].to_numpy()
    np.testing.assert_allclose(out["close"].to_numpy(), close[::2][: len(out)], rtol=1e-12)
    half = augment_frame(btc, only("time_warp", low=0.5, high=0.5), rng())["close"].to_numpy()
    np.testing.assert_allclose(half[1:21:2], np.sqrt(close[:10] * close[1:11]), rtol=1e-12)
    # a 2x bar covers two original bars: volume doubles
    warped_vol = out["volume"].to_numpy()
    np.testing.assert_allclose(warped_vol, 2 * btc["volume"].to_numpy()[::2][: len(out)])


def test_time_warp_range(btc: pd.DataFrame) -> None:
    for seed in range(6):
        out = augment_frame(btc, only("time_warp"), rng(seed))
        assert 1 / 1.2 - 1e-3 <= len(out) / len(btc) <= 1 / 0.8 + 1e-3


def test_volume_scaling_bounds(btc: pd.DataFrame) -> None:
    out = augment_frame(btc, only("volume_scaling", range=0.05), rng())
    vol, orig = out["volume"].to_numpy(), btc["volume"].to_numpy()
    ratio = vol[orig > 0] / orig[orig > 0]
    assert ratio.min() >= 0.95 and ratio.max() <= 1.05
    assert ratio.std() > 0.02  # per bar, ~uniform: std 0.1/sqrt(12) = 0.029
    for col in ("open", "high", "low", "close"):  # prices untouched, bit for bit
        np.testing.assert_array_equal(out[col].to_numpy(), btc[col].to_numpy())


def test_volume_scaling_without_volume(btc: pd.DataFrame) -> None:
    frame = btc.drop(columns="volume")
    out = augment_frame(frame, only("volume_scaling"), rng())
    pd.testing.assert_frame_equal(out, frame, check_exact=True)
    full = augment_frame(frame, AugmentationSpec(enabled=True), rng())
    assert list(full.columns) == ["open", "high", "low", "close"]
    assert_valid(full)


def test_regime_shift_drift(btc: pd.DataFrame) -> None:
    m = 0.002
    out = augment_frame(btc, only("regime_shift", magnitude=m), rng())
    drift = log_returns(out) - log_returns(btc)
    assert np.abs(drift).max() <= m + 1e-9
    assert np.abs(drift).max() > 0.8 * m
    shifted = np.abs(drift) > 1e-10
    assert 0.3 < shifted.mean() < 0.7  # about half of the segments are shifted
    # piecewise constant over segments of REGIME_MIN_BARS..REGIME_MAX_BARS bars
    changes = np.count_nonzero(np.abs(np.diff(drift)) > 1e-10)
    mean_len = (REGIME_MIN_BARS + REGIME_MAX_BARS) / 2
    assert changes < len(drift) / REGIME_MIN_BARS
    assert changes > 0.3 * len(drift) / mean_len
    # compounding: the price ratio is the exponential of the cumulated drift
    ratio = out["close"].to_numpy() / btc["close"].to_numpy()
    np.testing.assert_allclose(np.log(ratio[1:]), np.cumsum(drift), atol=1e-9)


def test_enabling_one_technique_keeps_another_s_draws(btc: pd.DataFrame) -> None:
    warp = augment_frame(btc, only("time_warp"), rng(7))
    both = augment_frame(btc, AugmentationSpec(enabled=True), rng(7))
    assert len(warp) == len(both)


def test_copies_deterministic_and_distinct(btc: pd.DataFrame) -> None:
    spec = AugmentationSpec(enabled=True, copies=3)
    first, again = augment_copies(btc, spec, 42), augment_copies(btc, spec, 42)
    assert len(first) == 3
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    other = augment_copies(btc, spec, 43)
    assert not first[0].equals(other[0])
    assert not first[0].equals(first[1])  # independent child generators
    assert augment_copies(btc, spec.model_copy(update={"enabled": False}), 42) == []


def test_valid_on_real_data(btc: pd.DataFrame, spy: pd.DataFrame) -> None:
    for frame in (btc, spy):
        for copy in augment_copies(frame, AugmentationSpec(enabled=True, copies=3), 1):
            assert_valid(copy)
            assert list(copy.columns) == list(frame.columns)
            assert copy.index.name == frame.index.name


def test_valid_with_extreme_parameters(spy: pd.DataFrame) -> None:
    spec = AugmentationSpec.model_validate(
        {
            "enabled": True,
            "noise": {"std": 0.05},
            "volumeScaling": {"range": 0.99},
            "regimeShift": {"magnitude": 0.05},
            "volatilityScaling": {"low": 0.1, "high": 4.0},
            "timeWarp": {"low": 0.3, "high": 3.0},
            "copies": 4,
        }
    )
    for copy in augment_copies(spy, spec, 3):
        assert_valid(copy)


def test_input_not_mutated(btc: pd.DataFrame) -> None:
    before = btc.copy(deep=True)
    augment_copies(btc, AugmentationSpec(enabled=True, copies=2), 5)
    augment_frame(btc, AugmentationSpec(enabled=True), rng())
    pd.testing.assert_frame_equal(btc, before, check_exact=True)


def test_describe() -> None:
    spec = AugmentationSpec(enabled=True)
    info = describe(spec)
    json.dumps(info)
    assert info["copies"] == 2
    assert info["techniques"]["noise"] == {"enabled": True, "std": 0.001}
    assert "noise 0.100% std" in info["summary"] and "time warp" in info["summary"]
    off = describe(AugmentationSpec())
    assert off["summary"] == "off" and off["copies"] == 0
