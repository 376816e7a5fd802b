"""The result summary in the termination message: where it goes (a pod only), what it holds
(result.json's headline, in result.json's shape), that it always fits the kubelet's 4096
bytes, and that failing to write it never fails the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stevie_trainer.common import termination

URI = "s3://bucket/stevie/default/trainingruns/quick/0f9a3c1e"
RESULT = {
    "status": "succeeded",
    "finished_at": "2025-01-01T01:00:00Z",
    "timesteps": 20480,
    "validation": {"sharpe": 1.5, "sortino": float("nan"), "total_return": 0.12,
                   "max_drawdown": -0.08, "win_rate": 0.55, "trades": 12, "fps": 900.0},
    "test": {"agent": {"sharpe": 0.7, "total_return": 0.04, "trades": 9, "sortino": float("inf")},
             "buy_and_hold": {"sharpe": 0.2}},
    "evaluations": [{"timesteps": t, "sharpe": 0.1} for t in range(0, 20480, 512)],
    "artifacts": {"model": URI + "/model.zip", "final_model": URI + "/final.zip"},
    "versions": {"stevie": "0.1.0"},
}  # fmt: skip


def test_the_summary_is_the_status_part_of_result_json_in_its_shape() -> None:
    summary = termination.training_summary(RESULT)
    assert summary == {
        "stevie": 1,
        "status": "succeeded",
        "timesteps": 20480,
        # Not-a-number metrics are left out: the summary is strict JSON.
        "validation": {"sharpe": 1.5, "total_return": 0.12, "max_drawdown": -0.08,
                       "win_rate": 0.55, "trades": 12},
        "test": {"agent": {"sharpe": 0.7, "total_return": 0.04, "trades": 9}},
        "artifacts": {"model": URI + "/model.zip"},
    }  # fmt: skip
    text = termination.encode(summary)
    assert text is not None and json.loads(text) == summary
    assert "\n" not in text and " " not in text


def test_a_result_without_metrics_still_says_it_succeeded() -> None:
    summary = termination.training_summary({"status": "succeeded", "validation": None,
                                            "test": {"agent": {"sharpe": None}}})  # fmt: skip
    assert summary == {"stevie": 1, "status": "succeeded"}


def test_an_oversize_summary_drops_whole_parts_until_it_fits() -> None:
    long_uri = "s3://bucket/" + "x" * 5000 + "/model.zip"
    summary = termination.training_summary(RESULT | {"artifacts": {"model": long_uri}})
    text = termination.encode(summary)
    assert text is not None and len(text.encode()) <= termination.MAX_BYTES < 4096
    doc = json.loads(text)
    assert "artifacts" not in doc  # the URI went, whole; the metrics stayed
    assert doc["test"] == summary["test"] and doc["validation"] == summary["validation"]
    # A limit that fits only the core: the optional parts go in order (test last).
    core = json.dumps({"stevie": 1, "status": "succeeded", "timesteps": 20480,
                       "test": summary["test"]}, separators=(",", ":"))  # fmt: skip
    assert termination.encode(summary, limit=len(core)) == core
    assert termination.encode({"stevie": 1, "note": "y" * 5000}) is None


def test_a_non_ascii_uri_is_counted_in_bytes() -> None:
    model = "file:///data/" + "é" * 1600 + "/model.zip"  # 1600 chars, 9600 bytes escaped
    text = termination.encode(
        termination.training_summary(RESULT | {"artifacts": {"model": model}})
    )
    assert text is not None and text.isascii() and len(text) <= termination.MAX_BYTES
    assert "artifacts" not in json.loads(text)


def test_the_destination_is_the_env_var_else_the_pod_file_else_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod_file = tmp_path / "termination-log"
    monkeypatch.setattr(termination, "DEFAULT_PATH", pod_file)
    monkeypatch.delenv(termination.ENV, raising=False)
    assert termination.destination() is None  # a laptop: no /dev/termination-log
    assert termination.write({"stevie": 1}) is None
    assert not pod_file.exists()
    pod_file.write_text("")  # a pod: the kubelet mounts an empty file there
    assert termination.destination() == pod_file
    pod_file.unlink()
    pod_file.mkdir()  # something else at that path: not a file to write
    assert termination.destination() is None
    mine = tmp_path / "mine.log"
    monkeypatch.setenv(termination.ENV, str(mine))
    assert termination.destination() == mine
    monkeypatch.setenv(termination.ENV, "")  # set but empty: nowhere
    assert termination.destination() is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_a_read_only_pod_file_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod_file = tmp_path / "termination-log"
    pod_file.write_text("")
    pod_file.chmod(0o444)
    monkeypatch.setattr(termination, "DEFAULT_PATH", pod_file)
    monkeypatch.delenv(termination.ENV, raising=False)
    assert termination.destination() is None


def test_write_replaces_the_file_and_a_failure_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "termination-log"
    target.write_text("an older, longer message " * 20)
    monkeypatch.setenv(termination.ENV, str(target))
    summary = termination.training_summary(RESULT)
    assert termination.write(summary) == target
    assert json.loads(target.read_text()) == summary
    assert capsys.readouterr().err == ""

    monkeypatch.setenv(termination.ENV, str(tmp_path / "no-such-folder" / "log"))
    assert termination.write(summary) is None
    err = capsys.readouterr().err
    assert err.startswith("stevie-trainer: warning: no result summary in the termination message")
    assert err.count("\n") == 1  # one line, no traceback
    assert termination.write({"stevie": 1, "x": "y" * 5000}, path=target) is None
    assert "does not fit in 3072 bytes" in capsys.readouterr().err
    assert json.loads(target.read_text()) == summary  # nothing half-written
