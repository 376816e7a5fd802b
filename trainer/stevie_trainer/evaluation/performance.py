"""Performance metrics computed from an equity curve (design section 4: honest evaluation).

Conventions (the same as empyrical, which the tests use as the reference):

* per-bar simple returns ``r_t = E_t / E_{t-1} - 1``; the risk-free rate is 0;
* annualisation by ``bars_per_year`` (8760 for 24/7 hourly bars, 252 for stock daily bars,
  ...): Sharpe and Sortino scale with ``sqrt(bars_per_year)``, CAGR compounds over
  ``n / bars_per_year`` years;
* a value that is undefined (zero dispersion, no downside, no trades, no losses, too few
  returns) is ``nan`` -- never ``inf`` and never an exception. Tables show it as ``n/a``
  and :meth:`Performance.to_dict` as ``None`` (JSON ``null``).

Turnover and costs (orders, turnover, the costs paid, gross return, cost share) come from
:mod:`~stevie_trainer.evaluation.turnover` when a ledger is known; they are appended to the
older fields, with defaults, so reports written before them still load.

Invalid input (non-finite values, 2-D arrays, negative equity, misaligned positions,
non-positive ``bars_per_year``) raises :class:`ValueError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stevie_trainer.evaluation.turnover import Turnover

__all__ = [
    "Performance",
    "annual_return",
    "annual_volatility",
    "annualisation_note",
    "calmar_ratio",
    "format_table",
    "max_drawdown",
    "performance",
    "returns_from_equity",
    "sharpe_ratio",
    "sortino_ratio",
    "stability",
    "total_return",
    "trade_stats",
]

FloatArray = npt.NDArray[np.float64]
NAN = float("nan")


def _as_1d(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _check_bpy(bars_per_year: float) -> float:
    bpy = float(bars_per_year)
    if not (math.isfinite(bpy) and bpy > 0):
        raise ValueError(f"bars_per_year must be a positive finite number, got {bars_per_year}")
    return bpy


def _finite(value: float) -> float:
    """Python float; ``inf`` (a division by zero or an overflow) becomes ``nan``."""
    v = float(value)
    return v if math.isfinite(v) else NAN


def returns_from_equity(equity: npt.ArrayLike) -> FloatArray:
    """Per-bar simple returns ``E_t / E_{t-1} - 1`` (one fewer element than ``equity``).

    Equity must be finite and non-negative. Equity that reaches 0 (ruin) must stay 0: the
    bar of ruin returns -1 and the bars after it return 0.
    """
    eq = _as_1d(equity, "equity")
    if np.any(eq < 0):
        raise ValueError("equity must be non-negative")
    prev, curr = eq[:-1], eq[1:]
    dead = prev == 0
    if np.any(dead & (curr != 0)):
        raise ValueError("equity recovers from 0: returns are undefined")
    out = np.zeros(prev.shape, dtype=np.float64)
    np.divide(curr, prev, out=out, where=~dead)
    out[~dead] -= 1.0
    return out


def sharpe_ratio(returns: npt.ArrayLike, bars_per_year: float) -> float:
    """``mean / std(ddof=1) * sqrt(bars_per_year)``; nan with < 2 returns or zero std."""
    r = _as_1d(returns, "returns")
    bpy = _check_bpy(bars_per_year)
    if r.size < 2 or np.max(r) == np.min(r):  # exact test: no float residue of std
        return NAN
    std = float(np.std(r, ddof=1))
    if std == 0:
        return NAN
    return _finite(float(np.mean(r)) / std * math.sqrt(bpy))


def _downside_risk(r: FloatArray, bpy: float) -> float:
    """Annualised downside deviation below 0: ``sqrt(mean(min(r, 0)^2)) * sqrt(bpy)``."""
    downside = np.minimum(r, 0.0)
    return float(np.sqrt(np.mean(np.square(downside)))) * math.sqrt(bpy)


def sortino_ratio(returns: npt.ArrayLike, bars_per_year: float) -> float:
    """``mean * bpy / downside_risk``; nan with < 2 returns or no negative return."""
    r = _as_1d(returns, "returns")
    bpy = _check_bpy(bars_per_year)
    if r.size < 2:
        return NAN
    risk = _downside_risk(r, bpy)
    if risk == 0:
        return NAN
    return _finite(float(np.mean(r)) * bpy / risk)


def total_return(returns: npt.ArrayLike) -> float:
    """Compounded return ``prod(1 + r) - 1``; nan for no returns."""
    r = _as_1d(returns, "returns")
    if r.size == 0:
        return NAN
    return _finite(float(np.prod(1.0 + r)) - 1.0)


def annual_return(returns: npt.ArrayLike, bars_per_year: float) -> float:
    """CAGR ``prod(1 + r) ** (bars_per_year / n) - 1``; nan for no returns."""
    r = _as_1d(returns, "returns")
    bpy = _check_bpy(bars_per_year)
    if r.size == 0:
        return NAN
    growth = float(np.prod(1.0 + r))
    try:
        return _finite(growth ** (bpy / r.size) - 1.0)
    except OverflowError:
        return NAN


def annual_volatility(returns: npt.ArrayLike, bars_per_year: float) -> float:
    """``std(ddof=1) * sqrt(bars_per_year)``; nan with < 2 returns."""
    r = _as_1d(returns, "returns")
    bpy = _check_bpy(bars_per_year)
    if r.size < 2:
        return NAN
    return _finite(float(np.std(r, ddof=1)) * math.sqrt(bpy))


def max_drawdown(returns: npt.ArrayLike) -> float:
    """Deepest fall from a running peak, ``min_t(E_t / max_{s<=t} E_s - 1)`` (<= 0).

    The curve starts at 1 before the first return, so a first-bar loss is a drawdown.
    nan for no returns.
    """
    r = _as_1d(returns, "returns")
    if r.size == 0:
        return NAN
    curve = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peak = np.maximum.accumulate(curve)
    return _finite(float(np.min(curve[1:] / peak[1:] - 1.0)))


def calmar_ratio(returns: npt.ArrayLike, bars_per_year: float) -> float:
    """``annual_return / |max_drawdown|``; nan without a drawdown."""
    mdd = max_drawdown(returns)
    if not mdd < 0:
        return NAN
    return _finite(annual_return(returns, bars_per_year) / abs(mdd))


def stability(returns: npt.ArrayLike) -> float:
    """R² of an OLS fit of cumulative log returns on the bar index (empyrical's
    ``stability_of_timeseries``); nan with < 2 returns, a flat curve, or a ruin (r = -1).
    """
    r = _as_1d(returns, "returns")
    if r.size < 2 or np.any(r <= -1.0):
        return NAN
    y = np.cumsum(np.log1p(r))
    x = np.arange(r.size, dtype=np.float64)
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(np.dot(dx, dx))
    syy = float(np.dot(dy, dy))
    if syy == 0:
        return NAN
    sxy = float(np.dot(dx, dy))
    return _finite(min(1.0, sxy * sxy / (sxx * syy)))


def trade_stats(trade_returns: npt.ArrayLike) -> tuple[float, float, int, float]:
    """``(win_rate, profit_factor, n_trades, mean_trade_return)`` of round-trip trades.

    Win rate is the share of trades with a return > 0; profit factor is the sum of gains
    over the absolute sum of losses (0 without a gain; nan without a loss). Both and the
    mean are nan without trades.
    """
    t = _as_1d(trade_returns, "trade_returns")
    n = int(t.size)
    if n == 0:
        return NAN, NAN, 0, NAN
    gains = float(t[t > 0].sum())
    losses = float(-t[t < 0].sum())
    win_rate = float(np.count_nonzero(t > 0)) / n
    profit_factor = _finite(gains / losses) if losses > 0 else NAN
    return win_rate, profit_factor, n, float(np.mean(t))


@dataclass(frozen=True)
class Performance:
    """The evaluation summary of one policy on one data split.

    ``trades`` is 0 (and the trade metrics nan) when no trade returns were given;
    ``exposure`` is the share of bars with a non-zero position (nan if unknown).
    """

    total_return: float
    annual_return: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    trades: int
    mean_trade_return: float
    exposure: float
    stability: float
    bars: int
    bars_per_year: float
    # Turnover and costs (see stevie_trainer.evaluation.turnover); unknown without a ledger.
    orders: int = 0
    turnover: float = NAN
    annual_turnover: float = NAN
    fee_cost: float = NAN
    slippage_cost: float = NAN
    borrow_cost: float = NAN
    total_cost: float = NAN
    gross_return: float = NAN
    cost_share: float = NAN

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-safe dict: python ints and floats, nan (and inf) as ``None``."""
        out: dict[str, float | int | None] = {}
        for f in dataclasses.fields(self):
            value: Any = getattr(self, f.name)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                out[f.name] = int(value)
            else:
                v = float(value)
                out[f.name] = v if math.isfinite(v) else None
        return out


