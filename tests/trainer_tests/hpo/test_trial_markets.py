"""HPO trials of a template with several markets (data.markets), single split and
walk-forward: the objective is the pooled validation (over folds too), the stored
validation returns are the markets' series end to end, and no account steps a test bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from optuna.trial import TrialState

from stevie_api.hpo import HPOStudySpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.prepare import Prepared, prepare
from stevie_trainer.evaluation.performance import returns_from_equity
from stevie_trainer.hpo.luck import RETURNS_FILE, decode_returns
from stevie_trainer.hpo.study import ask_trials, objective_value, open_study
from stevie_trainer.hpo.trial import run_trial
from stevie_trainer.rl.agent import load_model, validation_episode
from stevie_trainer.rl.foldplan import plan_folds
from support.data import BUNDLED_DAILY, BUNDLED_HOURLY
from support.specs import template

MARKETS = [
    {"uri": BUNDLED_DAILY, "symbol": "GOOGL", "barsPerYear": 252},
    {"uri": BUNDLED_HOURLY, "symbol": "EURUSD"},
]
NAMES = ["GOOGL", "EURUSD"]


def study_spec(**run: Any) -> HPOStudySpec:
    doc = template(data={"markets": MARKETS}, env={"episodeLength": 100}, **run)
    return HPOStudySpec.model_validate(
        {
            "template": doc,
            "searchSpace": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
            "maxTrials": 1,
            "pruner": "none",
        }
    )


class BarSpy:
    """The last bar of every episode any account starts, by market (known by its length)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, parts: list[Prepared]) -> None:
        self.by_length = {p.market.n_bars: p.market.name for p in parts}
        self.ends: dict[str, list[int]] = {name: [] for name in self.by_length.values()}
        reset = Accounts.reset

        def spy(acc: Accounts, idx: Any, starts: Any, last: Any, out: Any = None) -> None:
            self.ends[self.by_length[len(acc.close)]].extend(int(e) for e in np.ravel(last))
            reset(acc, idx, starts, last, out)

        monkeypatch.setattr(Accounts, "reset", spy)

    def check(self, parts: list[Prepared]) -> None:
        for p in parts:
            ends = self.ends[p.market.name]
            assert len(ends) > 10 and max(ends) < p.splits.test[0], p.market.name


def run(spec: HPOStudySpec, tmp_path: Path) -> tuple[Any, Path]:
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "mm", journal)
    (asked,) = ask_trials(study, spec, 1, "mm")
    out = tmp_path / asked.name
    trial = run_trial(spec, "mm", journal, asked.number, str(out), log=lambda _: None)
    return trial, out


def replayed_returns(prepared: Prepared, model_zip: Path) -> npt.NDArray[np.float64]:
    """The stored model's validation returns on each market, in the spec's order, joined."""
    model = load_model(prepared.spec, model_zip.read_bytes())
    episodes = [validation_episode(part, model) for part in prepared.parts]
    return np.concatenate([returns_from_equity(e.equity) for e in episodes])


def read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_a_two_market_trial_optimises_the_pooled_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = study_spec(totalTimesteps=512, evaluation={"evalFreq": 256})
    parts = prepare(spec.template).parts
    bars = BarSpy(monkeypatch, parts)
    trial, out = run(spec, tmp_path)
    assert trial.state == TrialState.COMPLETE
    seed = out / "seed-0"
    result = read(seed / "result.json")
    assert list(result["validation_markets"]) == NAMES
    assert trial.values[0] == pytest.approx(objective_value(result["validation"], "sharpe"))
    sharpes = [result["validation_markets"][n]["sharpe"] for n in NAMES]
    if all(s is not None for s in sharpes):
        assert result["validation"]["sharpe"] == pytest.approx(float(np.mean(sharpes)))
    returns = decode_returns((seed / RETURNS_FILE).read_bytes())
    per_market = [result["validation_markets"][n]["bars"] for n in NAMES]
    assert len(returns) == sum(per_market) == result["validation"]["bars"]
    seed_spec = TrainingRunSpec.model_validate(read(seed / "spec.json"))
    np.testing.assert_array_equal(returns, replayed_returns(prepare(seed_spec), seed / "model.zip"))
    bars.check(parts)


def test_a_two_market_walk_forward_trial_stores_each_folds_pooled_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = study_spec(
        totalTimesteps=1024, evaluation={"evalFreq": 256, "walkForward": {"folds": 2}}
    )
    parts = prepare(spec.template).parts
    bars = BarSpy(monkeypatch, parts)
    trial, out = run(spec, tmp_path)
    assert trial.state == TrialState.COMPLETE
    seed = out / "seed-0"
    result = read(seed / "result.json")
    assert trial.values[0] == pytest.approx(objective_value(result["validation"], "sharpe"))
    seed_spec = TrainingRunSpec.model_validate(read(seed / "spec.json"))
    plan = plan_folds(seed_spec, RunStore(str(seed)))
    for fold, summary in zip(plan.folds, result["validation_folds"], strict=True):
        folder = seed / f"fold-{fold.index}"
        record = read(folder / "fold.json")
        assert list(record["validation_markets"]) == NAMES
        assert summary["validation_markets"] == record["validation_markets"]
        returns = decode_returns((folder / RETURNS_FILE).read_bytes())
        windows = [leg.fold.validation for leg in fold.legs]
        per_market = [record["validation_markets"][n]["bars"] for n in NAMES]
        assert len(returns) == sum(per_market) == record["validation"]["bars"]
        # One bar fewer than the window on each market: the first decision's fill.
        tradable = [leg.market.tradable(w, "v") for leg, w in zip(fold.legs, windows, strict=True)]
        assert per_market == [b - a for a, b in tradable]
        replay = replayed_returns(fold.prepare(seed_spec), folder / "model.zip")
        np.testing.assert_array_equal(returns, replay)
    assert set(result["validation_markets"]) == set(NAMES)
    bars.check(parts)
