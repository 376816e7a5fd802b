"""Metrics checked against empyrical (an independent reference) on real market returns."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import empyrical
import numpy as np
import pandas as pd
import pytest

from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.evaluation import performance as m
from support.data import MarketFiles

RTOL = 1e-9
Case = tuple[str, np.ndarray, float]


def _closes(market: MarketFiles, name: str) -> np.ndarray:
    return load_ohlcv(market.uri(name))["close"].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def btc_close(market: MarketFiles) -> np.ndarray:
    """BTCUSDT hourly closes (bundled EUR/USD hourly on a clone with no ../shared)."""
    return _closes(market, "BTCUSDT_1h.csv")


@pytest.fixture(scope="module")
def spy_close(market: MarketFiles) -> np.ndarray:
    """SPY daily closes (bundled GOOGL daily on a clone with no ../shared)."""
    return _closes(market, "SPY_1d.csv")


def _windows(name: str, returns: np.ndarray, bars_per_year: float) -> list[Case]:
    """The whole series, and its worst and best tenth (a losing period: negative CAGR and
    Calmar; a winning one), found in the data rather than by dates."""
    n = len(returns) // 10
    log_sums = np.convolve(np.log1p(returns), np.ones(n), mode="valid")
    worst, best = int(np.argmin(log_sums)), int(np.argmax(log_sums))
    return [
        (f"{name}_all", returns, bars_per_year),
        (f"{name}_worst", returns[worst : worst + n], bars_per_year),
        (f"{name}_best", returns[best : best + n], bars_per_year),
    ]


def _cases(btc: np.ndarray, spy: np.ndarray) -> list[Case]:
    """(name, close-to-close returns, bars per year): whole series and sub-periods."""
    btc_r = btc[1:] / btc[:-1] - 1.0
    spy_r = spy[1:] / spy[:-1] - 1.0
    return _windows("hourly", btc_r, 8760.0) + _windows("daily", spy_r, 252.0)


def _close(ours: float, ref: float) -> bool:
    return math.isclose(ours, float(ref), rel_tol=RTOL, abs_tol=0.0)


def test_returns_from_equity_matches_pandas(btc_close: np.ndarray) -> None:
    ours = m.returns_from_equity(btc_close)
    ref = pd.Series(btc_close).pct_change().to_numpy()[1:]
    assert ours.shape == (btc_close.size - 1,)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


METRICS: list[tuple[str, Callable[[np.ndarray, float], float], Callable[..., float]]] = [
    ("sharpe", m.sharpe_ratio, lambda r, b: empyrical.sharpe_ratio(r, annualization=b)),
    ("sortino", m.sortino_ratio, lambda r, b: empyrical.sortino_ratio(r, annualization=b)),
    ("cagr", m.annual_return, lambda r, b: empyrical.annual_return(r, annualization=b)),
    ("vol", m.annual_volatility, lambda r, b: empyrical.annual_volatility(r, annualization=b)),
    ("calmar", m.calmar_ratio, lambda r, b: empyrical.calmar_ratio(r, annualization=b)),
    ("mdd", lambda r, b: m.max_drawdown(r), lambda r, b: empyrical.max_drawdown(r)),
    ("stability", lambda r, b: m.stability(r), lambda r, b: empyrical.stability_of_timeseries(r)),
    ("total", lambda r, b: m.total_return(r), lambda r, b: empyrical.cum_returns_final(r)),
]


@pytest.mark.parametrize(("metric", "ours", "ref"), METRICS, ids=[x[0] for x in METRICS])
def test_metric_matches_empyrical_on_real_returns(
    btc_close: np.ndarray,
    spy_close: np.ndarray,
    metric: str,
    ours: Callable[[np.ndarray, float], float],
    ref: Callable[..., float],
) -> None:
    for name, r, bpy in _cases(btc_close, spy_close):
        got, want = ours(r, bpy), ref(r, bpy)
        assert math.isfinite(got), (metric, name)
        assert _close(got, want), (metric, name, got, want)
        assert isinstance(got, float)


def test_sub_periods_cover_signs(btc_close: np.ndarray, spy_close: np.ndarray) -> None:
    """The reference comparison exercises both winning and losing periods."""
    signs = {np.sign(m.calmar_ratio(r, b)) for _, r, b in _cases(btc_close, spy_close)}
    assert signs == {-1.0, 1.0}


def test_performance_of_buy_and_hold_matches_empyrical(btc_close: np.ndarray) -> None:
    equity = btc_close
    r = pd.Series(equity).pct_change().to_numpy()[1:]
    perf = m.performance(equity, bars_per_year=8760, positions=np.ones(r.size))
    assert perf.bars == r.size
    assert perf.exposure == 1.0
    assert _close(perf.sharpe, empyrical.sharpe_ratio(r, annualization=8760))
    assert _close(perf.sortino, empyrical.sortino_ratio(r, annualization=8760))
    assert _close(perf.annual_return, empyrical.annual_return(r, annualization=8760))
    assert _close(perf.volatility, empyrical.annual_volatility(r, annualization=8760))
    assert _close(perf.max_drawdown, empyrical.max_drawdown(r))
    assert _close(perf.calmar, empyrical.calmar_ratio(r, annualization=8760))
    assert _close(perf.stability, empyrical.stability_of_timeseries(r))
    assert _close(perf.total_return, equity[-1] / equity[0] - 1.0)
    assert perf.trades == 0 and math.isnan(perf.win_rate)


def test_hand_computed_small_curve() -> None:
    equity = [100.0, 110.0, 99.0, 108.9]  # +10%, -10%, +10%
    r = m.returns_from_equity(equity)
    np.testing.assert_allclose(r, [0.1, -0.1, 0.1], rtol=1e-12)
    assert math.isclose(m.total_return(r), 0.089, rel_tol=1e-12)
    assert math.isclose(m.max_drawdown(r), -0.1, rel_tol=1e-12)
    assert math.isclose(m.annual_return(r, 3), 0.089, rel_tol=1e-12)  # one year exactly
    # mean 1/30, std(ddof=1) = sqrt(0.04/3 + ...) computed by hand:
    mean = 0.1 / 3
    std = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)
    assert math.isclose(m.sharpe_ratio(r, 4), mean / std * 2, rel_tol=1e-12)
    # downside deviation sqrt(0.01/3); Sortino = mean*4 / (sqrt(0.01/3)*2)
    assert math.isclose(m.sortino_ratio(r, 4), mean * 4 / (math.sqrt(0.01 / 3) * 2), rel_tol=1e-12)
    # a first-bar loss is a drawdown from the initial value
    assert math.isclose(m.max_drawdown([-0.2, 0.5]), -0.2, rel_tol=1e-12)


def test_trade_stats_hand_computed() -> None:
    win, pf, n, mean = m.trade_stats([0.10, -0.05, 0.02, 0.0, -0.03])
    assert n == 5
    assert win == pytest.approx(2 / 5)  # a zero-return trade is not a win
    assert pf == pytest.approx(0.12 / 0.08)
    assert mean == pytest.approx(0.04 / 5)
    win, pf, n, mean = m.trade_stats([-0.01, -0.02])
    assert (win, pf, n) == (0.0, 0.0, 2)
    assert mean == pytest.approx(-0.015)


def test_trade_stats_undefined() -> None:
    win, pf, n, mean = m.trade_stats([])
    assert n == 0 and math.isnan(win) and math.isnan(pf) and math.isnan(mean)
    win, pf, n, mean = m.trade_stats([0.01, 0.02])  # no losses: profit factor undefined
    assert (win, n) == (1.0, 2) and math.isnan(pf)


def test_flat_equity_is_nan_not_inf() -> None:
    perf = m.performance([100.0] * 10, bars_per_year=8760, positions=[0] * 9, trade_returns=[])
    assert perf.total_return == 0.0 and perf.annual_return == 0.0
    assert perf.max_drawdown == 0.0 and perf.volatility == 0.0
    assert perf.exposure == 0.0 and perf.trades == 0
    for name in ("sharpe", "sortino", "calmar", "stability", "win_rate", "profit_factor"):
        assert math.isnan(getattr(perf, name)), name


def test_convention_differences_from_empyrical() -> None:
    """Where empyrical returns inf (or an arbitrary 0), this module says "undefined" (nan)."""
    up = np.full(50, 0.001)  # constant gains: zero dispersion, no downside, no drawdown
    assert math.isinf(empyrical.sharpe_ratio(up, annualization=252))
    assert math.isinf(empyrical.sortino_ratio(up, annualization=252))
    assert math.isnan(m.sharpe_ratio(up, 252)) and math.isnan(m.sortino_ratio(up, 252))
    assert math.isnan(m.calmar_ratio(up, 252)) and math.isnan(empyrical.calmar_ratio(up))
    # stability: a straight line is a perfect fit; a flat line has no variance to explain
    assert m.stability(up) == pytest.approx(1.0)
    assert math.isnan(m.stability(np.zeros(50)))


def test_single_bar_and_empty() -> None:
    one = m.performance([100.0, 101.0], bars_per_year=252)
    assert one.bars == 1 and one.total_return == pytest.approx(0.01)
    assert one.annual_return == pytest.approx(1.01**252 - 1)
    for name in ("sharpe", "sortino", "volatility", "stability", "exposure"):
        assert math.isnan(getattr(one, name)), name
    none = m.performance([100.0], bars_per_year=252)
    assert none.bars == 0
    assert all(
        v is None
        for k, v in none.to_dict().items()
        if k not in ("bars", "trades", "orders", "bars_per_year")
    )


def test_ruin_and_overflow_give_no_inf() -> None:
    r = m.returns_from_equity([100.0, 50.0, 0.0, 0.0])
    np.testing.assert_array_equal(r, [-0.5, -1.0, 0.0])
    perf = m.performance([100.0, 50.0, 0.0, 0.0], bars_per_year=8760)
    assert perf.total_return == -1.0 and perf.max_drawdown == -1.0
    assert math.isnan(perf.stability)
    assert math.isnan(m.annual_return([1.0, 1.0], 8760))  # 4**4380 overflows: nan, not inf


def test_invalid_input_raises() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        m.sharpe_ratio([0.1, float("nan")], 252)
    with pytest.raises(ValueError, match="bars_per_year"):
        m.sharpe_ratio([0.1, 0.2], 0)
    with pytest.raises(ValueError, match="non-negative"):
        m.returns_from_equity([1.0, -1.0])
    with pytest.raises(ValueError, match="recovers"):
        m.returns_from_equity([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="positions"):
        m.performance([1.0, 1.1, 1.2], bars_per_year=252, positions=[1, 1, 1])
    with pytest.raises(ValueError, match="one-dimensional"):
        m.total_return([[0.1, 0.2]])


def _sample() -> dict[str, m.Performance]:
    rng = np.random.default_rng(0)
    equity = 1000.0 * np.cumprod(np.r_[1.0, 1.0 + rng.normal(0.0002, 0.01, 500)])
    pos = (rng.random(500) > 0.5).astype(np.float64)
    return {
        "agent": m.performance(
            equity, bars_per_year=8760, positions=pos, trade_returns=[0.02, -0.01, 0.03]
        ),
        "buy-and-hold": m.performance(equity, bars_per_year=8760, positions=np.ones(500)),
        "random": m.performance([1.0] * 501, bars_per_year=8760),
    }


def test_to_dict_is_json_safe() -> None:
    for perf in _sample().values():
        d = perf.to_dict()
        assert set(d) == {f for f in m.Performance.__dataclass_fields__}
        text = json.dumps(d, allow_nan=False)
        assert json.loads(text) == d
        assert all(type(v) in (int, float, type(None)) for v in d.values())
        assert type(d["trades"]) is int and type(d["bars"]) is int
    assert _sample()["random"].to_dict()["sharpe"] is None


def test_format_table() -> None:
    cols = _sample()
    note = m.annualisation_note(8760, "1h")
    text = m.format_table(cols, title="Test split", note=note)
    lines = text.splitlines()
    assert lines[0] == "Test split" and lines[-1] == note
    header = lines[1]
    for name in cols:
        assert name in header
    for label in (
        "Sharpe ratio",
        "Sortino ratio",
        "Max drawdown",
        "Annual return (CAGR)",
        "Win rate",
        "Profit factor",
        "Exposure",
        "Trades",
        "Stability",
    ):
        assert label in text
    assert "n/a" in text and "nan" not in text and "inf" not in text
    assert "%" in next(x for x in lines if x.startswith("Max drawdown"))
    sharpe_row = next(x for x in lines if x.startswith("Sharpe ratio"))
    assert f"{cols['agent'].sharpe:.2f}" in sharpe_row
    # rows are aligned: every table line has the same width as the rule
    rule = lines[2]
    assert set(rule.replace(" ", "")) == {"-"}
    assert all(len(x) <= len(rule) for x in lines[1:-1])
    assert len(header) == len(rule)


def test_annualisation_note() -> None:
    assert m.annualisation_note(8760, "1h") == (
        "Sharpe/Sortino annualised with sqrt(8760) (1h bars, 8760 bars/year measured from data)"
    )
    assert "sqrt(252)" in m.annualisation_note(252.0, "1d")
    assert "sqrt(8765.81)" in m.annualisation_note(8765.8125, "1h")
