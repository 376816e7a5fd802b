"""Walk-forward over several markets (data.markets + evaluation.walkForward) on tiny budgets:
each market is cut into the same folds on its own bars, a fold's agent trains on every
market's fold window without mixing them, selects on the pooled validation, and the test
splits wait for the final per-market and pooled report."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.data.folds import walk_forward_folds
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.multivec import MultiMarketVecEnv
from stevie_trainer.env.prepare import data_splits, load_market, market_specs
from stevie_trainer.evaluation.selection import selection_score
from stevie_trainer.rl import walkforward
from stevie_trainer.rl.agent import load_model, validation_performance
from stevie_trainer.rl.callbacks import CheckpointCallback
from stevie_trainer.rl.foldplan import plan_folds
from stevie_trainer.rl.session import training_env
from stevie_trainer.rl.train import test_markets as original_test_markets
from stevie_trainer.rl.train import train
from support.data import BUNDLED_DAILY, BUNDLED_HOURLY
from support.specs import template

MARKETS = [
    {"uri": BUNDLED_DAILY, "symbol": "GOOGL", "barsPerYear": 252},
    {"uri": BUNDLED_HOURLY, "symbol": "EURUSD"},
]
NAMES = ["GOOGL", "EURUSD"]


def wf_markets_spec(walk_forward: dict[str, Any], **overrides: Any) -> TrainingRunSpec:
    """2 markets x 2 folds x 1024 timesteps (four 256-step PPO rollouts), evaluated every 256."""
    doc = template(
        data={"markets": MARKETS},
        totalTimesteps=2048,
        checkpoint={"intervalSteps": 256},
        env={"episodeLength": 100},
        **overrides,
    )
    doc["evaluation"] = {"evalFreq": 256, "walkForward": {"folds": 2, **walk_forward}}
    return TrainingRunSpec.model_validate(doc)


def markets_of(spec: TrainingRunSpec) -> dict[str, Any]:
    """Each market's real data and single split, loaded independently of the trainer."""
    out = {}
    for data in market_specs(spec):
        _, market = load_market(data, spec.env)
        out[market.name] = (market, data_splits(market, data))
    return out


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_every_market_is_cut_on_its_own_bars_before_its_own_test_split() -> None:
    spec = wf_markets_spec({"folds": 3, "embargoBars": 7, "purgeBars": 12})
    plan = plan_folds(spec, RunStore("/tmp/unused-plan"))
    markets = markets_of(spec)
    assert [leg.market.name for leg in plan.folds[0].legs] == NAMES
    for m, name in enumerate(NAMES):
        _, splits = markets[name]
        expected = walk_forward_folds(splits, folds=3, purge=12, embargo=7)
        legs = [fold.legs[m] for fold in plan.folds]
        assert [leg.fold for leg in legs] == expected  # same scheme, cut by its own bars
        test_start = splits.test[0]
        for leg in legs:
            assert leg.splits.test == splits.test
            train, val = leg.fold.train, leg.fold.validation
            assert val[0] - train[1] >= 12  # purge between training and validation
            assert test_start - val[1] >= 12  # and between the last window and the test
            assert train[1] <= test_start and val[1] <= test_start
        for before, after in itertools.pairwise(legs):
            assert after.fold.validation[0] - before.fold.validation[1] >= 7  # embargo
    # Different markets, different lengths: the same fold is cut at different bars.
    assert plan.folds[0].legs[0].fold != plan.folds[0].legs[1].fold
    windows = plan.folds[1].windows()
    assert set(windows) == set(NAMES) and set(windows["EURUSD"]) == {"train", "validation"}


def test_a_folds_episodes_never_mix_two_markets_bars() -> None:
    """Fold k's training env: one block of environments per market, each stepping only its
    market's fold-k training window (never its validation window, never another market)."""
    spec = wf_markets_spec({}, nEnvs=5)
    plan = plan_folds(spec, RunStore("/tmp/unused-plan"))
    for fold in plan.folds:
        env = training_env(fold.prepare(spec))
        assert isinstance(env, MultiMarketVecEnv) and len(env.groups) == 2
        env.reset()
        rng = np.random.default_rng(fold.index)
        seen: list[set[int]] = [set(), set()]
        for _ in range(300):
            env.step(rng.integers(0, env.action_space.n, size=env.num_envs))  # type: ignore[attr-defined]
            for k, (group, leg) in enumerate(zip(env.groups, fold.legs, strict=True)):
                assert group.market.name == leg.market.name
                first, last = leg.market.tradable(leg.fold.train, "train")
                bars = group.accounts.t
                assert ((bars >= first) & (bars <= last)).all(), (fold.label, leg.market.name)
                seen[k].update(int(b) for b in bars)
        assert all(len(s) > 50 for s in seen)  # both markets traded


