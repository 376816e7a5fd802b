"""Request bars as arrays: parsing (JSON rows or v2 tensors) and validation.

The rules are :func:`stevie_trainer.data.ohlcv.validate_ohlcv`'s, checked in its order
(non-finite values, then timestamps ascending and unique, then non-positive prices, then
high < low, then negative volume), but on arrays and naming the request's field and 0-based
bar index (``bars[12].high``) where ``validate_ohlcv`` names a file's 1-based data row. It
is a second implementation on purpose: ``validate_ohlcv`` needs a DataFrame, which the hot
path never builds (~100 us a request), and its one-line message has no field or index to
return as JSON. A test runs both on every bad case and checks both reject it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_trainer.serving.schemas import BarIn

__all__ = ["BarError", "Bars", "from_rows", "from_tensors", "parse_times"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Where = Callable[[int, str], str]
_NS = 1_000_000_000
_MAX_SECONDS = 1e11  # year ~5000: a larger "unix time" is milliseconds or garbage
_ISO = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?)?")
_PRICES = ("open", "high", "low", "close")


class BarError(ValueError):
    """Bars the service cannot decide on: one line naming the field and the bar index."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        code: str = "invalid_bars",
        needed: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.index = index
        self.code = code
        self.needed = needed


def row_field(i: int, name: str) -> str:
    return f"bars[{i}].{name}"


@dataclass(frozen=True)
class Bars:
    """Bars, oldest first: UTC times in ns (None when the request had none) and prices."""

    time: I64 | None
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64 | None
    where: Where = row_field  # how to name bar i's field in errors

    def __len__(self) -> int:
        return len(self.close)

    def last_time(self) -> str | None:
        """The last bar's time, ISO-8601 UTC."""
        if self.time is None:
            return None
        return pd.Timestamp(int(self.time[-1]), tz="UTC").isoformat()

    def index(self) -> pd.DatetimeIndex:
        """The times as a UTC DatetimeIndex (consecutive days from 1970 when none were sent)."""
        ns = (
            self.time
            if self.time is not None
            else np.arange(len(self), dtype=np.int64) * 86400 * _NS
        )
        return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")

    def frame(self) -> pd.DataFrame:
        """The bars as an OHLCV frame (what load_ohlcv returns)."""
        data = {"open": self.open, "high": self.high, "low": self.low, "close": self.close}
        if self.volume is not None:
            data["volume"] = self.volume
        out = pd.DataFrame(data, index=self.index())
        out.index.name = "timestamp"
        return out

    def check(self, needed: int) -> None:
        """Raise :class:`BarError` unless there are ``needed`` bars that validate_ohlcv accepts."""
        if len(self) < needed:
            raise BarError(
                f"{len(self)} bars sent; this ensemble needs at least {needed} (its members' "
                "feature warm-up and window, the decision bar and the reweight window)",
                field="bars",
                code="too_few_bars",
                needed=needed,
            )
        if self._clean():
            return
        columns = [(c, getattr(self, c)) for c in _PRICES]
        if self.volume is not None:
            columns.append(("volume", self.volume))
        for name, x in columns:
            self._first(~np.isfinite(x), name, lambda v: f"is {v}, not a finite number")
        if self.time is not None:
            self._check_times(self.time)
        for name, x in columns[:4]:
            self._first(x <= 0, name, lambda v: f"is {v:g}: prices must be positive")
        bad = self.high < self.low
        if bad.any():
            i = int(np.argmax(bad))
            raise BarError(
                f"{self.where(i, 'high')}: high {self.high[i]:g} < low {self.low[i]:g}",
                field=self.where(i, "high"),
                index=i,
            )
        if self.volume is not None:
            self._first(self.volume < 0, "volume", lambda v: f"is {v:g}: volume cannot be negative")

    def _clean(self) -> bool:
        """Whether every rule holds (a few vectorised tests; the details only when not)."""
        with np.errstate(invalid="ignore"):
            prices = np.stack([self.open, self.high, self.low, self.close])
            ok = bool(np.isfinite(prices).all() and (prices > 0).all())
            ok = ok and bool((self.high >= self.low).all())
            if ok and self.volume is not None:
                ok = bool(np.isfinite(self.volume).all() and (self.volume >= 0).all())
            if ok and self.time is not None:
                ok = bool((np.diff(self.time) > 0).all())
        return ok

    def _first(self, bad: npt.NDArray[np.bool_], name: str, say: Callable[[float], str]) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            value = float(getattr(self, name)[i])
            raise BarError(
                f"{self.where(i, name)} {say(value)}", field=self.where(i, name), index=i
            )

    def _check_times(self, t: I64) -> None:
        steps = np.diff(t)
        wrong = np.flatnonzero(steps <= 0)
        if not wrong.size:
            return
        i = int(wrong[0]) + 1
        at = pd.Timestamp(int(t[i]), tz="UTC").isoformat()
        before = pd.Timestamp(int(t[i - 1]), tz="UTC").isoformat()
        field = self.where(i, "time")
        if steps[i - 1] == 0:
            message = f"{field}: duplicate timestamp {at} (the same as bar {i - 1})"
        else:
            message = f"{field}: {at} is before bar {i - 1}'s {before}: bars go oldest first"
        raise BarError(message, field=field, index=i)


def _bad_time(values: Sequence[Any], i: int, where: Where, expected: str) -> NoReturn:
    field = where(i, "time")
    raise BarError(f"{field}: {values[i]!r} is not {expected}", field=field, index=i)


