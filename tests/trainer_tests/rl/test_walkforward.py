"""Walk-forward TrainingRuns on tiny budgets: each fold's agent sees only its windows, the
validation block is the score over folds, a crash resumes its fold, the test split waits for
the final report, and an HPO seed's objective is the same aggregate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.common.telemetry import TrainerMetrics
from stevie_trainer.data.folds import walk_forward_folds
from stevie_trainer.data.ohlcv import DataError
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.prepare import data_splits, load_market
from stevie_trainer.evaluation.selection import aggregate, selection_score
from stevie_trainer.hpo.trial import TrialEvalCallback
from stevie_trainer.rl import walkforward
from stevie_trainer.rl.agent import load_model, validation_episode
from stevie_trainer.rl.callbacks import CheckpointCallback
from stevie_trainer.rl.foldplan import plan_folds
from stevie_trainer.rl.train import test_backtest as original_test_backtest
from stevie_trainer.rl.train import train
from stevie_trainer.rl.walkforward import walk_forward_seed
from support.specs import template

N_ENVS = 4  # the template's: a training env's Accounts has 4 accounts, an evaluation's 1


def wf_spec(walk_forward: dict[str, Any], **overrides: Any) -> TrainingRunSpec:
    """3 folds x 512 timesteps (two 256-step PPO rollouts each), evaluated every 256."""
    doc = template(totalTimesteps=1536, checkpoint={"intervalSteps": 256}, **overrides)
    doc["evaluation"] = {"evalFreq": 256, "walkForward": {"folds": 3, **walk_forward}}
    return TrainingRunSpec.model_validate(doc)


class Spy:
    """Every simulator account's (first, last) bar, by the phase of the run it was reset in:
    ``fold-<k>`` from the fold's "training on" line, ``test`` from the test report on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.phase = "setup"
        self.resets: list[tuple[str, int, int, int]] = []  # (phase, accounts, first, last)
        self.progress: list[dict[str, Any]] = []
        reset, write = Accounts.reset, RunStore.write_json

        def spy_reset(acc: Accounts, idx: Any, starts: Any, ends: Any, out: Any = None) -> None:
            for s, e in zip(np.ravel(starts), np.ravel(ends), strict=True):
                if (s, e) != (0, 0):  # the constructor's placeholder: no bar is stepped
                    self.resets.append((self.phase, acc.n, int(s), int(e)))
            reset(acc, idx, starts, ends, out)

        def spy_backtest(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.phase = "test"
            return original_test_backtest(*args, **kwargs)

        def spy_write(store: RunStore, name: str, payload: dict[str, Any]) -> str:
            if name == "progress.json":
                self.progress.append(payload)
            return write(store, name, payload)

        monkeypatch.setattr(Accounts, "reset", spy_reset)
        monkeypatch.setattr(walkforward, "test_backtest", spy_backtest)
        monkeypatch.setattr(RunStore, "write_json", spy_write)

    def log(self, message: str) -> None:
        found = re.match(r"fold (\d+)/\d+: training on", message)
        if found:
            self.phase = f"fold-{int(found.group(1)) - 1}"


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_each_fold_sees_only_its_windows_and_the_test_split_waits_for_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = wf_spec({"scheme": "rolling", "trainBars": 400, "embargoBars": 5, "score": "lcb"})
    spy = Spy(monkeypatch)
    out = tmp_path / "run"
    result = train(spec, str(out), log=spy.log)

    # The folds, cut independently of the trainer: purge = env.window by default.
    _, market = load_market(spec.data, spec.env)
    splits = data_splits(market, spec.data)
    folds = walk_forward_folds(
        splits, folds=3, scheme="rolling", train_bars=400, purge=spec.env.window, embargo=5
    )
    assert [f["windows"]["train"]["bars"] for f in result["validation_folds"]] == [
        list(f.train) for f in folds
    ]
    assert [f["windows"]["validation"]["bars"] for f in result["validation_folds"]] == [
        list(f.validation) for f in folds
    ]
    test_start = splits.test[0]
    for fold in folds:
        mine = [r for r in spy.resets if r[0] == f"fold-{fold.index}"]
        training = [(a, b) for _, n, a, b in mine if n == N_ENVS]
        evaluations = {(a, b) for _, n, a, b in mine if n == 1}
        first, last = market.tradable(fold.train, "train")
        assert len(training) >= N_ENVS
        assert all(first <= a and b <= last for a, b in training), fold
        # Every evaluation of fold k is one pass over fold k's validation window.
        assert evaluations == {market.tradable(fold.validation, "validation")}
    assert {r[0] for r in spy.resets} == {"fold-0", "fold-1", "fold-2", "test"}
    assert max(b for phase, _, _, b in spy.resets if phase != "test") < test_start
    assert min(a for phase, _, a, _ in spy.resets if phase == "test") >= test_start

    # Each fold kept its best model by its own validation window: replaying it agrees.
    plan = plan_folds(spec, RunStore(str(out)))
    records = [read(out / f"fold-{k}" / "fold.json") for k in range(3)]
    for k, (planned, record) in enumerate(zip(plan.folds, records, strict=True)):
        model = load_model(spec, (out / f"fold-{k}" / "model.zip").read_bytes())
        replay = validation_episode(planned.prepare(spec), model).performance().to_dict()
        assert replay["sharpe"] == pytest.approx(record["validation"]["sharpe"])
        assert record["validation"] == result["validation_folds"][k]["validation"]

    # The validation block: the lcb of the fold Sharpes, every other metric's mean.
    wf = spec.evaluation.walk_forward
    assert wf is not None
    sharpes = [r["validation"]["sharpe"] or 0.0 for r in records]
    assert result["validation"]["sharpe"] == pytest.approx(selection_score(sharpes, wf))
    assert result["validation"]["sharpe"] < result["validation"]["sharpe_mean"]
    assert result["validation"]["total_return"] == pytest.approx(
        np.mean([r["validation"]["total_return"] for r in records])
    )
    assert result["walk_forward"] | {"final_model": None} == {
        "folds": 3, "scheme": "rolling", "purge_bars": spec.env.window, "embargo_bars": 5,
        "score": "lcb", "z": 1.0, "timestep_targets": [512, 1024, 1536], "final_model": None,
    }  # fmt: skip
    # The run's model is the last fold's; the test report is of it; timesteps are summed.
    assert (out / "model.zip").read_bytes() == (out / "fold-2" / "model.zip").read_bytes()
    assert result["timesteps"] == 1536 and [r["timesteps"] for r in records] == [512] * 3
    assert set(result["test"]) == {"agent", "buy-and-hold", "expert", "random"}
    assert read(out / "result.json") == json.loads(json.dumps(result))
    # progress.json: the run's timesteps summed over folds, against the run's total.
    assert [p["timesteps"] for p in spy.progress] == sorted(p["timesteps"] for p in spy.progress)
    assert {p["total_timesteps"] for p in spy.progress} == {1536}
    assert [p["fold"]["index"] for p in spy.progress][-1] == 2
    assert {p["fold"]["count"] for p in spy.progress} == {3}
    assert read(out / "progress.json")["timesteps"] == 1536


def test_a_crash_in_a_fold_resumes_that_fold_and_keeps_the_ones_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = wf_spec({})
    out = tmp_path / "run"
    save = CheckpointCallback.save

    def crash_in_fold_1(callback: CheckpointCallback) -> None:
        save(callback)
        if callback.store.out.endswith("fold-1") and callback.num_timesteps == 256:
            raise RuntimeError("pod killed")

    monkeypatch.setattr(CheckpointCallback, "save", crash_in_fold_1)
    with pytest.raises(RuntimeError, match="pod killed"):
        train(spec, str(out), log=lambda _: None)
    assert not (out / "result.json").exists() and not (out / "fold-1" / "fold.json").exists()
    fold_0 = (out / "fold-0" / "fold.json").read_text()
    monkeypatch.setattr(CheckpointCallback, "save", save)

    lines: list[str] = []
    result = train(spec, str(out), log=lines.append)
    assert "fold 1/3: already trained (512 timesteps)" in lines
    resumed = lines.index("resuming from checkpoint at 256 timesteps")
    assert lines[resumed - 1].startswith("fold 2/3: training on")
    assert sum(line.startswith("resuming") for line in lines) == 1  # fold 3 starts fresh
    assert (out / "fold-0" / "fold.json").read_text() == fold_0  # not trained again
    assert read(out / "fold-1" / "fold.json")["resumed_from"] == [256]
    assert result["resumed_from"] == [512 + 256]  # on the run's summed axis
    assert result["timesteps"] == 1536
    assert [f["timesteps"] for f in result["validation_folds"]] == [512, 512, 512]
    # Anchored: every fold trains from the first bar, on more and more of them.
    starts = [f["windows"]["train"]["bars"] for f in result["validation_folds"]]
    assert [s[0] for s in starts] == [0, 0, 0] and starts[0][1] < starts[1][1] < starts[2][1]
    assert result["validation"]["sharpe"] == pytest.approx(result["validation"]["sharpe_mean"])


def test_folds_that_do_not_fit_are_one_line_before_any_training(tmp_path: Path) -> None:
    spec = wf_spec({"folds": 30, "validationBars": 100})
    with pytest.raises(DataError, match=r"too short for 30 folds of 100 validation bars") as e:
        train(spec, str(tmp_path / "run"), log=lambda _: None)
    assert "\n" not in str(e.value)
    assert not list((tmp_path / "run").glob("fold-*"))


def test_an_hpo_seed_reports_the_aggregate_and_prunes_across_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = wf_spec({"score": "lcb", "z": 0.5})
    spy = Spy(monkeypatch)
    seen: list[tuple[int, dict[str, Any]]] = []

    def on_eval(timesteps: int, metrics: dict[str, Any]) -> bool:
        seen.append((timesteps, metrics))
        return False

    out = RunStore(str(tmp_path / "seed"))
    result = walk_forward_seed(spec, out, TrialEvalCallback, on_eval, spy.log)
    wf = spec.evaluation.walk_forward
    assert wf is not None
    records = [read(tmp_path / "seed" / f"fold-{k}" / "fold.json") for k in range(3)]
    assert result["status"] == "succeeded" and result["timesteps"] == 1536
    assert result["validation"] == aggregate([r["validation"] for r in records], wf)

    # Pruning sees the run's summed timesteps, valued at the aggregate so far: the folds
    # before (their best models) and this evaluation.
    def so_far(k: int, evaluation: dict[str, Any]) -> dict[str, Any]:
        now = {m: v for m, v in evaluation.items() if m != "timesteps"}
        return aggregate([*(r["validation"] for r in records[:k]), now], wf)

    expected = [
        (512 * k + e["timesteps"], so_far(k, e))
        for k, record in enumerate(records)
        for e in record["evaluations"]
    ]
    assert [t for t, _ in seen] == [256, 512, 768, 1024, 1280, 1536]
    assert seen == expected
    assert (tmp_path / "seed" / "model.zip").read_bytes() == (
        tmp_path / "seed" / "fold-2" / "model.zip"
    ).read_bytes()
    assert "test" not in result and not any(r[0] == "test" for r in spy.resets)
    test_start = data_splits(load_market(spec.data, spec.env)[1], spec.data).test[0]
    assert max(b for _, _, _, b in spy.resets) < test_start

    # A pruner that stops at fold 2's first evaluation stops the seed there.
    def prune_in_fold_1(timesteps: int, _metrics: dict[str, Any]) -> bool:
        return timesteps > 512

    pruned = walk_forward_seed(spec, RunStore(str(tmp_path / "p")), TrialEvalCallback,
                               prune_in_fold_1, spy.log)  # fmt: skip
    assert pruned["status"] == "pruned" and len(pruned["validation_folds"]) == 2
    assert pruned["timesteps"] == 512 + 256 and not (tmp_path / "p" / "fold-2").exists()


def test_the_fold_gauges() -> None:
    metrics = TrainerMetrics("r", CollectorRegistry())
    base = {"timesteps": 5, "total_timesteps": 9, "fps": 1.0}
    metrics.update(base)
    registry = metrics.registry
    assert registry.get_sample_value("stevie_trainer_walk_forward_folds", {"run": "r"}) is None
    metrics.update(base | {"fold": {"index": 1, "count": 4}})
    assert registry.get_sample_value("stevie_trainer_walk_forward_fold", {"run": "r"}) == 1
    assert registry.get_sample_value("stevie_trainer_walk_forward_folds", {"run": "r"}) == 4
