"""Seeded data augmentation of the TRAINING split (validation and test are never augmented).

:func:`augment_frame` returns one augmented copy of an OHLCV frame; :func:`augment_copies`
makes ``spec.copies`` of them from one seed. Each technique of the
:class:`~stevie_api.techniques.AugmentationSpec` is on/off and parameterised:

- ``time_warp``: the path is resampled at a speed ``s`` drawn from [low, high]: new bar ``j``
  sits at original position ``j * s`` (linear interpolation of log prices), so a 1.2x warp is
  ~1/1.2 as long. Timestamps are re-spaced at the original (median) bar spacing from the
  original first timestamp; volume is interpolated and multiplied by ``s`` (a faster bar
  covers more time).
- ``volatility_scaling``: log returns (and bar gaps and wicks) around their mean are scaled
  by a factor drawn from [low, high], so realised volatility scales by exactly that factor.
- ``regime_shift``: the series is cut into random segments of
  ``REGIME_MIN_BARS..REGIME_MAX_BARS`` bars; each segment, with probability
  ``REGIME_SHIFT_PROB``, gets a drift drawn from [-magnitude, +magnitude] added to every log
  return of the segment (so it compounds over the segment).
- ``noise``: multiplicative Gaussian noise per bar: log close += N(0, std). The bar's shape
  is kept (open follows the previous close by its original gap; wicks are kept).
- ``volume_scaling``: volume of each bar multiplied by a factor drawn from
  [1 - range, 1 + range] (only when the frame has volume).

Bars are represented in log space as the close path, the gap of each open from the previous
close, and the upper and lower wicks (>= 0). Rebuilding a bar from them always gives a valid
bar: positive prices, ``high >= max(open, close)``, ``low <= min(open, close)``. A disabled
technique changes nothing; with every technique disabled the output equals the input
exactly. Each technique draws from its own child generator, so enabling one technique does
not change the random draws of another. The input frame is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_api.techniques import AugmentationSpec
from stevie_trainer.data.ohlcv import OHLC_COLUMNS

__all__ = [
    "REGIME_MAX_BARS",
    "REGIME_MIN_BARS",
    "REGIME_SHIFT_PROB",
    "augment_copies",
    "augment_frame",
    "describe",
]

REGIME_MIN_BARS = 20
REGIME_MAX_BARS = 200
REGIME_SHIFT_PROB = 0.5
_TECHNIQUES = ("time_warp", "volatility_scaling", "regime_shift", "noise", "volume_scaling")

Array = npt.NDArray[np.float64]


@dataclass
class _Bars:
    """OHLC bars in log space: close path, open gaps, upper and lower wicks."""

    close: Array  # ln close
    gap: Array  # ln open_t - ln close_{t-1} (bar 0: relative to its own close)
    upper: Array  # ln high - max(ln open, ln close) >= 0
    lower: Array  # min(ln open, ln close) - ln low >= 0

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> _Bars:
        o, h, lo, c = (np.log(frame[col].to_numpy(dtype=np.float64)) for col in OHLC_COLUMNS)
        prev = np.concatenate([c[:1], c[:-1]])
        return cls(
            close=c,
            gap=o - prev,
            upper=np.maximum(h - np.maximum(o, c), 0.0),
            lower=np.maximum(np.minimum(o, c) - lo, 0.0),
        )

    def to_prices(self) -> dict[str, Array]:
        c = self.close
        o = np.concatenate([c[:1], c[:-1]]) + self.gap
        h = np.maximum(o, c) + self.upper
        low = np.minimum(o, c) - self.lower
        return {"open": np.exp(o), "high": np.exp(h), "low": np.exp(low), "close": np.exp(c)}


def _time_warp(
    bars: _Bars, volume: Array | None, index: pd.DatetimeIndex, speed: float
) -> tuple[_Bars, Array | None, pd.DatetimeIndex]:
    n = len(bars.close)
    if n < 2 or speed == 1.0:
        return bars, volume, index
    n_new = int(np.floor((n - 1) / speed + 1e-9)) + 1
    pos = np.minimum(np.arange(n_new, dtype=np.float64) * speed, n - 1.0)
    grid = np.arange(n, dtype=np.float64)

    def at(values: Array) -> Array:
        return np.interp(pos, grid, values)

    warped = _Bars(
        close=at(bars.close), gap=at(bars.gap), upper=at(bars.upper), lower=at(bars.lower)
    )
    new_volume = None if volume is None else at(volume) * speed
    spacing = int(np.median(np.diff(index.asi8)))
    stamps = index.asi8[0] + np.arange(n_new, dtype=np.int64) * spacing
    new_index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ns", utc=True), name=index.name)
    return warped, new_volume, new_index


def _scale_volatility(bars: _Bars, factor: float) -> _Bars:
    returns = np.diff(bars.close)
    if len(returns) == 0:
        return bars
    mean = float(returns.mean())
    scaled = mean + factor * (returns - mean)
    close = bars.close[0] + np.concatenate([[0.0], np.cumsum(scaled)])
    return _Bars(
        close=close, gap=bars.gap * factor, upper=bars.upper * factor, lower=bars.lower * factor
    )


def _regime_drift(n: int, magnitude: float, rng: np.random.Generator) -> Array:
    """Per-bar drift added to the log return into each bar (bar 0 has no return)."""
    drift = np.zeros(n, dtype=np.float64)
    start = 1
    while start < n:
        length = int(rng.integers(REGIME_MIN_BARS, REGIME_MAX_BARS + 1))
        shifted = rng.random() < REGIME_SHIFT_PROB
        value = float(rng.uniform(-magnitude, magnitude))
        if shifted:
            drift[start : start + length] = value
        start += length
    return drift


def _shift_regimes(bars: _Bars, magnitude: float, rng: np.random.Generator) -> _Bars:
    drift = _regime_drift(len(bars.close), magnitude, rng)
    return _Bars(
        close=bars.close + np.cumsum(drift), gap=bars.gap, upper=bars.upper, lower=bars.lower
    )


def augment_frame(
    frame: pd.DataFrame, spec: AugmentationSpec, rng: np.random.Generator
) -> pd.DataFrame:
    """One augmented copy of an OHLCV frame (columns open, high, low, close[, volume]).

    Applies every enabled technique of ``spec`` (``spec.enabled`` and ``spec.copies`` are
    read by :func:`augment_copies`, not here) in the order time warp, volatility scaling,
    regime shift, noise, volume scaling. The result has the OHLC(V) columns only, float64,
    and passes :func:`stevie_trainer.data.ohlcv.validate_ohlcv`.
    """
    missing = [c for c in OHLC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"augment_frame: missing column(s) {', '.join(missing)}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ValueError("augment_frame: the frame's index must be a DatetimeIndex")
    rngs = dict(zip(_TECHNIQUES, rng.spawn(len(_TECHNIQUES)), strict=True))
    columns = [*OHLC_COLUMNS, *(["volume"] if "volume" in frame.columns else [])]
    index = frame.index
    volume = frame["volume"].to_numpy(dtype=np.float64) if "volume" in frame.columns else None
    bars: _Bars | None = None  # stays None (prices untouched, bit for bit) unless needed

    if spec.time_warp.enabled:
        speed = float(rngs["time_warp"].uniform(spec.time_warp.low, spec.time_warp.high))
        bars, volume, index = _time_warp(_Bars.from_frame(frame), volume, index, speed)
    if spec.volatility_scaling.enabled:
        vs = spec.volatility_scaling
        factor = float(rngs["volatility_scaling"].uniform(vs.low, vs.high))
        bars = _scale_volatility(bars or _Bars.from_frame(frame), factor)
    if spec.regime_shift.enabled:
        rs = rngs["regime_shift"]
        bars = _shift_regimes(bars or _Bars.from_frame(frame), spec.regime_shift.magnitude, rs)
    if spec.noise.enabled:
        bars = bars or _Bars.from_frame(frame)
        eps = rngs["noise"].normal(0.0, spec.noise.std, size=len(bars.close))
        bars = _Bars(close=bars.close + eps, gap=bars.gap, upper=bars.upper, lower=bars.lower)
    if volume is not None and spec.volume_scaling.enabled:
        r = spec.volume_scaling.range
        volume = volume * rngs["volume_scaling"].uniform(1.0 - r, 1.0 + r, size=len(volume))

    if bars is None:
        data: dict[str, Array] = {c: frame[c].to_numpy(dtype=np.float64) for c in OHLC_COLUMNS}
    else:
        data = bars.to_prices()
    if volume is not None:
        data["volume"] = np.maximum(volume, 0.0)
    out = pd.DataFrame({c: data[c] for c in columns}, index=index.copy())
    out.index.name = frame.index.name
    return out


def augment_copies(frame: pd.DataFrame, spec: AugmentationSpec, seed: int) -> list[pd.DataFrame]:
    """``spec.copies`` augmented copies of ``frame`` (the training split), deterministic for a
    seed: copy ``i`` uses child ``i`` of ``np.random.SeedSequence(seed)``. Returns ``[]`` when
    ``spec.enabled`` is false (the original frame is always trained on, and is not included).
    """
    if not spec.enabled:
        return []
    children = np.random.SeedSequence(seed).spawn(spec.copies)
    return [augment_frame(frame, spec, np.random.default_rng(child)) for child in children]


def describe(spec: AugmentationSpec) -> dict[str, Any]:
    """A JSON-serialisable summary of the augmentation, for reports and result.json."""
    techniques: dict[str, dict[str, Any]] = {
        "noise": {"enabled": spec.noise.enabled, "std": spec.noise.std},
        "volume_scaling": {
            "enabled": spec.volume_scaling.enabled,
            "range": spec.volume_scaling.range,
        },
        "regime_shift": {
            "enabled": spec.regime_shift.enabled,
            "magnitude": spec.regime_shift.magnitude,
            "segment_bars": [REGIME_MIN_BARS, REGIME_MAX_BARS],
            "shift_probability": REGIME_SHIFT_PROB,
        },
        "volatility_scaling": {
            "enabled": spec.volatility_scaling.enabled,
            "low": spec.volatility_scaling.low,
            "high": spec.volatility_scaling.high,
        },
        "time_warp": {
            "enabled": spec.time_warp.enabled,
            "low": spec.time_warp.low,
            "high": spec.time_warp.high,
        },
    }
    parts = []
    if spec.noise.enabled:
        parts.append(f"noise {spec.noise.std:.3%} std")
    if spec.volume_scaling.enabled:
        parts.append(
            f"volume x[{1 - spec.volume_scaling.range:g}, {1 + spec.volume_scaling.range:g}]"
        )
    if spec.regime_shift.enabled:
        parts.append(f"regime shifts +/-{spec.regime_shift.magnitude:.2%}/bar")
    if spec.volatility_scaling.enabled:
        vs = spec.volatility_scaling
        parts.append(f"volatility x[{vs.low:g}, {vs.high:g}]")
    if spec.time_warp.enabled:
        parts.append(f"time warp x[{spec.time_warp.low:g}, {spec.time_warp.high:g}] speed")
    active = spec.enabled and bool(parts)
    summary = f"{spec.copies} copies: " + ", ".join(parts) if active else "off"
    return {
        "enabled": spec.enabled,
        "copies": spec.copies if spec.enabled else 0,
        "techniques": techniques,
        "summary": summary,
    }
