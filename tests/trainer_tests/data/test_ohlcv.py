"""data: loading every real file, clear one-line errors, validation, bar counts."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_trainer.common import storage
from stevie_trainer.data.ohlcv import DataError, load_ohlcv, require_bars, validate_ohlcv
from support.data import BUNDLED_DAILY, MarketFiles

OHLC = ["open", "high", "low", "close"]

# file, rows, first bar, last bar, has volume (from ../shared/data/README.md)
SHARED = [
    ("BTCUSDT_1h.csv", 37_660, "2020-01-01 00:00", "2024-04-18 03:00", True),
    ("ETHUSDT_1h.csv", 37_660, "2020-01-01 00:00", "2024-04-18 03:00", True),
    ("BTCUSDT_1d.csv", 1_570, "2020-01-01", "2024-04-18", True),
    ("SOLUSDT_1h.csv", 48_094, "2020-08-11 06:00", "2026-02-05 23:00", False),
    ("EURUSD_1h.csv", 53_160, "2017-07-03 00:00", "2026-03-23 23:00", False),
    ("SPY_1d.csv", 5_241, "1999-11-01", "2020-08-28", True),
]
PKG = "pkg://gym_anytrading/datasets/data/"


def _check_frame(df: pd.DataFrame, rows: int, first: str, last: str, volume: bool) -> None:
    assert len(df) == rows
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC" and df.index.name == "timestamp"
    assert df.index[0] == pd.Timestamp(first, tz="UTC")
    assert df.index[-1] == pd.Timestamp(last, tz="UTC")
    assert list(df.columns) == [*OHLC, *(["volume"] if volume else [])]
    assert all(dtype == np.float64 for dtype in df.dtypes)
    assert df.index.is_monotonic_increasing and df.index.is_unique


@pytest.mark.parametrize(("name", "rows", "first", "last", "volume"), SHARED)
def test_every_shared_file_loads(
    market: MarketFiles, name: str, rows: int, first: str, last: str, volume: bool
) -> None:
    _check_frame(load_ohlcv(market.exact(name)), rows, first, last, volume)


def test_shared_values_are_the_file_values(market: MarketFiles) -> None:
    df = load_ohlcv(f"file://{market.exact('BTCUSDT_1h.csv')}")
    assert df.iloc[0].tolist() == [7189.43, 7190.52, 7170.15, 7171.55, 2449.049]
    spy = load_ohlcv(market.exact("SPY_1d.csv"))  # leading index column is dropped
    assert spy.iloc[-1].tolist() == [349.44, 350.72, 348.15, 350.58, 48588940.0]


@pytest.mark.parametrize(
    ("name", "rows", "first", "last"),
    [
        ("STOCKS_GOOGL.csv", 2_335, "2009-05-22", "2018-08-29"),
        ("FOREX_EURUSD_1H_ASK.csv", 6_225, "2017-01-01 22:00", "2017-12-29 21:00"),
    ],
)
def test_bundled_pkg_data_loads(name: str, rows: int, first: str, last: str) -> None:
    df = load_ohlcv(PKG + name)
    _check_frame(df, rows, first, last, volume=True)  # "Adj Close" is ignored
    if name == "STOCKS_GOOGL.csv":
        assert df.iloc[0]["close"] == pytest.approx(196.946945)


# ----------------------------------------------------------------------------- formats


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_unix_milliseconds_and_naive_and_offset_timestamps(tmp_path: Path) -> None:
    ms = _write(tmp_path, "ms.csv", "open_time,o,h,l,c,v\n1577836800000,1,2,1,2,5\n"
                "1577840400000,2,3,1,2,6\n")  # fmt: skip
    df = load_ohlcv(ms)
    assert df.index[0] == pd.Timestamp("2020-01-01 00:00", tz="UTC")
    assert list(df.columns) == [*OHLC, "volume"]
    naive = _write(tmp_path, "naive.csv", "Timestamp,Open,High,Low,Close\n"
                   "2020-01-01 00:00:00,1,2,1,2\n2020-01-01 01:00:00,2,3,1,2\n")  # fmt: skip
    assert load_ohlcv(naive).index[1] == pd.Timestamp("2020-01-01 01:00", tz="UTC")
    rows = "2020-01-01T02:00:00+02:00,1,2,1,2\n2020-01-01T03:00:00+02:00,2,3,1,2\n"
    offset = _write(tmp_path, "cet.csv", "datetime,open,high,low,close\n" + rows)
    assert load_ohlcv(offset).index[0] == pd.Timestamp("2020-01-01 00:00", tz="UTC")


def test_other_layouts(tmp_path: Path) -> None:
    semicolon = _write(tmp_path, "semi.csv", "Date;Open;High;Low;Close\n"
                       "2020-01-02;1;2;1;2\n2020-01-03;2;3;1;2\n")  # fmt: skip
    assert load_ohlcv(semicolon).index[0] == pd.Timestamp("2020-01-02", tz="UTC")
    split = _write(tmp_path, "mt.csv", "Date,Time,Open,High,Low,Close,Volume\n"
                   "2020.01.02,10:00,1,2,1,2,3\n2020.01.02,11:00,2,3,1,2,3\n")  # fmt: skip
    assert load_ohlcv(split).index[1] == pd.Timestamp("2020-01-02 11:00", tz="UTC")
    yyyymmdd = _write(tmp_path, "d.csv", "date,open,high,low,close\n20200102,1,2,1,2\n"
                      "20200103,2,3,1,2\n")  # fmt: skip
    assert load_ohlcv(yyyymmdd).index[1] == pd.Timestamp("2020-01-03", tz="UTC")
    rows = "2020-01-02 00:00:00+00:00,1,2,1,2\n2020-01-03 00:00:00+00:00,2,3,1,2\n"
    indexed = _write(tmp_path, "idx.csv", ",open,high,low,close\n" + rows)
    assert len(load_ohlcv(indexed)) == 2
    no_volume = _write(tmp_path, "fx.csv", "time,open,high,low,close,volume\n"
                       "1499040000,1,2,1,2,\n1499043600,2,3,1,2,\n")  # fmt: skip
    assert list(load_ohlcv(no_volume).columns) == OHLC  # an all-empty volume column is no volume


def test_gzip_csv(tmp_path: Path, market: MarketFiles) -> None:
    raw = storage.read_bytes(market.uri("BTCUSDT_1d.csv"))
    (tmp_path / "btc.csv.gz").write_bytes(gzip.compress(raw))
    df = load_ohlcv(str(tmp_path / "btc.csv.gz"))
    pd.testing.assert_frame_equal(df, load_ohlcv(market.uri("BTCUSDT_1d.csv")))


def test_parquet_round_trip(tmp_path: Path, market: MarketFiles) -> None:
    df = load_ohlcv(market.uri("SOLUSDT_1h.csv"))
    buffer = io.BytesIO()
    df.to_parquet(buffer)  # DatetimeIndex stored as the index
    storage.write_bytes(str(tmp_path / "sol.parquet"), buffer.getvalue())
    pd.testing.assert_frame_equal(load_ohlcv(str(tmp_path / "sol.parquet")), df)
    # A timestamp column instead of an index, capitalised names, no extension (sniffed).
    flat = df.reset_index().rename(columns=str.capitalize)
    flat.to_parquet(tmp_path / "sol_data", index=False)
    pd.testing.assert_frame_equal(load_ohlcv(str(tmp_path / "sol_data")), df)


def test_load_from_s3(s3_server: Any) -> None:
    uri = s3_server.uri("data/GOOGL.csv")
    storage.write_bytes(uri, storage.read_bytes(BUNDLED_DAILY))
    _check_frame(load_ohlcv(uri), 2_335, "2009-05-22", "2018-08-29", volume=True)
    with pytest.raises(storage.StorageError, match="no such file"):
        load_ohlcv(s3_server.uri("data/absent.csv"))


# ----------------------------------------------------------------------------- errors

HEADER = "Date,Open,High,Low,Close,Volume\n"
GOOD_ROWS = [
    "2020-01-01 00:00:00+00:00,10,12,9,11,100",
    "2020-01-01 01:00:00+00:00,11,13,10,12,100",
    "2020-01-01 02:00:00+00:00,12,14,11,13,100",
    "2020-01-01 03:00:00+00:00,13,15,12,14,100",
]


def _error(tmp_path: Path, rows: list[str], header: str = HEADER) -> str:
    uri = _write(tmp_path, "bad.csv", header + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        load_ohlcv(uri)
    message = str(err.value)
    assert "\n" not in message, message
    assert "bad.csv" in message, message
    return message


def test_nan_values(tmp_path: Path) -> None:
    rows = list(GOOD_ROWS)
    rows[2] = "2020-01-01 02:00:00+00:00,12,14,11,,100"
    message = _error(tmp_path, rows)
    assert message.endswith(
        "bad.csv: column 'close' has 1 empty or non-numeric value(s), "
        "first at data row 3 (2020-01-01 02:00:00+00:00)"
    )


def test_shuffled_rows(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1], GOOD_ROWS[3]]
    message = _error(tmp_path, rows)
    assert message.endswith(
        "bad.csv: timestamps are not in ascending order: data row 3 "
        "(2020-01-01 01:00:00+00:00) comes after data row 2 (2020-01-01 02:00:00+00:00)"
    )


def test_duplicate_timestamps(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1], GOOD_ROWS[2]]
    message = _error(tmp_path, rows)
    assert message.endswith(
        "bad.csv: duplicate timestamp 2020-01-01 01:00:00+00:00 at data rows 2 and 3"
    )


def test_missing_close(tmp_path: Path) -> None:
    rows = [r.rsplit(",", 2)[0] + ",100" for r in GOOD_ROWS]
    message = _error(tmp_path, rows, header="Date,Open,High,Low,Volume\n")
    assert message.endswith(
        "bad.csv: missing required column(s) close; found columns: Date, Open, High, Low, Volume"
    )


def test_non_positive_price(tmp_path: Path) -> None:
    rows = list(GOOD_ROWS)
    rows[3] = "2020-01-01 03:00:00+00:00,0,15,12,14,100"
    message = _error(tmp_path, rows)
    assert message.endswith(
        "bad.csv: column 'open' has 1 non-positive price(s), "
        "first at data row 4 (2020-01-01 03:00:00+00:00): 0"
    )


def test_high_below_low_and_negative_volume(tmp_path: Path) -> None:
    rows = list(GOOD_ROWS)
    rows[1] = "2020-01-01 01:00:00+00:00,11,9,10,12,100"
    assert "high < low in 1 row(s), first at data row 2" in _error(tmp_path, rows)
    rows = list(GOOD_ROWS)
    rows[1] = "2020-01-01 01:00:00+00:00,11,13,10,12,-5"
    assert "column 'volume' has 1 negative value(s), first at data row 2" in _error(tmp_path, rows)


def test_unparsable_values(tmp_path: Path) -> None:
    rows = list(GOOD_ROWS)
    rows[1] = "2020-01-01 01:00:00+00:00,11,13,abc,12,100"
    assert _error(tmp_path, rows).endswith(
        "bad.csv: column 'Low' has a non-numeric value 'abc' at data row 2"
    )
    rows = list(GOOD_ROWS)
    rows[2] = "yesterday,12,14,11,13,100"
    assert _error(tmp_path, rows).endswith(
        "bad.csv: cannot parse timestamp 'yesterday' in column 'Date' at data row 3"
    )
    rows = list(GOOD_ROWS)
    rows[1] = ",11,13,10,12,100"
    assert "timestamp column 'Date' has 1 empty value(s), first at data row 2" in _error(
        tmp_path, rows
    )


def test_no_timestamp_column_and_empty_files(tmp_path: Path) -> None:
    message = _error(tmp_path, ["1,2,1,2"], header="open,high,low,close\n")
    assert "no timestamp column" in message and "found columns: open, high, low, close" in message
    assert "no data rows" in _error(tmp_path, [], header=HEADER)
    assert "the file is empty" in _error(tmp_path, [], header="")


def test_validate_frames() -> None:
    index = pd.date_range("2020-01-01", periods=3, freq="h", tz="UTC")
    good = pd.DataFrame({c: [1.0, 2.0, 3.0] for c in OHLC}, index=index)
    validate_ohlcv(good, "frame")
    with pytest.raises(DataError, match=r"^frame: missing required column\(s\) high, low"):
        validate_ohlcv(good[["open", "close"]], "frame")
    with pytest.raises(DataError, match="not a DatetimeIndex"):
        validate_ohlcv(good.reset_index(drop=True), "frame")
    infinite = good.copy()
    infinite.iloc[1, 3] = np.inf
    with pytest.raises(DataError, match="'close' has 1 empty or non-numeric value"):
        validate_ohlcv(infinite, "frame")


# ----------------------------------------------------------------------------- bar counts


def test_require_bars() -> None:
    require_bars(122, 122, "x")
    with pytest.raises(DataError) as err:
        require_bars(
            120, 122, "test split of BTCUSDT_1h.csv", reason="window 20 + feature warm-up 100"
        )
    assert str(err.value) == (
        "test split of BTCUSDT_1h.csv has 120 bars; window 20 + feature warm-up 100 "
        "need at least 122"
    )
    with pytest.raises(DataError, match=r"^train split has 5 bars; need at least 10$"):
        require_bars(5, 10, "train split")