def _numbers(values: Sequence[float], where: Where) -> I64:
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.number):
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr) | (np.abs(arr) >= _MAX_SECONDS)
    if bad.any():
        _bad_time(values, int(np.argmax(bad)), where, "unix seconds (nor an ISO-8601 string)")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64) * _NS
    return np.round(arr.astype(np.float64) * 1e6).astype(np.int64) * 1000


_SEP = "\x1f"


def _without_utc(values: Sequence[str]) -> list[str] | None:
    """The strings without a trailing ``Z`` or ``+00:00`` (str.replace over all of them at
    once: a loop over 160 strings costs more than numpy's parse); None if one holds _SEP."""
    joined = _SEP.join(values) + _SEP
    plain = joined.replace("Z" + _SEP, _SEP).replace("+00:00" + _SEP, _SEP).split(_SEP)[:-1]
    return plain if len(plain) == len(values) else None


def _strings(values: Sequence[str], where: Where) -> I64:
    """ISO-8601 strings (an offset is honoured, none means UTC) as UTC ns."""
    plain = _without_utc(values)
    if plain and _ISO.fullmatch(plain[0]) and len(set(map(len, plain))) == 1:
        try:  # same shape as a checked first string: numpy's C parser (5x pandas')
            parsed = np.array(plain, dtype="datetime64[ns]")
            if not np.isnat(parsed).any():
                return parsed.view(np.int64)
        except ValueError:
            pass
    series = pd.Series(list(values), dtype=object)
    stamps = pd.to_datetime(series, utc=True, format="ISO8601", errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        _bad_time(values, int(np.argmax(bad)), where, "an ISO-8601 time (nor unix seconds)")
    return np.asarray(pd.DatetimeIndex(stamps).tz_convert("UTC").as_unit("ns").asi8)


def _moved(err: BarError, subset: list[int]) -> BarError:
    """``err`` of a subset of the bars, its index made the bar's."""
    if err.index is not None:
        err.index = subset[err.index]
    return err


def parse_times(values: Sequence[str | int | float], where: Where = row_field) -> I64:
    """Times (ISO-8601 strings, unix seconds, or a mix) as UTC nanoseconds."""
    strings = [isinstance(v, str) for v in values]
    if not any(strings):
        return _numbers(values, where)  # type: ignore[arg-type]
    if all(strings):
        return _strings(values, where)  # type: ignore[arg-type]
    out = np.empty(len(values), dtype=np.int64)
    pos = [i for i, s in enumerate(strings) if s]
    num = [i for i, s in enumerate(strings) if not s]
    try:
        out[pos] = _strings([str(values[i]) for i in pos], lambda k, f: where(pos[k], f))
    except BarError as err:
        raise _moved(err, pos) from None
    try:
        out[num] = _numbers([float(values[i]) for i in num], lambda k, f: where(num[k], f))
    except BarError as err:
        raise _moved(err, num) from None
    return out


def _volume(values: Sequence[float | None] | F64) -> F64 | None:
    arr = np.array(values, dtype=np.float64)  # None -> NaN
    missing = np.isnan(arr)
    if missing.all():
        return None  # no bar has volume: the bars have none
    if missing.any():
        i = int(np.argmax(missing))
        raise BarError(
            f"{row_field(i, 'volume')} is missing (or NaN) while other bars have volume",
            field=row_field(i, "volume"),
            index=i,
        )
    return arr


_OHLC = itemgetter(*_PRICES)
_TIME = itemgetter("time")
_VOLUME = itemgetter("volume")


def from_rows(rows: Sequence[BarIn]) -> Bars:
    """Bars from validated JSON rows (``POST /v1/decide``)."""
    n = len(rows)
    flat = chain.from_iterable(map(_OHLC, rows))
    prices = np.fromiter(flat, dtype=np.float64, count=4 * n).reshape(n, 4).T
    volume: F64 | None
    try:  # every bar has a number: the common case, at C speed
        given = np.fromiter(map(_VOLUME, rows), dtype=np.float64, count=n)
    except (KeyError, TypeError):  # some bar has none (or null)
        volume = _volume([r.get("volume") for r in rows])
    else:
        volume = _volume(given) if np.isnan(given).any() else given
    return Bars(
        time=parse_times(list(map(_TIME, rows))),
        open=np.ascontiguousarray(prices[0]),
        high=np.ascontiguousarray(prices[1]),
        low=np.ascontiguousarray(prices[2]),
        close=np.ascontiguousarray(prices[3]),
        volume=volume,
    )


def tensor_field(i: int, name: str) -> str:
    if name == "time":
        return f"time[{i}]"
    return f"ohlcv[{i}, {(*_PRICES, 'volume').index(name)}] ({name})"


def from_tensors(ohlcv: F64, time: Sequence[str | int | float] | None) -> Bars:
    """Bars from the v2 ``ohlcv`` tensor ([N, 4] or [N, 5]) and the optional ``time`` [N]."""
    if ohlcv.ndim != 2 or ohlcv.shape[1] not in (4, 5):
        raise BarError(
            f"input 'ohlcv' must have shape [N, 5] or [N, 4] (got {list(ohlcv.shape)})",
            field="ohlcv",
            code="invalid_tensor",
        )
    if time is not None and len(time) != len(ohlcv):
        raise BarError(
            f"input 'time' has {len(time)} values for {len(ohlcv)} bars",
            field="time",
            code="invalid_tensor",
        )
    cols = np.ascontiguousarray(ohlcv.T, dtype=np.float64)
    return Bars(
        time=None if time is None else parse_times(time, tensor_field),
        open=cols[0],
        high=cols[1],
        low=cols[2],
        close=cols[3],
        volume=cols[4] if len(cols) == 5 else None,
        where=tensor_field,
    )