class Spy:
    """Every simulator account's (phase, market, accounts, first, last): the market is known
    by its number of bars, the phase from the "training on" lines and the test report."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, spec: TrainingRunSpec) -> None:
        self.by_length = {m.n_bars: name for name, (m, _) in markets_of(spec).items()}
        self.phase = "setup"
        self.resets: list[tuple[str, str, int, int, int]] = []
        reset = Accounts.reset

        def spy_reset(acc: Accounts, idx: Any, starts: Any, ends: Any, out: Any = None) -> None:
            market = self.by_length[len(acc.close)]
            for s, e in zip(np.ravel(starts), np.ravel(ends), strict=True):
                if (s, e) != (0, 0):
                    self.resets.append((self.phase, market, acc.n, int(s), int(e)))
            reset(acc, idx, starts, ends, out)

        def spy_tests(*args: Any, **kwargs: Any) -> Any:
            self.phase = "test"
            return original_test_markets(*args, **kwargs)

        monkeypatch.setattr(Accounts, "reset", spy_reset)
        monkeypatch.setattr(walkforward, "test_markets", spy_tests)

    def log(self, message: str) -> None:
        found = re.match(r"fold (\d+)/\d+: training on 2 markets", message)
        if found:
            self.phase = f"fold-{int(found.group(1)) - 1}"


def pooled_sharpe(per_market: dict[str, Any]) -> float | None:
    sharpes = [per_market[n]["sharpe"] for n in NAMES]
    return None if any(s is None for s in sharpes) else math.fsum(sharpes) / len(sharpes)


@pytest.mark.slow
def test_a_two_market_walk_forward_run_selects_on_pooled_folds_and_tests_each_market(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = wf_markets_spec({"score": "lcb"})
    spy = Spy(monkeypatch, spec)
    out = tmp_path / "run"
    result = train(spec, str(out), log=spy.log)
    markets = markets_of(spec)
    plan = plan_folds(spec, RunStore(str(out)))

    # Every fold trained on both markets' fold windows only and validated on both.
    for fold in plan.folds:
        mine = [r for r in spy.resets if r[0] == f"fold-{fold.index}"]
        for leg in fold.legs:
            name = leg.market.name
            training = [(a, b) for _, m, n, a, b in mine if m == name and n == 2]
            first, last = leg.market.tradable(leg.fold.train, "train")
            assert training and all(first <= a and b <= last for a, b in training)
            evaluations = {(a, b) for _, m, n, a, b in mine if m == name and n == 1}
            assert evaluations == {leg.market.tradable(leg.fold.validation, "validation")}
    # The test splits: untouched until the final report, which reads every market's.
    for name, (_, splits) in markets.items():
        before = [b for phase, m, _, _, b in spy.resets if m == name and phase != "test"]
        during = [a for phase, m, _, a, _ in spy.resets if m == name and phase == "test"]
        assert max(before) < splits.test[0] <= min(during)

    # Per fold: each market's validation, pooled into the fold's score (the mean of the
    # markets' Sharpes) by which the fold kept its best model; replaying that model agrees.
    records = [read(out / f"fold-{k}" / "fold.json") for k in range(2)]
    for fold, record, summary in zip(plan.folds, records, result["validation_folds"], strict=True):
        assert list(record["validation_markets"]) == NAMES
        assert summary["validation_markets"] == record["validation_markets"]
        assert set(summary["windows"]) == set(NAMES)
        pooled = pooled_sharpe(record["validation_markets"])
        assert record["validation"]["sharpe"] == (None if pooled is None else pytest.approx(pooled))
        assert record["validation"]["bars"] == sum(
            record["validation_markets"][n]["bars"] for n in NAMES
        )
        model = load_model(spec, (out / f"fold-{fold.index}" / "model.zip").read_bytes())
        replay, per_market = validation_performance(fold.prepare(spec), model)
        assert per_market == record["validation_markets"]
        best = [e["sharpe"] for e in record["evaluations"] if e["sharpe"] is not None]
        if best:
            assert replay.sharpe == pytest.approx(max(best))
    # The run's score: the aggregate (here lcb) over folds of those pooled scores.
    wf = spec.evaluation.walk_forward
    assert wf is not None
    fold_scores = [r["validation"]["sharpe"] or 0.0 for r in records]
    assert result["validation"]["sharpe"] == pytest.approx(selection_score(fold_scores, wf))
    assert set(result["validation_markets"]) == set(NAMES)

    # The test report: the last fold's model on each market, and pooled.
    assert (out / "model.zip").read_bytes() == (out / "fold-1" / "model.zip").read_bytes()
    assert list(result["test_markets"]) == NAMES
    for policy, block in result["test"].items():
        per = [result["test_markets"][n]["test"][policy] for n in NAMES]
        assert block["trades"] == sum(p["trades"] for p in per)
        assert block["bars"] == sum(p["bars"] for p in per)
    assert [m["name"] for m in result["data"]["markets"]] == NAMES
    assert result["timesteps"] == 2048 and [r["timesteps"] for r in records] == [1024, 1024]
    assert read(out / "result.json") == json.loads(json.dumps(result))


@pytest.mark.slow
def test_a_crash_in_fold_2_of_a_two_market_run_resumes_it_and_skips_fold_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = wf_markets_spec({})
    out = tmp_path / "run"
    save = CheckpointCallback.save

    def crash_in_fold_2(callback: CheckpointCallback) -> None:
        save(callback)
        if callback.store.out.endswith("fold-1") and callback.num_timesteps == 512:
            raise RuntimeError("pod killed")

    monkeypatch.setattr(CheckpointCallback, "save", crash_in_fold_2)
    with pytest.raises(RuntimeError, match="pod killed"):
        train(spec, str(out), log=lambda _: None)
    assert not (out / "result.json").exists() and not (out / "fold-1" / "fold.json").exists()
    fold_1 = (out / "fold-0" / "fold.json").read_text()
    monkeypatch.setattr(CheckpointCallback, "save", save)

    lines: list[str] = []
    result = train(spec, str(out), log=lines.append)
    assert "fold 1/2: already trained (1,024 timesteps)" in lines
    resumed = lines.index("resuming from checkpoint at 512 timesteps")
    assert lines[resumed - 1].startswith("fold 2/2: training on 2 markets")
    assert (out / "fold-0" / "fold.json").read_text() == fold_1  # not trained again
    record = read(out / "fold-1" / "fold.json")
    assert record["resumed_from"] == [512] and list(record["validation_markets"]) == NAMES
    assert result["resumed_from"] == [1024 + 512]
    assert result["timesteps"] == 2048 and list(result["test_markets"]) == NAMES
