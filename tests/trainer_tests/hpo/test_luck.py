"""How much is luck: the finish Job's DSR and PBO, from what real trials stored.

Three tiny real trials store their best models' per-bar validation returns; the finish
Job's overfitting.json must equal the pure functions of
:mod:`stevie_trainer.evaluation.overfitting` applied here, independently, to those files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.evaluation.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from stevie_trainer.hpo.finish import finish_study
from stevie_trainer.hpo.study import ask_trials, open_study
from stevie_trainer.hpo.trial import run_trial
from support.specs import template


def spec_of(**overrides: Any) -> HPOStudySpec:
    doc: dict[str, Any] = {
        "template": template(),
        "searchSpace": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "maxTrials": 3,
        "pruner": "none",
        "significance": {"enabled": False},
    }
    return HPOStudySpec.model_validate(doc | overrides)


def quiet(_: str) -> None:
    pass


def stored(out: Path) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """A seed's stored returns, and its result.json validation metrics."""
    returns = np.load(out / "validation_returns.npy", allow_pickle=False)
    return returns, json.loads((out / "result.json").read_text())["validation"]


def test_dsr_and_pbo_are_those_of_the_stored_returns(tmp_path: Path) -> None:
    spec = spec_of()
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "s", journal)
    outs = {}
    for asked in ask_trials(study, spec, 3, "s"):
        outs[asked.number] = tmp_path / asked.name
        run_trial(spec, "s", journal, asked.number, str(outs[asked.number]), log=quiet)
    finish_study(spec, "s", journal, str(tmp_path / "report"), log=quiet)
    doc = json.loads((tmp_path / "report" / "overfitting.json").read_text())

    returns, sharpes, bars = {}, {}, {}
    for number, out in outs.items():
        r, validation = stored(out / "seed-0")
        bpy = validation["bars_per_year"]
        # The file is the kept model's validation pass: its Sharpe is the one reported.
        per_bar = float(np.mean(r) / np.std(r, ddof=1))
        assert per_bar * math.sqrt(bpy) == pytest.approx(validation["sharpe"], rel=1e-9)
        assert r.size == validation["bars"]
        returns[number], sharpes[number], bars[number] = (
            r,
            validation["sharpe"] / math.sqrt(bpy),
            r.size,
        )
    best = doc["best_trial"]
    assert doc["trials"] == 3 and doc["trials_with_returns"] == 3
    expected = deflated_sharpe_ratio(
        sharpes[best],
        bars[best],
        n_trials=3,
        trials_sr_variance=float(np.var(list(sharpes.values()), ddof=1)),
        skew=float(stats.skew(returns[best])),
        kurtosis=float(stats.kurtosis(returns[best], fisher=False)),
    )
    dsr = doc["deflated_sharpe"]
    assert dsr["trial"] == best
    for key, value in expected.to_dict().items():
        assert dsr[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    pbo = probability_of_backtest_overfitting(
        np.column_stack([returns[n] for n in sorted(returns)]), submatrices=16
    )
    assert doc["pbo"]["pbo"] == pbo.pbo and doc["pbo"]["n_combinations"] == pbo.n_combinations
    assert doc["pbo"]["trials"] == sorted(returns)
    # The same section is in the results document and the human report.
    results = json.loads((tmp_path / "report" / "optimization_results.json").read_text())
    assert results["overfitting"] == doc
    text = (tmp_path / "report" / "optimization_report.txt").read_text()
    assert f"DSR {expected.dsr:.3f}" in text and f"PBO {pbo.pbo:.2f}" in text


def test_one_trial_is_not_deflated_and_has_no_pbo(tmp_path: Path) -> None:
    spec = spec_of()
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "s", journal)
    (asked,) = ask_trials(study, spec, 1, "s")
    study.tell(asked.number, 0.7)  # a trial that left no folder: nothing stored either
    finish_study(spec, "s", journal, str(tmp_path / "report"), log=quiet)
    doc = json.loads((tmp_path / "report" / "overfitting.json").read_text())
    assert doc["deflated_sharpe"] is None and doc["pbo"] is None
    dsr_note, pbo_note = doc["notes"]
    assert dsr_note.startswith("DSR not computed: 1 trial(s) tried")
    assert pbo_note.startswith("PBO not computed: 0 trial(s) stored")
    text = (tmp_path / "report" / "optimization_report.txt").read_text()
    assert "DSR not computed" in text and "PBO not computed" in text


def test_walk_forward_trials_without_fold_returns_are_not_deflated(tmp_path: Path) -> None:
    # Trials that left no folder (no trial.json, no fold returns): they count as tried, but
    # there is no pooled series to deflate or to run CSCV over (the pooled case with stored
    # fold returns is tests/trainer_tests/hpo/test_luck_pooled.py).
    spec = spec_of(template=template(evaluation={"evalFreq": 512, "walkForward": {"folds": 2}}))
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "s", journal)
    for asked in ask_trials(study, spec, 2, "s"):
        study.tell(asked.number, 0.1 * asked.number)
    finish_study(spec, "s", journal, str(tmp_path / "report"), log=quiet)
    doc = json.loads((tmp_path / "report" / "overfitting.json").read_text())
    assert doc["deflated_sharpe"] is None and doc["pbo"] is None
    assert doc["trials"] == 2 and "walk-forward" in doc["validation"]
    dsr_note, pbo_note, *left_out = doc["notes"]
    assert dsr_note.startswith("DSR not computed: 2 trial(s) tried, 0 with a pooled per-bar")
    assert pbo_note.startswith("PBO not computed: 0 trial(s) stored per-bar pooled fold")
    assert left_out == [f"trial {n} left out of the variance and PBO: it left no trial.json"
                        for n in (0, 1)]  # fmt: skip


def test_real_walk_forward_trials_are_deflated_over_their_pooled_fold_returns(
    tmp_path: Path,
) -> None:
    # The files where the trial worker really leaves them (seed-0/fold-<j>/), read back.
    wf_template = template(evaluation={"evalFreq": 512, "walkForward": {"folds": 2}})
    spec = spec_of(template=wf_template, maxTrials=2)
    journal = str(tmp_path / "optuna.journal")
    study = open_study(spec, "s", journal)
    pooled = {}
    for asked in ask_trials(study, spec, 2, "s"):
        out = tmp_path / asked.name
        run_trial(spec, "s", journal, asked.number, str(out), log=quiet)
        folds = [np.load(out / "seed-0" / f"fold-{j}" / "validation_returns.npy") for j in (0, 1)]
        pooled[asked.number] = np.concatenate(folds)
    finish_study(spec, "s", journal, str(tmp_path / "report"), log=quiet)
    doc = json.loads((tmp_path / "report" / "overfitting.json").read_text())
    best = doc["best_trial"]
    sharpes = {n: float(np.mean(r) / np.std(r, ddof=1)) for n, r in pooled.items()}
    dsr = doc["deflated_sharpe"]
    assert dsr["n_obs"] == pooled[best].size and dsr["n_trials"] == 2
    assert dsr["sharpe"] == pytest.approx(sharpes[best], rel=1e-9)
    variance = float(np.var(list(sharpes.values()), ddof=1))
    assert dsr["trials_sr_variance"] == pytest.approx(variance, rel=1e-9)
    assert doc["pbo"]["trials"] == [0, 1] and doc["pbo"]["bars"] == pooled[best].size