def performance(
    equity: npt.ArrayLike,
    *,
    bars_per_year: float,
    positions: npt.ArrayLike | None = None,
    trade_returns: npt.ArrayLike | None = None,
    costs: Turnover | None = None,
) -> Performance:
    """All metrics of an equity curve whose first element is the initial value.

    ``positions`` (if given) has one entry per return, i.e. ``len(equity) - 1``; ``costs``
    (if given) is the pass's :func:`~stevie_trainer.evaluation.turnover.turnover`.
    """
    bpy = _check_bpy(bars_per_year)
    r = returns_from_equity(equity)
    exposure = NAN
    if positions is not None:
        pos = _as_1d(positions, "positions")
        if pos.size != r.size:
            raise ValueError(
                f"positions has {pos.size} entries, expected len(equity) - 1 = {r.size}"
            )
        exposure = float(np.count_nonzero(pos)) / pos.size if pos.size else NAN
    if trade_returns is None:
        win_rate, profit_factor, n_trades, mean_trade = NAN, NAN, 0, NAN
    else:
        win_rate, profit_factor, n_trades, mean_trade = trade_stats(trade_returns)
    return Performance(
        total_return=total_return(r),
        annual_return=annual_return(r, bpy),
        volatility=annual_volatility(r, bpy),
        sharpe=sharpe_ratio(r, bpy),
        sortino=sortino_ratio(r, bpy),
        calmar=calmar_ratio(r, bpy),
        max_drawdown=max_drawdown(r),
        win_rate=win_rate,
        profit_factor=profit_factor,
        trades=n_trades,
        mean_trade_return=mean_trade,
        exposure=exposure,
        stability=stability(r),
        bars=int(r.size),
        bars_per_year=bpy,
        **(dataclasses.asdict(costs) if costs is not None else {}),
    )


