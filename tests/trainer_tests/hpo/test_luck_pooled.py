"""Walk-forward luck and the seed spread, from synthetic trials' stored files.

Each trial of a tiny in-memory Optuna study points (``user_attrs["out"]``) at a folder with
trial.json and ``seed-<k>/fold-<j>/validation_returns.npy``, as the trial worker leaves
them. overfitting.json must equal the pure functions of
:mod:`stevie_trainer.evaluation.overfitting` applied here, by hand, to the pooled series
(each seed's folds concatenated, averaged over seeds per bar).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from scipy import stats

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.evaluation.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from stevie_trainer.hpo.luck import RETURNS_FILE, encode_returns, overfitting_document
from stevie_trainer.hpo.report import report_text, results_document
from support.specs import template

F64 = np.ndarray[Any, np.dtype[np.float64]]
FOLD_BARS = (40, 50, 60)  # each fold's validation window: 150 pooled bars
Seed = list[F64 | None]  # one series per fold; None: the fold left no returns


def spec_of(folds: int | None = len(FOLD_BARS), seeds: int = 2) -> HPOStudySpec:
    evaluation: dict[str, Any] = {"evalFreq": 512}
    if folds:
        evaluation["walkForward"] = {"folds": folds}
    return HPOStudySpec.model_validate(
        {
            "template": template(evaluation=evaluation),
            "searchSpace": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}},
            "seedsPerTrial": seeds,
            "pruner": "none",
        }
    )


def series(rng: np.random.Generator, drift: float) -> Seed:
    """One seed's fold returns: fat-tailed, so skew and kurtosis are not the normal's."""
    return [drift + 0.01 * rng.standard_t(4, size=n) for n in FOLD_BARS]


def add_trial(
    study: optuna.Study,
    root: Path,
    value: float | None,
    seeds: list[Seed],
    *,
    sharpes: list[float] | None = None,
    pruned: tuple[int, ...] = (),
) -> int:
    """Store a trial's files under root and add it to the study; returns its number."""
    number = len(study.trials)
    out = root / f"t{number}"
    docs = []
    for k, folds in enumerate(seeds):
        seed_dir = out / f"seed-{k}"
        for j, returns in enumerate(folds):
            if returns is not None:
                (seed_dir / f"fold-{j}").mkdir(parents=True)
                (seed_dir / f"fold-{j}" / RETURNS_FILE).write_bytes(encode_returns(returns))
        sharpe = sharpes[k] if sharpes else 1.0  # the folds' aggregate: not what DSR uses
        validation = {"sharpe": sharpe, "bars_per_year": 252.0, "bars": 50}
        docs.append({"seed": k, "out": str(seed_dir), "pruned": k in pruned,
                     "validation": validation})  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "trial.json").write_text(json.dumps({"seeds": docs, "values": [value]}))
    study.add_trial(
        create_trial(
            params={"learning_rate": 1e-3},
            distributions={"learning_rate": FloatDistribution(1e-4, 1e-2)},
            value=value,
            state=TrialState.COMPLETE if value is not None else TrialState.PRUNED,
            intermediate_values={512: value if value is not None else 0.0},
            user_attrs={"out": str(out)},
        )
    )
    return number


def pooled(seeds: list[Seed]) -> F64:
    """By hand: each seed's folds concatenated, then the mean over seeds per bar."""
    each = [np.concatenate([f for f in folds if f is not None]) for folds in seeds]
    mean: F64 = np.mean(each, axis=0)
    return mean


def walk_forward_study(tmp_path: Path) -> tuple[optuna.Study, dict[int, list[Seed]]]:
    """Four trials with every fold (trial 1 the best by value), one that never traded
    (constant zero returns), one pruned before its last fold."""
    rng = np.random.default_rng(7)
    study = optuna.create_study(direction="maximize")
    stored: dict[int, list[Seed]] = {}
    for value, drift in ((0.3, 0.0005), (0.9, 0.002), (0.5, -0.001), (0.1, 0.001)):
        seeds = [series(rng, drift), series(rng, drift)]
        stored[add_trial(study, tmp_path, value, seeds)] = seeds
    flat: list[Seed] = [[np.zeros(n) for n in FOLD_BARS]] * 2
    stored[add_trial(study, tmp_path, 0.0, flat)] = flat
    cut: list[Seed] = [[*series(rng, 0.003)[:2], None]]
    add_trial(study, tmp_path, None, cut, pruned=(0,))
    return study, stored


