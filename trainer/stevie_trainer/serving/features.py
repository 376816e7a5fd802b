"""The features of :func:`stevie_trainer.data.features.compute_features`, from numpy arrays.

``compute_features`` spends ~2.5 ms on a request's ~160 bars, nearly all of it in pandas'
per-call overhead (Series construction, alignment, ~40 operations); the arithmetic is a few
microseconds. This module runs the *same* operations in the same order on the arrays: the
elementwise steps as numpy ufuncs (what pandas calls underneath) and the rolling and
exponential windows through pandas' own window kernels (``pandas._libs.window.aggregations``,
the functions ``Series.rolling(...).mean()/std()`` and ``Series.ewm(...).mean()`` call),
so the values are bit-identical, not merely close.

It mirrors code it does not own, so it is checked, not trusted: :func:`self_check` compares
it with ``compute_features`` on synthetic series for each feature view an ensemble uses, and
the engine falls back to ``compute_features`` when any value differs (or when a pandas
release moves the kernels). Tests compare both on real bars too.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_trainer.data.features import (
    FEATURE_NAMES,
    LONG_VOL_WINDOWS,
    FeatureSet,
    IndicatorParams,
    Indicators,
    compute_features,
    feature_set,
)

try:  # private: the kernels pandas' rolling/ewm methods call; checked by self_check
    _agg: Any = importlib.import_module("pandas._libs.window.aggregations")
except ImportError:  # pragma: no cover - a pandas that moved them: the engine falls back
    _agg = None

__all__ = ["available", "fast_features", "self_check"]

F64 = npt.NDArray[np.float64]
_EPS = 1e-12  # as stevie_trainer.data.features


def available() -> bool:
    """Whether pandas' window kernels could be imported."""
    return _agg is not None


def _prep(x: F64) -> F64:
    """What rolling/ewm do to their input first: float64, inf -> NaN."""
    inf = np.isinf(x)
    return np.where(inf, np.nan, x) if inf.any() else x