# (field, label, kind) -- kind: "pct", "ratio" or "int".
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "Total return", "pct"),
    ("annual_return", "Annual return (CAGR)", "pct"),
    ("volatility", "Annual volatility", "pct"),
    ("sharpe", "Sharpe ratio", "ratio"),
    ("sortino", "Sortino ratio", "ratio"),
    ("calmar", "Calmar ratio", "ratio"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("stability", "Stability (R²)", "ratio"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("trades", "Trades", "int"),
    ("mean_trade_return", "Mean trade return", "pct"),
    ("exposure", "Exposure", "pct"),
    ("turnover", "Turnover (x mean equity)", "ratio"),
    ("total_cost", "Costs paid", "pct"),
    ("cost_share", "Costs / gross return", "pct"),
    ("bars", "Bars", "int"),
)


def _fmt(value: float, kind: str) -> str:
    if kind == "int":
        return f"{int(value):,d}"
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if kind == "pct":
        return f"{v * 100:,.2f}%"
    return f"{v:,.2f}"


def format_table(
    columns: Mapping[str, Performance],
    *,
    title: str | None = None,
    note: str | None = None,
) -> str:
    """A plain-text table: one row per metric, one column per named policy."""
    names = list(columns)
    header = ["Metric", *names]
    body = [
        [label, *(_fmt(getattr(columns[n], field), kind) for n in names)]
        for field, label, kind in _ROWS
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(header), rule, *(line(row) for row in body)]
    if title:
        lines.insert(0, title)
    if note:
        lines.append(note)
    return "\n".join(lines)


def annualisation_note(
    bars_per_year: float, bar_size: str, *, source: str = "measured from data"
) -> str:
    """The sentence stating how Sharpe/Sortino were annualised, e.g. ``Sharpe/Sortino
    annualised with sqrt(8760) (1h bars, 8760 bars/year measured from data)``.
    """
    bpy = _check_bpy(bars_per_year)
    n = f"{bpy:.6g}" if bpy != round(bpy) else str(round(bpy))
    src = f" {source}" if source else ""
    return f"Sharpe/Sortino annualised with sqrt({n}) ({bar_size} bars, {n} bars/year{src})"
