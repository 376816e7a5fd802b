"""Synthetic OHLC bars and target sequences for the simulator's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["bars", "switching"]


def bars(n: int = 500, seed: int = 0, drift: float = 0.0, vol: float = 0.01) -> pd.DataFrame:
    """Synthetic OHLC bars with gaps between a close and the next open, and real highs."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 4, n - 1))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=index)


def switching(n: int, levels: list[float], seed: int, hold: int = 25) -> list[float]:
    """Targets that change every ``hold`` bars on average (so weights have time to drift)."""
    rng = np.random.default_rng(seed)
    out, current = [], 0.0
    for _ in range(n):
        if rng.random() < 1.0 / hold:
            current = float(rng.choice(levels))
        out.append(current)
    return out
