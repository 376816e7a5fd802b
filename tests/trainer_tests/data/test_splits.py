"""splits: bar frequency measured from the data, summaries, chronological splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stevie_trainer.data.ohlcv import DataError, load_ohlcv
from stevie_trainer.data.splits import (
    SplitBounds,
    bars_per_year,
    infer_bar_size,
    split_bounds,
    summarize,
)
from support.data import BUNDLED_DAILY, BUNDLED_HOURLY, MarketFiles

# ----------------------------------------------------------------------------- frequency


@pytest.mark.parametrize(
    ("name", "low", "high", "bar"),
    [
        ("BTCUSDT_1h.csv", 8_672, 8_848, "1h"),  # 24/7: 8760 within 1%
        ("SPY_1d.csv", 239, 265, "1d"),  # 252 within 5%
        ("EURUSD_1h.csv", 5_900, 6_300, "1h"),  # closed at weekends
        (BUNDLED_DAILY, 239, 265, "1d"),  # GOOGL, on any machine
        (BUNDLED_HOURLY, 5_900, 6_300, "1h"),  # EUR/USD 2017, on any machine
    ],
)
def test_bars_per_year_measured(
    market: MarketFiles, name: str, low: float, high: float, bar: str
) -> None:
    uri = name if name.startswith("pkg://") else market.exact(name)
    index = load_ohlcv(uri).index
    assert low < bars_per_year(index) < high
    assert infer_bar_size(index) == bar


def test_bars_per_year_ignores_a_long_outage() -> None:
    before = pd.date_range("2021-01-01", periods=2000, freq="h", tz="UTC")
    after = pd.date_range("2022-01-01", periods=2000, freq="h", tz="UTC")
    assert bars_per_year(before.append(after)) == pytest.approx(8766, rel=0.001)


@pytest.mark.parametrize(
    ("freq", "expected"),
    [("1min", "1m"), ("5min", "5m"), ("15min", "15m"), ("1h", "1h"), ("4h", "4h"),
     ("1D", "1d"), ("7D", "1w"), ("90min", "90m"), ("30s", "30s")],
)  # fmt: skip
def test_infer_bar_size(freq: str, expected: str) -> None:
    index = pd.date_range("2021-01-01", periods=50, freq=freq, tz="UTC")
    assert infer_bar_size(index) == expected


def test_frequency_needs_two_bars() -> None:
    with pytest.raises(DataError, match="at least 2 bars"):
        bars_per_year(pd.DatetimeIndex([pd.Timestamp("2020-01-01", tz="UTC")]))


def test_summarize(market: MarketFiles) -> None:
    summary = summarize(load_ohlcv(market.exact("SOLUSDT_1h.csv")))
    assert summary["bars"] == 48_094
    assert summary["first"] == "2020-08-11T06:00:00+00:00"
    assert summary["last"] == "2026-02-05T23:00:00+00:00"
    assert summary["bar_size"] == "1h" and summary["has_volume"] is False
    assert summary["bars_per_year"] == pytest.approx(8760, rel=0.01)


# ----------------------------------------------------------------------------- splits


def _covers(bounds: SplitBounds, n: int) -> None:
    assert bounds.train[0] == 0 and bounds.test[1] == n
    assert bounds.train[1] == bounds.validation[0] and bounds.validation[1] == bounds.test[0]
    for name in ("train", "validation", "test"):
        start, stop = bounds.get(name)
        assert stop > start
    assert bounds.get("all") == (0, n)


def test_split_by_fraction() -> None:
    index = pd.date_range("2020-01-01", periods=1000, freq="h", tz="UTC")
    bounds = split_bounds(index)
    assert bounds == SplitBounds(train=(0, 700), validation=(700, 850), test=(850, 1000))
    _covers(bounds, 1000)
    other = split_bounds(index, train_fraction=0.5, validation_fraction=0.25)
    assert other.validation == (500, 750)
    frame = pd.DataFrame({"close": np.arange(1000.0)}, index=index)
    assert bounds.select(frame, "test").index[0] == index[850]
    with pytest.raises(DataError, match="unknown split 'dev'"):
        bounds.get("dev")


def test_split_by_date(market: MarketFiles) -> None:
    btc = load_ohlcv(market.exact("BTCUSDT_1h.csv"))
    n = len(btc)
    bounds = split_bounds(btc.index, validation_start="2023-01-01", test_start="2023-07-01")
    _covers(bounds, n)
    assert btc.index[bounds.validation[0]] == pd.Timestamp("2023-01-01", tz="UTC")
    assert btc.index[bounds.test[0]] == pd.Timestamp("2023-07-01", tz="UTC")
    only_test = split_bounds(btc.index, test_start=pd.Timestamp("2023-07-01", tz="UTC"))
    _covers(only_test, n)
    train, val = only_test.train[1], only_test.validation[1] - only_test.validation[0]
    assert train / (train + val) == pytest.approx(0.7 / 0.85, abs=1e-3)
    only_val = split_bounds(btc.index, validation_start="2022-06-01 12:30")
    _covers(only_val, n)
    assert btc.index[only_val.validation[0]] == pd.Timestamp("2022-06-01 13:00", tz="UTC")
    assert only_val.test[1] - only_val.test[0] == round(n * 0.15)


def test_split_errors() -> None:
    index = pd.date_range("2020-01-01", periods=100, freq="D", tz="UTC")
    with pytest.raises(DataError, match=r"test_start 2021-01-01 00:00:00\+00:00 is outside"):
        split_bounds(index, test_start="2021-01-01", source="spy.csv")
    with pytest.raises(DataError, match=r"validation_start .* is outside the data"):
        split_bounds(index, validation_start="2020-01-01")  # would leave train empty
    with pytest.raises(DataError, match="validation must start before test"):
        split_bounds(index, validation_start="2020-03-01", test_start="2020-02-01")
    with pytest.raises(DataError, match=r"the test split is empty|leaves nothing for test"):
        split_bounds(index, train_fraction=0.9, validation_fraction=0.1)
    with pytest.raises(DataError, match="not a date"):
        split_bounds(index, test_start="soon")
    with pytest.raises(DataError, match="cannot be split"):
        split_bounds(index[:2])
    tiny = split_bounds(index[:3], train_fraction=0.34, validation_fraction=0.33)
    assert tiny == SplitBounds(train=(0, 1), validation=(1, 2), test=(2, 3))
