"""Causal market features: bar t uses data up to and including bar t only.

Every feature is scale-free, so one model can read any market and any bar size:

- ``log_return``: ln(c_t / c_{t-1}) divided by the rolling volatility at t.
- ``rsi``: Wilder's RSI(period), mapped from [0, 100] to [-1, 1].
- ``ma_fast_ratio`` / ``ma_slow_ratio``: (c_t / MA_t - 1) divided by the rolling volatility.
- ``volatility``: ln(rolling volatility / its own long-run mean over 5 windows): the regime.
- ``volume_zscore``: z-score of ln(1 + volume) over the volatility window (needs volume).

Values are clipped to [-CLIP, CLIP]. Rows before every feature is defined (the warm-up) are
NaN in :class:`FeatureSet.values` and must not be observed: :attr:`FeatureSet.first_valid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FEATURE_NAMES = (
    "log_return",
    "rsi",
    "ma_fast_ratio",
    "ma_slow_ratio",
    "volatility",
    "volume_zscore",
)
DEFAULT_FEATURES = FEATURE_NAMES[:5]
CLIP = 10.0
LONG_VOL_WINDOWS = 5
_EPS = 1e-12


@dataclass(frozen=True)
class IndicatorParams:
    """Lookbacks of the indicators (mirrors EnvSpec's fields of the same names)."""

    rsi_period: int = 14
    ma_fast: int = 10
    ma_slow: int = 30
    volatility_window: int = 20

    @property
    def warmup(self) -> int:
        """Bars needed before every feature is defined (the first valid row index)."""
        long_vol = self.volatility_window * LONG_VOL_WINDOWS + self.volatility_window
        return max(self.rsi_period + 1, self.ma_slow, self.ma_fast, long_vol)


@dataclass(frozen=True)
class Indicators:
    """Raw indicators (unscaled) that the expert heuristic and the curriculum read."""

    close: npt.NDArray[np.float64]
    rsi: npt.NDArray[np.float64]
    ma_fast: npt.NDArray[np.float64]
    ma_slow: npt.NDArray[np.float64]
    volatility: npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureSet:
    """Features of a whole price series, with the row from which all are defined."""

    names: tuple[str, ...]
    values: npt.NDArray[np.float32]  # [T, F], NaN during warm-up
    first_valid: int
    indicators: Indicators


def wilder_rsi(close: pd.Series, period: int) -> pd.Series:
    """Wilder's RSI (0..100), NaN for the first ``period`` bars."""
    delta = close.diff()
    gain = delta.clip(lower=0.0)
    loss = (-delta).clip(lower=0.0)
    alpha = 1.0 / period
    avg_gain = gain.ewm(alpha=alpha, adjust=False, min_periods=period).mean()
    avg_loss = loss.ewm(alpha=alpha, adjust=False, min_periods=period).mean()
    total = avg_gain + avg_loss
    rsi = 100.0 * avg_gain / total.where(total > 0)
    # A flat stretch (no gains, no losses) is neutral, not undefined.
    return rsi.where(~((total == 0) & avg_gain.notna()), 50.0)


def _log(series: pd.Series) -> pd.Series:
    return pd.Series(np.log(series.to_numpy(dtype=np.float64)), index=series.index)


def compute_indicators(frame: pd.DataFrame, params: IndicatorParams) -> Indicators:
    close = frame["close"].astype("float64")
    log_ret = _log(close / close.shift(1))
    vol = log_ret.rolling(params.volatility_window, min_periods=params.volatility_window).std()
    return Indicators(
        close=np.asarray(close.to_numpy(), dtype=np.float64),
        rsi=wilder_rsi(close, params.rsi_period).to_numpy(dtype=np.float64),
        ma_fast=close.rolling(params.ma_fast).mean().to_numpy(dtype=np.float64),
        ma_slow=close.rolling(params.ma_slow).mean().to_numpy(dtype=np.float64),
        volatility=vol.to_numpy(dtype=np.float64),
    )


def compute_features(
    frame: pd.DataFrame,
    names: Sequence[str] = DEFAULT_FEATURES,
    params: IndicatorParams | None = None,
) -> FeatureSet:
    """Compute the named features over an OHLCV frame (columns open..close[, volume])."""
    params = params or IndicatorParams()
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; known: {list(FEATURE_NAMES)}")
    if "volume_zscore" in names and "volume" not in frame.columns:
        raise ValueError("feature volume_zscore needs a volume column, and this data has none")
    ind = compute_indicators(frame, params)
    close = pd.Series(ind.close)
    vol = pd.Series(ind.volatility)
    safe_vol = vol.where(vol.isna() | (vol > _EPS), _EPS)  # keep the warm-up NaN
    long_window = params.volatility_window * LONG_VOL_WINDOWS
    columns: dict[str, pd.Series] = {
        "log_return": _log(close / close.shift(1)) / safe_vol,
        "rsi": (pd.Series(ind.rsi) - 50.0) / 50.0,
        "ma_fast_ratio": (close / pd.Series(ind.ma_fast) - 1.0) / safe_vol,
        "ma_slow_ratio": (close / pd.Series(ind.ma_slow) - 1.0) / safe_vol,
        "volatility": _log(safe_vol / safe_vol.rolling(long_window).mean()),
    }
    if "volume_zscore" in names:
        lv = pd.Series(np.log1p(frame["volume"].to_numpy(dtype=np.float64)))
        window = params.volatility_window
        std = lv.rolling(window).std()
        columns["volume_zscore"] = (lv - lv.rolling(window).mean()) / std.where(std > _EPS, 1.0)
    matrix = np.column_stack([columns[n].to_numpy(dtype=np.float64) for n in names])
    return feature_set(names, matrix, ind)


def feature_set(
    names: Sequence[str], matrix: npt.NDArray[np.float64], ind: Indicators
) -> FeatureSet:
    """The FeatureSet of raw feature columns ([T, F], NaN in the warm-up): clipped, with the
    first row where all are defined (the serving fast path builds its columns otherwise
    and ends here too)."""
    matrix = np.clip(matrix, -CLIP, CLIP)
    defined = np.asarray(~np.isnan(matrix).any(axis=1), dtype=np.bool_)
    first_valid = int(np.argmax(defined)) if defined.any() else len(matrix)
    # After the warm-up every row must be defined: a gap would be a bug, not data.
    if first_valid < len(matrix) and not defined[first_valid:].all():
        bad = first_valid + int(np.argmin(defined[first_valid:]))
        raise ValueError(f"features undefined at row {bad} after the warm-up")
    return FeatureSet(
        names=tuple(names),
        values=matrix.astype(np.float32),
        first_valid=first_valid,
        indicators=ind,
    )
