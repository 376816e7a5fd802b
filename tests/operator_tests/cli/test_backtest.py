"""``stevie backtest`` end to end: the real CLI on every real data file (bundled data on any
machine, ../shared/data beside the repository), its outputs, splits and seeds."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stevie_trainer.data.ohlcv import load_ohlcv
from support.cli import ok, stevie, stevie_process
from support.data import BUNDLED_DAILY, MarketFiles
from support.paths import EXAMPLES

GOOGL = BUNDLED_DAILY
SMALL = "BTCUSDT_1d.csv"  # 1,570 daily bars: the file to use when the data is not the point
POLICIES = ("expert", "buy-and-hold", "random")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# data, bar size, bars per year measured from the data (the Sharpe annualisation)
DATASETS = [
    ("BTCUSDT_1h.csv", "1h", 8766.0),
    ("ETHUSDT_1h.csv", "1h", 8766.0),
    ("BTCUSDT_1d.csv", "1d", 365.25),
    ("SOLUSDT_1h.csv", "1h", 8762.4),
    ("EURUSD_1h.csv", "1h", 6094.3),  # closed at weekends
    ("SPY_1d.csv", "1d", 251.6),  # trading days
    (GOOGL, "1d", 251.8),  # bundled in gym-anytrading: works with no ../shared
]


def _table_header(out: str) -> list[str]:
    header = next(line for line in out.splitlines() if line.startswith("Metric"))
    return header.split()[1:]


def _report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "backtest.json").read_text())
    return report


def _check_png(path: Path) -> None:
    body = path.read_bytes()
    assert body[:8] == PNG_MAGIC and body[12:16] == b"IHDR"
    width, height = struct.unpack(">II", body[16:24])
    assert width >= 400 and height >= 200
    assert len(body) > 20_000  # curves drawn, not an empty canvas
    assert body.endswith(b"IEND\xaeB`\x82")


def _check_metrics(metrics: dict[str, Any]) -> None:
    for name, m in metrics.items():
        assert -1.0 <= m["max_drawdown"] <= 0.0, name
        assert 0.0 <= m["exposure"] <= 1.0, name
        assert m["bars"] > 1 and m["total_return"] > -1.0, name
        if m["trades"] > 0:
            assert 0.0 <= m["win_rate"] <= 1.0, name
        else:
            assert m["win_rate"] is None or 0.0 <= m["win_rate"] <= 1.0, name
    bh = metrics["buy-and-hold"]
    assert bh["sharpe"] is not None and math.isfinite(bh["sharpe"])
    assert bh["exposure"] == 1.0 and bh["trades"] == 1


def _check_buy_and_hold(report: dict[str, Any], frame: pd.DataFrame) -> None:
    """Buy-and-hold against the prices themselves: buy at the first decision (filled at the
    next open, paying costs once), hold to the last close."""
    bh = report["metrics"]["buy-and-hold"]["total_return"]
    check = report["checks"]["buy_and_hold"]
    env = report["env"]
    cost = (env["feeBps"] + env["slippageBps"]) / 1e4
    assert check["cost_rate"] == pytest.approx(cost, abs=1e-15)
    assert bh == pytest.approx(check["expected_return_with_costs"], abs=1e-9)
    first = frame.index.get_loc(pd.Timestamp(report["period"]["first_decision"]))
    last = frame.index.get_loc(pd.Timestamp(report["period"]["last_bar"]))
    assert isinstance(first, int) and isinstance(last, int) and last > first
    close, open_ = frame["close"].to_numpy(), frame["open"].to_numpy()
    expected = close[last] / open_[first + 1] * (1 - cost) - 1
    assert bh == pytest.approx(expected, abs=1e-9)
    close_to_close = close[last] / close[first]
    assert check["close_to_close_return"] == pytest.approx(close_to_close - 1, abs=1e-12)
    assert (1 + bh) / (close_to_close * (1 - cost)) == pytest.approx(1.0, abs=0.02)


# ----------------------------------------------------------------------------- every data file


@pytest.mark.parametrize(
    ("name", "bar_size", "bpy"), DATASETS, ids=[d[0].rsplit("/", 1)[-1] for d in DATASETS]
)
def test_backtest_every_data_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    market: MarketFiles,
    name: str,
    bar_size: str,
    bpy: float,
) -> None:
    uri = name if "://" in name else market.exact(name)
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", uri, "--split", "test", "--policy", "expert",
                    "--out", out)  # fmt: skip
    ok(result)
    assert _table_header(result.out) == list(POLICIES)
    assert "buy-and-hold check:" in result.out
    assert f"report: {out / 'backtest.json'}" in result.out
    assert f"plot: {out / 'equity.png'}" in result.out
    assert sorted(p.name for p in out.iterdir()) == ["backtest.json", "equity.png"]
    _check_png(out / "equity.png")

    report = _report(out)
    assert report["policy"] == "expert" and report["split"] == "test"
    assert set(report["metrics"]) == set(POLICIES)
    assert report["data"]["uri"] == uri and report["data"]["bar_size"] == bar_size
    annual = report["annualisation"]
    assert annual["bars_per_year"] == pytest.approx(bpy, rel=1e-3)
    assert annual["note"].startswith("Sharpe/Sortino annualised with sqrt(")
    assert f"{bar_size} bars" in annual["note"] and "measured from data" in annual["note"]
    assert annual["note"] in result.out  # the table states it too
    for m in report["metrics"].values():
        assert m["bars_per_year"] == pytest.approx(annual["bars_per_year"])
    _check_metrics(report["metrics"])
    _check_buy_and_hold(report, load_ohlcv(uri))
    # the test split is the most recent 15% of the data
    assert pd.Timestamp(report["period"]["last_bar"]) == pd.Timestamp(report["data"]["last"])


def test_backtest_as_a_process(tmp_path: Path) -> None:
    """The console entry point as users run it: exit 0, files written, nothing on stderr."""
    result = stevie_process(tmp_path, "backtest", "--data", GOOGL, "--out", "report")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "stevie:" not in result.err, result.err
    assert _table_header(result.out) == list(POLICIES)
    _check_png(tmp_path / "report" / "equity.png")
    assert set(_report(tmp_path / "report")["metrics"]) == set(POLICIES)


def test_backtest_from_a_training_run_yaml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``-f`` takes data, env and expert from the TrainingRun; barsPerYear: 252 is stated."""
    quickstart = EXAMPLES / "trainingrun-quickstart.yaml"
    if not quickstart.is_file():
        pytest.skip(f"{quickstart} does not exist")
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "-f", quickstart, "--out", out)
    ok(result)
    report = _report(out)
    assert report["name"] == "trainingrun-quickstart" and report["data"]["uri"] == GOOGL
    assert report["annualisation"]["bars_per_year"] == 252
    assert "sqrt(252)" in report["annualisation"]["note"] and "set in spec" in result.out
    _check_metrics(report["metrics"])
    _check_buy_and_hold(report, load_ohlcv(GOOGL))


