"""The trainer end to end on tiny budgets: artifacts, resume after SIGKILL, honest splits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stevie_api import exit_codes
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.env.prepare import prepare
from stevie_trainer.rl.agent import SpecConflictError, check_batching
from stevie_trainer.rl.train import RunConflictError, train
from support.specs import template

BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"


def tiny_spec(**overrides: Any) -> TrainingRunSpec:
    base = {"totalTimesteps": 2048, "evaluation": {"evalFreq": 1024},
            "checkpoint": {"intervalSteps": 1024}}  # fmt: skip
    return TrainingRunSpec.model_validate(template(**(base | overrides)))


@pytest.mark.slow
def test_ppo_with_bc_augmentation_and_curriculum_writes_every_artifact(tmp_path: Path) -> None:
    spec = tiny_spec(
        totalTimesteps=4096,
        behaviourCloning={"enabled": True, "epochs": 3},
        augmentation={"enabled": True, "copies": 1},
        curriculum={"enabled": True, "promotion": "steps", "stepsPerStage": 1024},
    )
    out = tmp_path / "run"
    result = train(spec, str(out), log=lambda _: None)
    for name in ("model.zip", "final.zip", "result.json", "progress.json", "equity.png"):
        assert (out / name).is_file(), name
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert result["timesteps"] == 4096
    assert set(result["test"]) == {"agent", "buy-and-hold", "expert", "random"}
    assert result["validation"]["bars"] > 0 and len(result["evaluations"]) >= 4
    bc = result["behaviour_cloning"]
    assert bc["n_demos"] > 1000 and 0.0 <= bc["validation_accuracy"] <= 1.0
    stages = [h["stage"] for h in result["curriculum"]["history"]]
    assert stages == ["stable", "moderate", "high_volatility"]
    assert result["curriculum"]["stage"] == 3
    assert result["augmentation"]["copies"] == 1
    # Buy-and-hold on the test split: one trade, fully exposed, like `stevie backtest`.
    assert result["test"]["buy-and-hold"]["trades"] == 1
    assert result["test"]["buy-and-hold"]["exposure"] == 1.0
    # A second call finds the finished run and does not train again.
    assert train(spec, str(out), log=lambda _: None)["finished_at"] == result["finished_at"]


def test_validation_and_test_data_are_never_augmented() -> None:
    spec = tiny_spec(augmentation={"enabled": True, "copies": 2})
    prepared = prepare(spec)
    raw = load_ohlcv(BUNDLED)
    np.testing.assert_array_equal(prepared.market.close, raw["close"].to_numpy())
    np.testing.assert_array_equal(prepared.market.open, raw["open"].to_numpy())
    lo, hi = prepared.splits.train
    n_train = hi - lo
    # The training market: the real training split, then two augmented copies of it...
    assert prepared.train_market.n_bars > 2 * n_train
    np.testing.assert_array_equal(prepared.train_market.close[:n_train], raw["close"][lo:hi])
    copy = prepared.train_market.close[n_train : 2 * n_train]
    assert not np.allclose(copy[: len(copy) // 2], raw["close"][lo:hi][: len(copy) // 2])
    # ...and nothing of validation or test goes into it, augmented or not.
    val_test = raw.iloc[prepared.splits.validation[0] :]["close"].to_numpy()
    in_train = np.isin(val_test, raw["close"][lo:hi])  # real prices that simply recur
    assert not (np.isin(val_test, prepared.train_market.close) & ~in_train).any()
    # Episodes never start where they would run across a copy boundary.
    starts = prepared.train_starts
    length = spec.env.episode_length
    for first, last in prepared.ranges:
        inside = starts[(starts >= first) & (starts <= last)]
        assert inside.size and (inside + length <= last).all()


def test_a_different_spec_on_the_same_out_is_refused(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path))
    store.write_json("spec.json", {"data": {"uri": "elsewhere.csv"}})
    with pytest.raises(RunConflictError, match="different spec"):
        train(tiny_spec(), str(tmp_path), log=lambda _: None)


def test_batch_larger_than_a_rollout_names_the_fields() -> None:
    spec = tiny_spec(ppo={"nSteps": 16, "batchSize": 128}, nEnvs=2)
    with pytest.raises(SpecConflictError, match=r"spec.ppo.batchSize \(128\).*nSteps x spec.nEnvs"):
        check_batching(spec)


def test_dqn_trains_and_reports(tmp_path: Path) -> None:
    spec = tiny_spec(
        algorithm="DQN",
        dqn={"learningStarts": 256, "bufferSize": 5000, "batchSize": 32},
        totalTimesteps=1024,
        evaluation={"evalFreq": 512},
        checkpoint={"intervalSteps": 512},
    )
    result = train(spec, str(tmp_path / "dqn"), log=lambda _: None)
    assert result["algorithm"] == "DQN" and result["timesteps"] >= 1024
    ckpt = RunStore(str(tmp_path / "dqn")).latest_checkpoint()
    assert ckpt is not None and ckpt.replay_bytes() is not None  # the replay buffer is saved


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_finishes_the_requested_steps(tmp_path: Path) -> None:
    spec = tiny_spec(totalTimesteps=8192, checkpoint={"intervalSteps": 1024, "keep": 2})
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json(by_alias=True))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "stevie_trainer", "train", "--spec", str(spec_file)]
    cmd += ["--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(str(out))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        ckpt = store.latest_checkpoint()
        if ckpt is not None and ckpt.timesteps >= 2048:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = store.latest_checkpoint()
    assert killed_at is not None and 2048 <= killed_at.timesteps < 8192
    assert not (out / "result.json").exists()

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming from checkpoint at {killed_at.timesteps:,}" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["timesteps"] == 8192
    assert result["resumed_from"] == [killed_at.timesteps]


def test_bad_spec_is_one_line_per_problem(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"data": {"uri": BUNDLED}, "ppo": {"learningRate": -1}}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stevie_trainer",
            "train",
            "--spec",
            str(spec_file),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == exit_codes.BAD_INPUT  # the Job fails at once (podFailurePolicy)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "stevie-trainer: error: spec.ppo.learningRate: must be > 0.0 (got -1)"
    )


def test_prepare_reports_a_too_short_split_in_one_line() -> None:
    spec = tiny_spec(
        data={"uri": BUNDLED, "split": {"trainFraction": 0.97, "validationFraction": 0.0296}}
    )
    with pytest.raises(ValueError, match=r"test split of STOCKS_GOOGL\.csv has 1 bars") as err:
        prepare(spec)
    assert "\n" not in str(err.value)


def test_a_run_with_s3_artifacts_trains_and_resumes(tmp_path: Path, s3_server: Any) -> None:
    """Everything under an s3:// prefix on a real S3-speaking server (moto over HTTP)."""
    out = s3_server.uri("runs/tiny")
    first = tiny_spec(totalTimesteps=1024, evaluation={"evalFreq": 512})
    result = train(first, out, log=lambda _: None)
    listed = s3_server.client.list_objects_v2(Bucket=s3_server.bucket, Prefix="runs/tiny/")
    keys = {o["Key"].removeprefix("runs/tiny/") for o in listed["Contents"]}
    assert {"model.zip", "final.zip", "result.json", "progress.json", "equity.png"} <= keys
    assert any(k.startswith("checkpoints/ckpt-") and k.endswith("/state.json") for k in keys)
    assert any(k.startswith("tensorboard/") for k in keys)  # uploaded from a scratch folder
    assert result["artifacts"]["model"] == f"{out}/model.zip"

    # Pretend the run was cut short: drop its result, then train on from its checkpoint.
    s3_server.client.delete_object(Bucket=s3_server.bucket, Key="runs/tiny/result.json")
    messages: list[str] = []
    resumed = train(first, out, log=messages.append)
    assert any(m.startswith("resuming from checkpoint at 1,024") for m in messages)
    assert resumed["timesteps"] == 1024