@functools.lru_cache(maxsize=64)
def _bounds(n: int, window: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """pandas' FixedWindowIndexer bounds (center=False, closed='right', step 1); cached
    (requests repeat their length), read-only."""
    end = np.arange(1, n + 1, dtype=np.int64)
    start = np.clip(end - window, 0, n)
    end = np.clip(end, 0, n)
    start.flags.writeable = end.flags.writeable = False
    return start, end


def _roll_mean(x: F64, window: int) -> F64:
    start, end = _bounds(len(x), window)
    out: F64 = _agg.roll_mean(_prep(x), start, end, window)
    return out


def _roll_std(x: F64, window: int) -> F64:
    start, end = _bounds(len(x), window)
    var: F64 = _agg.roll_var(_prep(x), start, end, window, ddof=1)
    out = np.sqrt(var)
    out[var < 0] = 0.0  # pandas' zsqrt
    return out


def _ewm_mean(x: F64, alpha: float, min_periods: int) -> F64:
    com = float((1 - alpha) / alpha)  # pandas' get_center_of_mass
    n = len(x)
    start, end = np.array([0], dtype=np.int64), np.array([n], dtype=np.int64)
    out: F64 = _agg.ewm(_prep(x), start, end, max(min_periods, 1), com, False, False, None, True)
    return out


def _shift(x: F64) -> F64:
    out = np.empty_like(x)
    out[0] = np.nan
    out[1:] = x[:-1]
    return out


def _clip_lower0(x: F64) -> F64:
    """Series.clip(lower=0.0): values below 0 become 0, NaN stays NaN."""
    return np.where(np.isnan(x) | (x >= 0.0), x, 0.0)


def _rsi(close: F64, period: int) -> F64:
    """wilder_rsi on arrays."""
    delta = close - _shift(close)
    gain = _clip_lower0(delta)
    loss = _clip_lower0(-delta)
    alpha = 1.0 / period
    avg_gain = _ewm_mean(gain, alpha, period)
    avg_loss = _ewm_mean(loss, alpha, period)
    total = avg_gain + avg_loss
    rsi = 100.0 * avg_gain / np.where(total > 0, total, np.nan)
    flat = (total == 0) & ~np.isnan(avg_gain)
    return np.where(flat, 50.0, rsi)


def indicators(close: F64, params: IndicatorParams) -> Indicators:
    """compute_indicators on arrays."""
    log_ret = np.log(close / _shift(close))
    return Indicators(
        close=close,
        rsi=_rsi(close, params.rsi_period),
        ma_fast=_roll_mean(close, params.ma_fast),
        ma_slow=_roll_mean(close, params.ma_slow),
        volatility=_roll_std(log_ret, params.volatility_window),
    )


def fast_features(
    close: F64,
    volume: F64 | None,
    names: Sequence[str],
    params: IndicatorParams,
) -> FeatureSet:
    """compute_features on arrays (``close`` float64; ``volume`` when the bars have it)."""
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; known: {list(FEATURE_NAMES)}")
    if "volume_zscore" in names and volume is None:
        raise ValueError("feature volume_zscore needs a volume column, and this data has none")
    with np.errstate(all="ignore"):
        ind = indicators(np.asarray(close, dtype=np.float64), params)
        vol = ind.volatility
        safe_vol = np.where(np.isnan(vol) | (vol > _EPS), vol, _EPS)
        long_window = params.volatility_window * LONG_VOL_WINDOWS
        c = ind.close
        columns: dict[str, F64] = {
            "log_return": np.log(c / _shift(c)) / safe_vol,
            "rsi": (ind.rsi - 50.0) / 50.0,
            "ma_fast_ratio": (c / ind.ma_fast - 1.0) / safe_vol,
            "ma_slow_ratio": (c / ind.ma_slow - 1.0) / safe_vol,
            "volatility": np.log(safe_vol / _roll_mean(safe_vol, long_window)),
        }
        if "volume_zscore" in names and volume is not None:
            lv = np.log1p(np.asarray(volume, dtype=np.float64))
            window = params.volatility_window
            std = _roll_std(lv, window)
            columns["volume_zscore"] = (lv - _roll_mean(lv, window)) / np.where(
                std > _EPS, std, 1.0
            )
    return feature_set(names, np.column_stack([columns[n] for n in names]), ind)


def _samples(n: int) -> list[pd.DataFrame]:
    """Synthetic bars that reach every branch: trends, noise, a flat stretch, zero volume."""
    rng = np.random.default_rng(7)
    frames = []
    for k, sigma in enumerate((0.01, 0.03)):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
        if k == 1:
            close[n // 3 : n // 3 + 40] = close[n // 3]  # flat: RSI 50, volatility at EPS
        volume = rng.lognormal(10.0, 1.0, n)
        volume[: n // 10] = 0.0
        frames.append(
            pd.DataFrame(
                {
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": volume,
                },
                index=pd.date_range("2000-01-01", periods=n, freq="1h", tz="UTC"),
            )
        )
    return frames


def same(a: FeatureSet, b: FeatureSet) -> bool:
    """Bit-identical features, warm-up and indicators (NaN equal to NaN)."""
    if a.names != b.names or a.first_valid != b.first_valid:
        return False
    pairs = [(a.values, b.values)] + [
        (getattr(a.indicators, f), getattr(b.indicators, f))
        for f in ("close", "rsi", "ma_fast", "ma_slow", "volatility")
    ]
    return all(x.shape == y.shape and np.array_equal(x, y, equal_nan=True) for x, y in pairs)


def self_check(names: Sequence[str], params: IndicatorParams, n: int = 600) -> str | None:
    """None when :func:`fast_features` equals ``compute_features`` bit for bit on synthetic
    bars; else what differs (the engine then uses ``compute_features``)."""
    if not available():
        return "pandas' window kernels are not importable"
    for frame in _samples(n):
        try:
            fast = fast_features(
                frame["close"].to_numpy(), frame["volume"].to_numpy(), names, params
            )
        except Exception as err:  # a pandas whose kernels changed their signature
            return f"fast features failed: {type(err).__name__}: {err}"
        if not same(fast, compute_features(frame, names, params)):
            return f"fast features differ from compute_features for {list(names)} {params}"
    return None