# ----------------------------------------------------------------------------- splits and seeds


def test_validation_and_all_splits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, market: MarketFiles
) -> None:
    uri = market.uri(SMALL)
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for split in ("validation", "test", "all"):
        out = tmp_path / split
        result = stevie(capsys, "backtest", "--data", uri, "--split", split, "--out", out)
        ok(result)
        assert f"{split} split" in result.out
        _check_png(out / "equity.png")
        report = _report(out)
        assert report["split"] == split and set(report["metrics"]) == set(POLICIES)
        _check_metrics(report["metrics"])
        _check_buy_and_hold(report, load_ohlcv(uri))
        period = report["period"]
        periods[split] = (pd.Timestamp(period["first_decision"]), pd.Timestamp(period["last_bar"]))
    (val_first, val_last), (test_first, test_last) = periods["validation"], periods["test"]
    all_first, all_last = periods["all"]
    assert all_first < val_first < val_last < test_first < test_last == all_last


def test_random_policy_is_reproducible(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, market: MarketFiles
) -> None:
    uri = market.uri(SMALL)

    def metrics(seed: int, out: str) -> dict[str, Any]:
        result = stevie(capsys, "backtest", "--data", uri, "--policy", "random",
                        "--seed", str(seed), "--out", tmp_path / out)  # fmt: skip
        ok(result)
        assert _table_header(result.out) == ["random", "buy-and-hold", "expert"]
        report = _report(tmp_path / out)
        assert report["policy"] == "random"
        metrics: dict[str, Any] = report["metrics"]
        return metrics

    first, again, other = metrics(3, "a"), metrics(3, "b"), metrics(4, "c")
    assert first == again
    assert other["random"] != first["random"]  # the seed matters
    assert other["buy-and-hold"] == first["buy-and-hold"]
