"""``stevie backtest`` end to end: the real CLI on every real data file, its outputs, and one
clear ``stevie: error:`` line (exit 1, no traceback) for every kind of bad input."""

from __future__ import annotations

import json
import math
import os
import random
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stevie_operator.cli import main
from stevie_trainer.data.ohlcv import load_ohlcv

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"
GOOGL = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"
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


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real OHLCV files in ``<repo>/../shared/data`` (see its README.md)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared market data not found at {SHARED_DATA}")
    return SHARED_DATA


def _uri(name: str, shared: Path) -> str:
    return name if "://" in name else str(shared / name)


def stevie(capsys: pytest.CaptureFixture[str], *args: str | Path) -> CliResult:
    """``stevie ARGS...`` in-process through ``main(argv)``."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def stevie_process(cwd: Path, *args: str | Path) -> CliResult:
    """``python -m stevie_operator.cli ARGS...`` as a process of its own."""
    env = dict(os.environ)
    paths = [str(REPO / d) for d in ("api", "trainer", "operator")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "stevie_operator.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _ok(result: CliResult) -> None:
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "stevie:" not in result.err, result.err


def _one_error_line(result: CliResult, *fragments: str) -> str:
    """Exit 1, nothing but one ``stevie: error:`` line on stderr naming every fragment."""
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err and "Traceback" not in result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("stevie: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


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
    shared_data: Path,
    name: str,
    bar_size: str,
    bpy: float,
) -> None:
    uri = _uri(name, shared_data)
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", uri, "--split", "test", "--policy", "expert",
                    "--out", out)  # fmt: skip
    _ok(result)
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
    _ok(result)
    report = _report(out)
    assert report["name"] == "trainingrun-quickstart" and report["data"]["uri"] == GOOGL
    assert report["annualisation"]["bars_per_year"] == 252
    assert "sqrt(252)" in report["annualisation"]["note"] and "set in spec" in result.out
    _check_metrics(report["metrics"])
    _check_buy_and_hold(report, load_ohlcv(GOOGL))


# ----------------------------------------------------------------------------- splits and seeds


def test_validation_and_all_splits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    uri = str(shared_data / SMALL)
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for split in ("validation", "test", "all"):
        out = tmp_path / split
        result = stevie(capsys, "backtest", "--data", uri, "--split", split, "--out", out)
        _ok(result)
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
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    uri = str(shared_data / SMALL)

    def metrics(seed: int, out: str) -> dict[str, Any]:
        result = stevie(capsys, "backtest", "--data", uri, "--policy", "random",
                        "--seed", str(seed), "--out", tmp_path / out)  # fmt: skip
        _ok(result)
        assert _table_header(result.out) == ["random", "buy-and-hold", "expert"]
        report = _report(tmp_path / out)
        assert report["policy"] == "random"
        metrics: dict[str, Any] = report["metrics"]
        return metrics

    first, again, other = metrics(3, "a"), metrics(3, "b"), metrics(4, "c")
    assert first == again
    assert other["random"] != first["random"]  # the seed matters
    assert other["buy-and-hold"] == first["buy-and-hold"]


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_csv(shared_data: Path) -> tuple[str, list[str]]:
    """Header and the first 300 data rows of a real file, as published."""
    lines = (shared_data / SMALL).read_text().splitlines()
    return lines[0], lines[1:301]


def _write_csv(path: Path, header: str, rows: Sequence[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _set_field(row: str, column: int, value: str) -> str:
    fields = row.split(",")
    fields[column] = value
    return ",".join(fields)


def _assert_nothing_written(result: CliResult, out: Path) -> None:
    assert result.out == ""
    assert not out.exists()


@pytest.mark.parametrize("missing", ["", "NaN", "nan"])
def test_nan_in_data(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    small_csv: tuple[str, list[str]],
    missing: str,
) -> None:
    header, rows = small_csv
    close = [c.lower() for c in header.split(",")].index("close")
    rows = list(rows)
    rows[149] = _set_field(rows[149], close, missing)
    csv = _write_csv(tmp_path / "nan.csv", header, rows)
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", csv, "--out", out)
    _one_error_line(result, "nan.csv", "'close'", "empty or non-numeric", "data row 150")
    _assert_nothing_written(result, out)


def test_shuffled_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_csv: tuple[str, list[str]]
) -> None:
    header, rows = small_csv
    shuffled = list(rows)
    random.Random(0).shuffle(shuffled)
    csv = _write_csv(tmp_path / "shuffled.csv", header, shuffled)
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", csv, "--out", out)
    _one_error_line(result, "shuffled.csv", "not in ascending order", "data row 2")
    _assert_nothing_written(result, out)


def test_missing_close_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_csv: tuple[str, list[str]]
) -> None:
    header, rows = small_csv
    close = [c.lower() for c in header.split(",")].index("close")

    def drop(line: str) -> str:
        return ",".join(f for i, f in enumerate(line.split(",")) if i != close)

    csv = _write_csv(tmp_path / "no_close.csv", drop(header), [drop(r) for r in rows])
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", csv, "--out", out)
    _one_error_line(result, "no_close.csv", "missing required column(s) close", "Open")
    _assert_nothing_written(result, out)


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", tmp_path / "nowhere.csv", "--out", out)
    _one_error_line(result, "nowhere.csv", "no such file")
    _assert_nothing_written(result, out)


def test_too_few_bars_for_the_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_csv: tuple[str, list[str]]
) -> None:
    header, rows = small_csv
    csv = _write_csv(tmp_path / "short.csv", header, rows[:40])
    result = stevie(capsys, "backtest", "--data", csv, "--out", tmp_path / "out")
    _one_error_line(result, "test split of short.csv has", "bars", "window 20")


TRAINING_RUN = """\
apiVersion: stevie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: bad-run
spec:
  data:
    uri: {uri}
  env:
    {env}