def test_walk_forward_dsr_and_pbo_are_those_of_the_pooled_fold_returns(tmp_path: Path) -> None:
    study, stored = walk_forward_study(tmp_path)
    doc = overfitting_document(study, spec_of())
    json.dumps(doc, allow_nan=False)

    series_of = {n: pooled(seeds) for n, seeds in stored.items()}
    traded = {n: r for n, r in series_of.items() if np.std(r) > 0}
    sharpes = {n: float(np.mean(r) / np.std(r, ddof=1)) for n, r in traded.items()}
    assert doc["trials"] == 6  # N: every trial tried, the pruned and the flat one too
    assert doc["best_trial"] == 1
    assert doc["trials_with_sharpe"] == 4 and doc["trials_with_returns"] == 5
    expected = deflated_sharpe_ratio(
        sharpes[1],
        sum(FOLD_BARS),
        n_trials=6,
        trials_sr_variance=float(np.var(list(sharpes.values()), ddof=1)),
        skew=float(stats.skew(series_of[1])),
        kurtosis=float(stats.kurtosis(series_of[1], fisher=False)),
    )
    dsr = doc["deflated_sharpe"]
    assert dsr["trial"] == 1 and dsr["n_obs"] == 150 and dsr["n_trials"] == 6
    for key, value in expected.to_dict().items():
        assert dsr[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert abs(dsr["kurtosis"] - 3.0) > 0.1  # measured, not the normal's
    pbo = probability_of_backtest_overfitting(
        np.column_stack([series_of[n] for n in sorted(series_of)]), submatrices=16
    )
    assert doc["pbo"]["trials"] == [0, 1, 2, 3, 4] and doc["pbo"]["bars"] == 150
    assert doc["pbo"]["pbo"] == pbo.pbo and doc["pbo"]["n_combinations"] == pbo.n_combinations
    dsr_note, pbo_note, *left_out = doc["notes"]
    assert "pooled fold validation returns" in dsr_note and "mean Sharpe" in dsr_note
    assert pbo_note == "PBO over 5 trials x 150 pooled fold validation bars"
    assert left_out[0].startswith("trial 4 left out of the variance: ")  # constant: no Sharpe
    assert left_out[1] == (
        "trial 5 left out of the variance and PBO: seed-0/fold-2 left no validation_returns.npy"
    )


def test_a_best_trial_missing_a_fold_has_no_dsr_and_says_which(tmp_path: Path) -> None:
    # Decided: no normal-moments fallback. The pooled DSR's Sharpe is the pooled series'
    # own; without every fold there is no such Sharpe to deflate.
    study, _ = walk_forward_study(tmp_path)
    (tmp_path / "t1" / "seed-1" / "fold-2" / RETURNS_FILE).unlink()
    doc = overfitting_document(study, spec_of())
    assert doc["deflated_sharpe"] is None
    assert doc["notes"][0] == (
        "DSR not computed: best trial 1 has no pooled per-bar Sharpe: seed-1/fold-2 left no "
        "validation_returns.npy"
    )
    assert doc["pbo"]["trials"] == [0, 2, 3, 4]  # the others still have a PBO


def test_seed_spread_of_three_seeds_and_none_for_one(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    rng = np.random.default_rng(0)
    three = [series(rng, 0.001) for _ in range(3)]
    add_trial(study, tmp_path, 0.84, three, sharpes=[0.52, 0.8, 1.2])
    add_trial(study, tmp_path, 0.4, three[:1], sharpes=[0.4])
    # A seed the pruner stopped is left out: its Sharpe is a partly trained model's.
    add_trial(study, tmp_path, 0.3, three[:2], sharpes=[0.3, 2.0], pruned=(1,))
    spec = spec_of(seeds=3)
    results = results_document(study, spec, "wf")
    spread = results["trials"][0]["seed_spread"]
    assert spread["seeds"] == 3 and spread["sharpes"] == [0.52, 0.8, 1.2]
    assert spread["mean"] == pytest.approx(0.84)
    assert spread["std"] == pytest.approx(float(np.std([0.52, 0.8, 1.2], ddof=1)))
    assert spread["std"] == pytest.approx(0.341760, abs=1e-6)
    assert (spread["min"], spread["max"]) == (0.52, 1.2)
    assert results["best_seed_spread"] == spread
    for record in results["trials"][1:]:  # one seed: no spread (null, not 0)
        assert record["seed_spread"] == {
            "seeds": 1, "sharpes": [record["values"][0]], "mean": record["values"][0],
            "std": None, "min": None, "max": None,
        }  # fmt: skip
    text = report_text(results)
    assert "best trial 0: validation Sharpe 0.84 mean over 3 seeds, std 0.34, range 0.52..1.20" in (
        text
    )
    luck = overfitting_document(study, spec)
    assert luck["seed_spread"] == {"trial": 0, **spread}


def test_one_seed_best_trial_reports_no_spread(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    add_trial(study, tmp_path, 0.7, [[None]], sharpes=[0.7])
    study.add_trial(create_trial(value=0.1, params={}, distributions={}))  # left no folder
    spec = spec_of(folds=None, seeds=1)
    results = results_document(study, spec, "s")
    assert results["trials"][1]["seed_spread"] is None
    assert "best trial 0: validation Sharpe 0.70 from 1 seed (no spread)" in report_text(results)
    assert overfitting_document(study, spec)["seed_spread"]["std"] is None
