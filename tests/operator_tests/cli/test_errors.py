"""Bad input to the ``stevie`` CLI: one clear ``stevie: error:`` line (exit 1, no traceback,
nothing written) for every kind of problem; ``stevie validate`` of the examples."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from stevie_trainer.common import storage
from support.cli import CliResult, ok, one_error_line, stevie, stevie_process
from support.data import MarketFiles
from support.paths import EXAMPLES

SMALL = "BTCUSDT_1d.csv"  # 1,570 daily bars (bundled GOOGL dailies with no ../shared)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_csv(market: MarketFiles) -> tuple[str, list[str]]:
    """Header and the first 300 data rows of a real file, as published."""
    lines = storage.read_text(market.uri(SMALL)).splitlines()
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
    one_error_line(result, "nan.csv", "'close'", "empty or non-numeric", "data row 150")
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
    one_error_line(result, "shuffled.csv", "not in ascending order", "data row 2")
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
    one_error_line(result, "no_close.csv", "missing required column(s) close", "Open")
    _assert_nothing_written(result, out)


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "--data", tmp_path / "nowhere.csv", "--out", out)
    one_error_line(result, "nowhere.csv", "no such file")
    _assert_nothing_written(result, out)


def test_too_few_bars_for_the_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, small_csv: tuple[str, list[str]]
) -> None:
    header, rows = small_csv
    csv = _write_csv(tmp_path / "short.csv", header, rows[:40])
    result = stevie(capsys, "backtest", "--data", csv, "--out", tmp_path / "out")
    one_error_line(result, "test split of short.csv has", "bars", "window 20")


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
    market: MarketFiles,
    env: str,
    fragments: tuple[str, ...],
) -> None:
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text(TRAINING_RUN.format(uri=market.uri(SMALL), env=env))
    out = tmp_path / "out"
    result = stevie(capsys, "backtest", "-f", yaml_file, "--out", out)
    one_error_line(result, *fragments)
    _assert_nothing_written(result, out)


def test_errors_as_a_process(tmp_path: Path, small_csv: tuple[str, list[str]]) -> None:
    """At the process level too: exit 1, one line, no traceback (bad data, then bad YAML)."""
    header, rows = small_csv
    rows = list(rows)
    close = [c.lower() for c in header.split(",")].index("close")
    rows[9] = _set_field(rows[9], close, "NaN")
    _write_csv(tmp_path / "nan.csv", header, rows)
    result = stevie_process(tmp_path, "backtest", "--data", "nan.csv", "--out", "out")
    one_error_line(result, "nan.csv", "data row 10")
    (tmp_path / "bad.yaml").write_text(TRAINING_RUN.format(uri="nan.csv", env="windw: 20"))
    result = stevie_process(tmp_path, "backtest", "-f", "bad.yaml", "--out", "out")
    one_error_line(result, "spec.env.windw")
    assert result.out == "" and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- validate


def test_validate_examples(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    if not files:
        pytest.skip(f"no examples in {EXAMPLES} yet")
    result = stevie(capsys, "validate", *files)
    ok(result)
    lines = result.out.strip().splitlines()
    assert len(lines) >= len(files)
    for file in files:
        assert any(line.startswith(f"{file}: ") and line.endswith(": valid") for line in lines)


# ----------------------------------------------------------------------------- error lines


def test_bad_fee_flag_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, market: MarketFiles
) -> None:
    uri = market.uri(SMALL)
    result = stevie(capsys, "backtest", "--data", uri, "--fee-bps", "-5", "--out", tmp_path)
    one_error_line(result, "fee", "-5")


def test_every_yaml_problem_is_a_stevie_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, market: MarketFiles
) -> None:
    yaml_file = tmp_path / "bad.yaml"
    env = "windw: 20\n    window: 0"
    yaml_file.write_text(TRAINING_RUN.format(uri=market.uri(SMALL), env=env))
    result = stevie(capsys, "backtest", "-f", yaml_file, "--out", tmp_path / "out")
    assert result.code == 1 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("stevie: error: ") for line in lines)
    assert "spec.env.windw" in result.err and "spec.env.window" in result.err
