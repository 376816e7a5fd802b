"""An HPO trial whose template asks for walk-forward: its objective is each seed's score
over folds (the aggregate a TrainingRun reports), and no account steps a test bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.trial import TrialState

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.prepare import data_splits, load_market
from stevie_trainer.evaluation.selection import aggregate
from stevie_trainer.hpo.study import ask_trials, open_study
from stevie_trainer.hpo.trial import run_trial
from support.specs import template


def test_a_walk_forward_trial_optimises_the_score_over_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = template(totalTimesteps=1536, evaluation={"evalFreq": 512})
    run["evaluation"]["walkForward"] = {"folds": 3, "score": "lcb"}
    spec = HPOStudySpec.model_validate(
        {
            "template": run,
            "searchSpace": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
            "maxTrials": 1,
            "seedsPerTrial": 2,
            "pruner": "none",
        }
    )
    ends: list[int] = []
    reset = Accounts.reset

    def spy(acc: Accounts, idx: Any, starts: Any, last: Any, out: Any = None) -> None:
        ends.extend(int(e) for e in np.ravel(last))
        reset(acc, idx, starts, last, out)

    monkeypatch.setattr(Accounts, "reset", spy)
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "wf", journal)
    (asked,) = ask_trials(study, spec, 1, "wf")
    out = tmp_path / asked.name
    trial = run_trial(spec, "wf", journal, asked.number, str(out), log=lambda _: None)

    assert trial.state == TrialState.COMPLETE
    wf = spec.template.evaluation.walk_forward
    assert wf is not None
    scores = []
    for k in (0, 1):
        seed = out / f"seed-{k}"
        folds = [json.loads((seed / f"fold-{f}" / "fold.json").read_text()) for f in range(3)]
        result = json.loads((seed / "result.json").read_text())
        assert result["validation"] == aggregate([f["validation"] for f in folds], wf)
        assert (seed / "model.zip").read_bytes() == (seed / "fold-2" / "model.zip").read_bytes()
        scores.append(result["validation"]["sharpe"])
    assert trial.values[0] == pytest.approx(sum(scores) / 2)
    # One report per fold evaluation, on the seed's timesteps summed over its folds.
    assert sorted(trial.intermediate_values) == [512, 1024, 1536, 2048, 2560, 3072]
    assert trial.user_attrs["timesteps_done"] == 2 * 1536
    _, market = load_market(spec.template.data, spec.template.env)
    assert max(ends) < data_splits(market, spec.template.data).test[0]
