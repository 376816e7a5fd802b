"""Bar frequency and chronological train/validation/test splits of OHLCV frames.

:func:`infer_bar_size` and :func:`bars_per_year` measure the frequency from the timestamps
(Sharpe is annualised by it); :func:`split_bounds` cuts a frame chronologically, by fractions
or by dates; :func:`summarize` describes a frame for reports. Problems are
:class:`~stevie_trainer.data.ohlcv.DataError` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd

from stevie_trainer.data.ohlcv import DataError

_YEAR_SECONDS = 365.25 * 86400

SplitName = Literal["train", "validation", "test", "all"]


class DataSummary(TypedDict):
    bars: int
    first: str
    last: str
    bar_size: str
    bars_per_year: float
    has_volume: bool


# ----------------------------------------------------------------------------- frequency


def _check_index(index: pd.Index[Any], what: str) -> np.ndarray:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{what} needs a DatetimeIndex, got {type(index).__name__}")
    if len(index) < 2:
        raise DataError(f"{what} needs at least 2 bars, got {len(index)}")
    steps = np.diff(index.as_unit("ns").asi8).astype(np.float64) / 1e9  # seconds
    if np.any(steps <= 0):
        raise DataError(f"{what} needs strictly ascending timestamps")
    return steps


def infer_bar_size(index: pd.Index[Any]) -> str:
    """The bar size from the median spacing: "1m", "5m", "1h", "4h", "1d", "1w", "90m", ..."""
    seconds = round(float(np.median(_check_index(index, "infer_bar_size"))))
    if 28 * 86400 <= seconds <= 31 * 86400:
        return "1mo"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def bars_per_year(index: pd.Index[Any]) -> float:
    """Bars per year measured from the data: (bars - 1) / span in years.

    Regular closures stay in the span (weekends, holidays, nights), so 24/7 hourly crypto
    gives ~8766, FX hourly ~6200, stocks daily ~252. Outages much longer than the usual
    gaps (over 7 days and 20 bar sizes) are left out so they do not deflate the figure.
    """
    steps = _check_index(index, "bars_per_year")
    limit = max(7 * 86400.0, 20 * float(np.median(steps)))
    kept = steps[steps <= limit]
    if kept.size == 0:  # every gap is huge: fall back to the plain ratio
        kept = steps
    return float(kept.size / (kept.sum() / _YEAR_SECONDS))


def summarize(df: pd.DataFrame) -> DataSummary:
    """Bars, first/last timestamp, bar size, bars per year and volume presence, for reports."""
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"summarize needs a DatetimeIndex, got {type(index).__name__}")
    return DataSummary(
        bars=len(df),
        first=index[0].isoformat() if len(df) else "",
        last=index[-1].isoformat() if len(df) else "",
        bar_size=infer_bar_size(index) if len(df) > 1 else "?",
        bars_per_year=round(bars_per_year(index), 2) if len(df) > 1 else 0.0,
        has_volume="volume" in df.columns,
    )


# ----------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitBounds:
    """Chronological splits as half-open positions ``(start, stop)`` into the full frame."""

    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]

    def get(self, name: SplitName | str) -> tuple[int, int]:
        bounds = {"train": self.train, "validation": self.validation, "test": self.test}
        bounds["all"] = (self.train[0], self.test[1])
        if name in bounds:
            return bounds[name]
        raise DataError(f"unknown split {name!r}: use train, validation, test or all")

    def select(self, df: pd.DataFrame, name: SplitName | str) -> pd.DataFrame:
        """The rows of ``df`` (the full frame) in split ``name``."""
        start, stop = self.get(name)
        return df.iloc[start:stop]


def _position(
    index: pd.Index[Any], when: str | datetime | pd.Timestamp, label: str, source: str
) -> int:
    index = _sorted_index(index, source)
    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise DataError(f"{source}: {label} {when!r} is not a date") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if stamp <= index[0] or stamp > index[-1]:
        raise DataError(
            f"{source}: {label} {stamp} is outside the data, which runs from "
            f"{index[0]} to {index[-1]} (it must leave bars before and after it)"
        )
    return int(index.searchsorted(stamp, side="left"))


def split_bounds(
    index: pd.Index[Any],
    *,
    train_fraction: float = 0.7,
    validation_fraction: float = 0.15,
    validation_start: str | datetime | pd.Timestamp | None = None,
    test_start: str | datetime | pd.Timestamp | None = None,
    source: str = "data",
) -> SplitBounds:
    """Chronological train/validation/test bounds; dates (first bar of a split) override
    fractions. With only ``test_start``, the bars before it are divided train:validation in
    the ratio of the fractions; with only ``validation_start``, test keeps its fraction."""
    n = len(index)
    if not 0 < train_fraction < 1 or not 0 < validation_fraction < 1:
        raise DataError(
            f"{source}: train_fraction and validation_fraction must be in (0, 1), "
            f"got {train_fraction} and {validation_fraction}"
        )
    if train_fraction + validation_fraction >= 1:
        raise DataError(
            f"{source}: train_fraction {train_fraction} + validation_fraction "
            f"{validation_fraction} leaves nothing for test"
        )
    if n < 3:
        raise DataError(f"{source}: {n} bars cannot be split into train, validation and test")
    if test_start is not None:
        test = _position(index, test_start, "test_start", source)
    else:
        test = n - round(n * (1 - train_fraction - validation_fraction))
    if validation_start is not None:
        val = _position(index, validation_start, "validation_start", source)
    elif test_start is not None:
        val = round(test * train_fraction / (train_fraction + validation_fraction))
    else:
        val = round(n * train_fraction)
    if val >= test:
        raise DataError(
            f"{source}: validation must start before test "
            f"(validation starts at {index[min(val, n - 1)]}, test at {index[min(test, n - 1)]})"
        )
    bounds = SplitBounds(train=(0, val), validation=(val, test), test=(test, n))
    for name in ("train", "validation", "test"):
        if bounds.get(name)[1] <= bounds.get(name)[0]:
            raise DataError(f"{source}: the {name} split is empty ({n} bars in total)")
    return bounds


def _sorted_index(index: pd.Index[Any], source: str) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{source}: split dates need a DatetimeIndex")
    if not index.is_monotonic_increasing:
        raise DataError(f"{source}: split dates need ascending timestamps")
    return index if index.tz is not None else index.tz_localize("UTC")
