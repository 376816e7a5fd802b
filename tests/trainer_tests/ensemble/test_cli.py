"""``ensemble-backtest``: an Ensemble resource (or spec) and the members the operator knows;
progress and the table on stdout; bad input is one ``stevie-trainer: error:`` line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stevie_trainer.common.errors import user_error_lines
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble.cli import add_commands
from support.ensemble import TrainedMembers


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="python -m stevie_trainer")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.func(args)
    return code


def error_lines(*argv: str | Path) -> list[str]:
    """What stevie_trainer's main prints for the command's failure: one line a problem."""
    with pytest.raises(Exception) as caught:
        run(*argv)
    lines = user_error_lines(caught.value, prog="stevie-trainer")
    assert all(line.startswith("stevie-trainer: error: ") for line in lines), lines
    return lines


def error_line(*argv: str | Path) -> str:
    (line,) = error_lines(*argv)
    return line


def resource(tmp_path: Path, spec: dict[str, Any], name: str = "trio") -> Path:
    path = tmp_path / "ensemble.yaml"
    doc = {"apiVersion": "stevie.dev/v1alpha1", "kind": "Ensemble", "metadata": {"name": name}}
    path.write_text(yaml.safe_dump(doc | {"spec": spec}))
    return path


def members_json(trained: TrainedMembers, *names: str) -> str:
    refs = [{"name": r.name, "source": r.source, "uri": r.uri} for r in trained.refs(*names)]
    return json.dumps(refs)


SPEC = {"members": [{"trainingRun": "ppo"}, {"trainingRun": "dqn", "weight": 2.0}]}


def test_backtest_from_a_resource_prints_progress_and_the_table(
    trained_members: TrainedMembers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = resource(tmp_path, SPEC | {"method": "confidence"})
    refs_file = tmp_path / "members.json"
    refs_file.write_text(members_json(trained_members, "dqn", "ppo"))  # any order
    out = tmp_path / "out"
    assert run("ensemble-backtest", "--ensemble-spec", spec_file, "--members-json", refs_file,
               "--out", out) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "member ppo: PPO model" in printed and "test split: ensemble voting by" in printed
    assert "Ensemble trio (confidence)" in printed and "Voting methods" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["name"] == "trio" and report["method"] == "confidence"
    # The spec's order (the first member's rules) and the spec's fixed weight.
    assert [m["name"] for m in report["members"]] == ["ppo", "dqn"]
    assert report["simulator"]["rules_from"] == "ppo"
    assert [m["weight"] for m in report["members"]] == [None, 2.0]
    assert (out / "table.txt").read_text().strip() in printed
    # Again: the finished report, not another backtest.
    assert run("ensemble-backtest", "--ensemble-spec", spec_file, "--members-json", refs_file,
               "--out", out) == 0  # fmt: skip
    assert "already finished" in capsys.readouterr().out


def test_a_bare_spec_with_its_own_data(
    trained_members: TrainedMembers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """spec.data overrides the members' data: here the last 1,200 of the same bars, split
    by dates; the report says where the data came from and warns of the other split."""
    frame = load_ohlcv("pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv").iloc[-1200:]
    csv = tmp_path / "googl.csv"
    frame.rename_axis("date").to_csv(csv)
    data = {"uri": str(csv), "symbol": "GOOGL-recent", "barsPerYear": 252,
            "split": {"validationStart": "2016-06-01", "testStart": "2017-06-01"}}  # fmt: skip
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"members": [{"trainingRun": "bc"}], "data": data}))
    out = tmp_path / "out"
    refs = members_json(trained_members, "bc")
    assert run("ensemble-backtest", "--ensemble-spec", spec_file, "--members-json", refs,
               "--out", out) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["data"] == {"uri": str(csv), "name": "GOOGL-recent", "source": "spec.data"}
    assert report["name"] == "ensemble"
    assert report["splits"]["test"]["period"]["first_decision"].startswith("2017-06-01")
    assert report["data_warnings"] and "member 'bc'" in report["data_warnings"][0]
    assert "may overlap its training data" in capsys.readouterr().out


def test_bad_inputs_are_one_line(trained_members: TrainedMembers, tmp_path: Path) -> None:
    spec_file = resource(tmp_path, SPEC)
    out = str(tmp_path / "out")
    base = ("ensemble-backtest", "--ensemble-spec", spec_file, "--out", out, "--members-json")
    good = json.loads(members_json(trained_members, "ppo", "dqn"))
    ghost = [good[0], {"name": "dqn", "source": "TrainingRun", "uri": str(tmp_path / "gone")}]
    line = error_line(*base, json.dumps(ghost))
    assert "member 'dqn': no model.zip under" in line and str(tmp_path / "gone") in line
    # ... and error.json names it, for the operator's status (Degraded, MemberUnusable).
    error = json.loads((tmp_path / "out" / "error.json").read_text())
    assert error["member"] == "dqn" and error["problem"].startswith("no model.zip under")
    (tmp_path / "out" / "error.json").unlink()
    (tmp_path / "out").rmdir()
    line = error_line(*base, json.dumps(good[:1]))
    assert "does not match the spec's members (missing dqn)" in line
    line = error_line(*base, json.dumps([good[0], good[1] | {"name": "other"}]))
    assert "missing dqn; not in the spec: other" in line
    line = error_line(*base, json.dumps([good[0], good[1] | {"source": "uri"}]))
    assert "member 'dqn': --members-json says source uri, the spec TrainingRun" in line
    assert "--members-json is not valid JSON" in error_line(*base, "[{oops")
    assert "has no uri" in error_line(*base, json.dumps([{"name": "ppo", "source": "uri"}]))
    assert "source must be one of" in error_line(*base, json.dumps([good[0] | {"source": "x"}]))
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(yaml.safe_dump({"members": [], "method": "vote"}))
    lines = error_lines("ensemble-backtest", "--ensemble-spec", bad_spec, "--members-json",
                        json.dumps(good), "--out", out)  # fmt: skip
    assert len(lines) == 2 and all(str(bad_spec) in line for line in lines), lines
    assert "spec.members" in lines[0] and "(got 'vote')" in lines[1]
    assert not (tmp_path / "out").exists()


def test_too_short_data_is_one_line(trained_members: TrainedMembers, tmp_path: Path) -> None:
    frame = load_ohlcv("pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv").iloc[:150]
    csv = tmp_path / "short.csv"
    frame.rename_axis("date").to_csv(csv)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC | {"data": {"uri": str(csv)}}))
    refs = members_json(trained_members, "ppo", "dqn")
    line = error_line("ensemble-backtest", "--ensemble-spec", spec_file, "--members-json", refs,
                      "--out", tmp_path / "o")  # fmt: skip
    assert "backtest data short.csv: validation split of ppo has 22 bars; window 20" in line, line
