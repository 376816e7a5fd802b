"""OHLCV market data: loading (CSV/Parquet from any storage URI) and validation.

:func:`load_ohlcv` reads the formats market data is published in (ISO timestamps with or
without UTC offsets, unix seconds or milliseconds, day-first ``01.01.2017 22:00:00.000``,
a leading index column, capitalised or lower-case names, with or without volume) and returns
a frame with a UTC :class:`~pandas.DatetimeIndex` named ``timestamp`` and float64 columns
``open, high, low, close`` (plus ``volume`` when the source has it).

Nothing is silently sorted, filled or dropped: a problem in the data is a :class:`DataError`
whose one-line message says what is wrong and where (source, column, 1-based data row and
timestamp). Data row 1 is the first row after the header.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from stevie_trainer.common import storage

OHLC_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

# Normalised source names (lower case, separators -> "_") for each output column, in priority.
_TIME_NAMES = (
    "timestamp", "datetime", "date_time", "open_time", "opentime", "time_open",
    "gmt_time", "local_time", "date", "time", "ts", "dt", "t",
)  # fmt: skip
_COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "open": ("open", "o", "open_price", "opening_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "closing_price", "last"),
    "volume": ("volume", "vol", "v", "base_volume", "volume_base", "tick_volume", "tickvol"),
}
# Explicit formats tried when a column is not ISO 8601; the first that parses everything wins
# (preferring one that gives ascending timestamps, which settles day/month ambiguity).
_TIME_FORMATS = (
    "%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y",
    "%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y.%m.%d",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y",
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y",
    "%Y%m%d %H:%M:%S", "%Y%m%d %H%M%S", "%Y%m%d",
)  # fmt: skip
_UNITS: tuple[Literal["s", "ms", "us", "ns"], ...] = ("s", "ms", "us", "ns")  # by magnitude


class DataError(ValueError):
    """The data is unusable; the message is one line saying what and where."""


# ----------------------------------------------------------------------------- loading


def load_ohlcv(uri: str, *, validate: bool = True) -> pd.DataFrame:
    """Load OHLCV bars from a CSV (optionally gzipped) or Parquet file at a storage URI."""
    source = storage.describe(uri)
    raw = storage.read_bytes(uri)
    if not raw.strip():
        raise DataError(f"{source}: the file is empty")
    name = storage.basename(uri).lower()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{source}: corrupt gzip data ({exc})") from None
    if name.endswith((".parquet", ".pq")) or raw[:4] == b"PAR1":
        frame, index_time = _read_parquet(raw, source)
    else:
        frame, index_time = _read_csv(raw, source), None
    out = _to_ohlcv(frame, index_time, source)
    if validate:
        validate_ohlcv(out, source)
    return out


def _read_parquet(raw: bytes, source: str) -> tuple[pd.DataFrame, pd.DatetimeIndex | None]:
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises many kinds
        raise DataError(f"{source}: not a readable Parquet file ({_one_line(exc)})") from None
    if isinstance(frame.index, pd.DatetimeIndex):
        index = frame.index
        return frame.reset_index(drop=True), index
    return frame.reset_index(drop=isinstance(frame.index, pd.RangeIndex)), None


def _read_csv(raw: bytes, source: str) -> pd.DataFrame:
    first_line = raw.split(b"\n", 1)[0]
    sep = max((b",", b";", b"\t", b"|"), key=first_line.count).decode()
    try:
        return pd.read_csv(io.BytesIO(raw), sep=sep, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text (byte {exc.start}); is it CSV?") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"{source}: cannot parse as CSV: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _normalise(name: object) -> str:
    return re.sub(r"[\s\-/.]+", "_", str(name).strip().lower()).strip("_")


def _find(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(_normalise(col), col)
    for cand in candidates:
        if cand in by_norm:
            return by_norm[cand]
    return None


def _to_ohlcv(
    frame: pd.DataFrame, index_time: pd.DatetimeIndex | None, source: str
) -> pd.DataFrame:
    columns = [str(c) for c in frame.columns]
    frame.columns = pd.Index(columns)
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows (columns: {', '.join(columns)})")
    found = {out: _find(columns, names) for out, names in _COLUMN_NAMES.items()}
    missing = [c for c in OHLC_COLUMNS if found[c] is None]
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"found columns: {', '.join(columns)}"
        )
    if index_time is not None:
        index = _utc(index_time)
    else:
        time_col = _find(columns, _TIME_NAMES)
        if time_col is None:
            time_col = _index_like_time_column(frame)
        if time_col is None:
            raise DataError(
                f"{source}: no timestamp column (expected one named date, time, timestamp, "
                f"datetime or open_time); found columns: {', '.join(columns)}"
            )
        values = frame[time_col]
        other = _find(columns, ("time",))
        if _normalise(time_col) == "date" and other is not None and _is_clock(frame[other]):
            values = values.astype(str) + " " + frame[other].astype(str)
        index = _parse_timestamps(values, source, time_col)
    data: dict[str, np.ndarray] = {}
    for out, col in found.items():
        if col is not None:
            data[out] = _numeric(frame[col], source, col)
    if "volume" in data and np.isnan(data["volume"]).all():
        del data["volume"]  # an empty volume column means: no volume
    result = pd.DataFrame(data, index=index)
    result.index.name = "timestamp"
    return result


def _index_like_time_column(frame: pd.DataFrame) -> str | None:
    """A leading unnamed column holding datetimes (a DatetimeIndex saved with to_csv)."""
    first = str(frame.columns[0])
    if not (first.startswith("Unnamed") or _normalise(first) in ("", "index")):
        return None
    col = frame[first]
    if pd.api.types.is_numeric_dtype(col):
        return None
    parsed = pd.to_datetime(col.head(20), errors="coerce", utc=True, format="ISO8601")
    return first if parsed.notna().all() else None


def _is_clock(col: pd.Series) -> bool:
    head = col.dropna().astype(str).head(5)
    return len(head) > 0 and bool(head.str.match(r"^\d{1,2}:\d{2}").all())


def _utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns")


def _parse_timestamps(values: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    values = values.reset_index(drop=True)
    empty = values.isna() | (values.astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1
        raise DataError(
            f"{source}: timestamp column {column!r} has {int(empty.sum())} empty value(s), "
            f"first at data row {row}"
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return _utc(pd.DatetimeIndex(values))
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return _from_numbers(numeric.to_numpy(dtype=np.float64), source, column)
    text = values.astype(str).str.strip()
    candidates: list[pd.DatetimeIndex] = []
    for fmt in ("ISO8601", *_TIME_FORMATS):
        try:
            parsed = pd.DatetimeIndex(pd.to_datetime(text, format=fmt, utc=True))
        except (ValueError, TypeError, OverflowError):
            continue
        if fmt == "ISO8601" or parsed.is_monotonic_increasing:
            return _utc(parsed)
        candidates.append(parsed)
    if candidates:
        return _utc(candidates[0])
    with contextlib.suppress(ValueError, TypeError, OverflowError):
        return _utc(pd.DatetimeIndex(pd.to_datetime(text, format="mixed", utc=True)))
    bad = pd.to_datetime(text, format="mixed", utc=True, errors="coerce").isna().to_numpy()
    row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
    raise DataError(
        f"{source}: cannot parse timestamp {text.iloc[row]!r} in column {column!r} "
        f"at data row {row + 1}"
    )


def _from_numbers(numbers: np.ndarray, source: str, column: str) -> pd.DatetimeIndex:
    """Unix time in s/ms/us/ns by magnitude, or YYYYMMDD integers."""
    whole = bool(np.all(numbers == np.floor(numbers)))
    if whole and numbers.min() >= 1e7 and numbers.max() < 3e7:
        with contextlib.suppress(ValueError):
            days = numbers.astype(np.int64).astype(str)
            return _utc(pd.DatetimeIndex(pd.to_datetime(days, format="%Y%m%d")))
    magnitude = float(np.median(np.abs(numbers)))
    unit = _UNITS[int(np.searchsorted([1e11, 1e14, 1e17], magnitude, side="right"))]
    try:
        values = numbers.astype(np.int64) if whole else numbers
        return _utc(pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True)))
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataError(
            f"{source}: timestamp column {column!r} holds numbers that are not unix times "
            f"({_one_line(exc)})"
        ) from None


def _numeric(col: pd.Series, source: str, name: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce")
    bad = (values.isna() & col.notna()).to_numpy()
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        bad = bad & col.astype(str).str.strip().ne("").to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: column {name!r} has a non-numeric value {col.iloc[row]!r} "
            f"at data row {row + 1}"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


# ----------------------------------------------------------------------------- validation


def _at(df: pd.DataFrame, pos: int) -> str:
    index = df.index
    if isinstance(index, pd.DatetimeIndex) and not pd.isna(index[pos]):
        return f"data row {pos + 1} ({index[pos]})"
    return f"data row {pos + 1}"


def _check(df: pd.DataFrame, bad: np.ndarray, source: str, problem: str, detail: str = "") -> None:
    """Raise if any row is ``bad``: "<source>: <problem with {n}>, first at data row k (ts)"."""
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = {str(c): df[c].iloc[pos] for c in df.columns}
        extra = ": " + detail.format(**row) if detail else ""
        message = problem.format(n=int(bad.sum()))
        raise DataError(f"{source}: {message}, first at {_at(df, pos)}{extra}")


def validate_ohlcv(df: pd.DataFrame, source: str) -> None:
    """Raise :class:`DataError` (one line: what and where) unless ``df`` is usable OHLCV."""
    missing = [c for c in OHLC_COLUMNS if c not in df.columns]
    if missing:
        found = ", ".join(str(c) for c in df.columns) or "none"
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)}; found columns: {found}"
        )
    if len(df) == 0:
        raise DataError(f"{source}: no data rows")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError(f"{source}: the index is not a DatetimeIndex ({type(df.index).__name__})")
    _check(df, np.asarray(df.index.isna()), source, "{n} empty timestamp(s)")
    columns = [*OHLC_COLUMNS, *(["volume"] if "volume" in df.columns else [])]
    values = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) for c in columns}
    for col in columns:
        problem = f"column {col!r} has {{n}} empty or non-numeric value(s)"
        _check(df, ~np.isfinite(values[col]), source, problem)
    steps = np.diff(df.index.asi8)
    wrong = np.flatnonzero(steps <= 0)
    if wrong.size:
        pos, index = int(wrong[0]), df.index
        if steps[pos] == 0:
            raise DataError(
                f"{source}: duplicate timestamp {index[pos]} at data rows {pos + 1} and {pos + 2}"
            )
        raise DataError(
            f"{source}: timestamps are not in ascending order: data row {pos + 2} "
            f"({index[pos + 1]}) comes after data row {pos + 1} ({index[pos]})"
        )
    for col in OHLC_COLUMNS:
        problem = f"column {col!r} has {{n}} non-positive price(s)"
        _check(df, values[col] <= 0, source, problem, f"{{{col}:g}}")
    bad = values["high"] < values["low"]
    _check(df, bad, source, "high < low in {n} row(s)", "high={high:g}, low={low:g}")
    if "volume" in values:
        problem = "column 'volume' has {n} negative value(s)"
        _check(df, values["volume"] < 0, source, problem, "{volume:g}")


def require_bars(n_bars: int, needed: int, what: str, *, reason: str = "") -> None:
    """Raise :class:`DataError` if ``what`` has fewer than ``needed`` bars.

    ``require_bars(120, 122, "test split of BTCUSDT_1h.csv", reason="window 20 + feature
    warm-up 100")`` -> "test split of BTCUSDT_1h.csv has 120 bars; window 20 + feature
    warm-up 100 need at least 122".
    """
    if n_bars < needed:
        why = f"{reason} need" if reason else "need"
        raise DataError(f"{what} has {n_bars} bars; {why} at least {needed}")