"""


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ("windw: 20", ("bad.yaml:9", "spec.env.windw", "unknown field")),
        ("window: 0", ("bad.yaml:9", "spec.env.window", "0")),
    ],
    ids=["unknown-field", "out-of-range"],
)
def test_bad_yaml(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    shared_data: Path,
    env: str,
    fragments: tuple[str, ...],
) -> None:
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text(TRAINING_RUN.format(uri=shared_data / SMALL, env=env))
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "-f", yaml_file, "--out", out)
    _one_error_line(result, *fragments)
    _assert_nothing_written(result, out)


def test_errors_as_a_process(tmp_path: Path, small_csv: tuple[str, list[str]]) -> None:
    """At the process level too: exit 1, one line, no traceback (bad data, then bad YAML)."""
    header, rows = small_csv
    rows = list(rows)
    close = [c.lower() for c in header.split(",")].index("close")
    rows[9] = _set_field(rows[9], close, "NaN")
    _write_csv(tmp_path / "nan.csv", header, rows)
    result = stevie_process(tmp_path, "backtest", "--data", "nan.csv", "--out", "out")
    _one_error_line(result, "nan.csv", "data row 10")
    (tmp_path / "bad.yaml").write_text(TRAINING_RUN.format(uri="nan.csv", env="windw: 20"))
    result = stevie_process(tmp_path, "backtest", "-f", "bad.yaml", "--out", "out")
    _one_error_line(result, "spec.env.windw")
    assert result.out == "" and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- validate


def test_validate_examples(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    if not files:
        pytest.skip(f"no examples in {EXAMPLES} yet")
    result = stevie(capsys, "validate", *files)
    _ok(result)
    lines = result.out.strip().splitlines()
    assert len(lines) >= len(files)
    for file in files:
        assert any(line.startswith(f"{file}: ") and line.endswith(": valid") for line in lines)


# ----------------------------------------------------------------------------- error lines


def test_bad_fee_flag_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    uri = shared_data / SMALL
    result = stevie(capsys, "backtest", "--data", uri, "--fee-bps", "-5", "--out", tmp_path)
    _one_error_line(result, "fee", "-5")


def test_every_yaml_problem_is_a_stevie_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    yaml_file = tmp_path / "bad.yaml"
    env = "windw: 20\n    window: 0"
    yaml_file.write_text(TRAINING_RUN.format(uri=shared_data / SMALL, env=env))
    result = stevie(capsys, "backtest", "-f", yaml_file, "--out", tmp_path / "out")
    assert result.code == 1 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("stevie: error: ") for line in lines)
    assert "spec.env.windw" in result.err and "spec.env.window" in result.err
