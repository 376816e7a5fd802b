"""One arm of bench/robust_selection.py: an HPO study on one market, its selection, its test.

The study runs as a cluster runs it (trials asked by the controller's ``ask_trials``, each
trained by the trial worker's ``run_trial`` in a forked process, ``--workers`` at a time)
but in-process, so the bench needs no operator. Selection reads validation only (the
study's best trial); the test split is then touched once, by backtesting that trial's
model beside buy-and-hold and the expert (``test_backtest``, a TrainingRun's test report).

The luck of each selection: the study's own Deflated Sharpe Ratio (``overfitting_document``,
what the HPO finish writes) for both arms; for walk-forward studies the package computes it
over each trial's pooled fold validation returns (each fold's best model on its own window,
concatenated in fold order, see :mod:`stevie_trainer.hpo.luck`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from bench.hpo_efficiency import SEARCH_SPACE
from stevie_api.hpo import HPOStudySpec

COST_SPACE: dict[str, Any] = {
    "env.minHoldBars": {"type": "int", "low": 0, "high": 16},
    "env.turnoverPenalty": {"type": "float", "low": 0.0, "high": 0.002},
}
"""Issue 13's cost-aware acting rules, searched beside the PPO space: a minimum holding
period and a reward-only turnover penalty (0.002 = 20 bps felt on every trade). The
no-trade band is left out: with the default short/flat/long targets every order moves the
weight by at least 1, so any band below 1 changes nothing but rebalancing."""


def study_doc(
    uri: str | list[dict[str, str]], *, steps: int, trials: int, seed: int, sampler: str,
    episode: int, walk_forward: dict[str, Any] | None, n_envs: int = 8,
) -> dict[str, Any]:  # fmt: skip
    """The HPOStudy spec of one arm. Every arm shares everything but ``walkForward`` and
    the data (``uri``: one market; a list: ``data.markets``, with ``n_envs`` environments
    shared among them); no pruner, so every trial trains its full budget (walk-forward
    splits it over the folds). evalFreq gives each agent (the run's, or each fold's) up to
    8 evaluations."""
    folds = int(walk_forward["folds"]) if walk_forward else 1
    # At least one rollout (nEnvs 8 x nSteps <= 512) before the first evaluation, so no arm
    # can pick the untrained initial policy (the same in every trial, seeds being equal).
    evaluation: dict[str, Any] = {"evalFreq": max(512 * n_envs, steps // folds // 8)}
    if walk_forward:
        evaluation["walkForward"] = walk_forward
    return {
        "template": {
            "data": {"uri": uri} if isinstance(uri, str) else {"markets": uri},
            "env": {"episodeLength": episode},
            "ppo": {"nSteps": 256, "batchSize": 256, "nEpochs": 4},
            "policy": {"netArch": [64, 64]},
            "totalTimesteps": steps,
            "nEnvs": n_envs,
            "seed": seed,
            "evaluation": evaluation,
        },
        "searchSpace": SEARCH_SPACE | COST_SPACE,
        "sampler": sampler,
        "pruner": "none",
        "startupTrials": min(trials, 5),
        "maxTrials": trials,
        "seedsPerTrial": 1,
        "maxFailedTrials": trials,
    }


def _trial(job: tuple[dict[str, Any], str, str, int, str]) -> str | None:
    """Forked worker: one trial (run_trial tells the study); its error, else None."""
    doc, name, storage, number, out = job
    import torch

    from stevie_trainer.hpo.trial import run_trial

    torch.set_num_threads(1)  # two trials on two cores
    Path(out).mkdir(parents=True, exist_ok=True)
    with Path(f"{out}.log").open("a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 2)  # SB3/torch warnings and progress go to the trial's log

        def say(message: str) -> None:
            log.write(message + "\n")
            log.flush()

        try:
            run_trial(HPOStudySpec.model_validate(doc), name, storage, number, out, log=say)
        except Exception as exc:  # the study has it as FAIL; the bench reports it
            return f"trial {number}: {type(exc).__name__}: {exc}"
    return None


def run_study(root: Path, name: str, doc: dict[str, Any], workers: int) -> dict[str, Any]:
    """Ask ``workers`` trials at a time (TPE sees the finished ones, as with parallelism =
    workers) until maxTrials are finished; then the selection and its test report."""
    import stevie_trainer.hpo.trial  # noqa: F401  (torch & co. once, before the forks)
    from stevie_trainer.hpo.study import ask_trials, open_study, storage_location

    spec = HPOStudySpec.model_validate(doc)
    study_dir = root / name
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / "study.json").write_text(json.dumps({"spec": doc}, indent=2))
    storage = storage_location(spec, str(study_dir))
    study = open_study(spec, name, storage)
    errors: list[str] = []
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        while (todo := spec.max_trials - len(study.get_trials(deepcopy=False))) > 0:
            asked = ask_trials(study, spec, min(workers, todo), name)
            jobs = [(doc, name, storage, a.number, str(study_dir / a.name)) for a in asked]
            errors += [e for e in pool.map(_trial, jobs, chunksize=1) if e]
    seconds = time.monotonic() - started
    return select_and_test(spec, study, study_dir) | {
        "seconds": round(seconds, 1),
        "errors": errors,
    }


def select_and_test(spec: HPOStudySpec, study: Any, study_dir: Path) -> dict[str, Any]:
    """The best trial by validation, its DSR, and its model's one test report."""
    from optuna.trial import TrialState

    from stevie_trainer.common.artifacts import RunStore
    from stevie_trainer.env.prepare import prepare
    from stevie_trainer.hpo.luck import overfitting_document
    from stevie_trainer.hpo.study import best_trials, seed_spec, trial_spec
    from stevie_trainer.rl.agent import load_model
    from stevie_trainer.rl.train import test_backtest, test_markets

    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): n for s in TrialState if (n := sum(t.state == s for t in trials))}
    # What was trained, not the budget: PPO trains whole rollouts (nSteps x nEnvs), so a
    # budget per agent below one rollout is rounded up, more often with K folds.
    counts["timesteps"] = sum(int(t.user_attrs.get("timesteps_done", 0)) for t in trials)
    ranked = best_trials(study)
    if not ranked:
        return {"trials": counts, "best": None, "dsr": None, "dsr_note": "no completed trial"}
    best = ranked[0]
    run_spec = seed_spec(trial_spec(spec, dict(best.params))[0], 0)
    seed_dir = Path(best.user_attrs["out"]) / "seed-0"
    model = load_model(run_spec, (seed_dir / "model.zip").read_bytes())
    prepared = prepare(run_spec)  # the same test split for every arm (data.split's)
    store = RunStore(str(study_dir))
    markets: dict[str, Any] = {}
    if prepared.parts:  # data.markets: each market's own test report, and the pooled one
        report, markets = test_markets(prepared, model, store)
    else:
        report = test_backtest(prepared, model, store, plot="test_equity.png")
    bars_per_year = report["annualisation"]["bars_per_year"]
    luck = overfitting_document(study, spec)
    dsr, note = luck["deflated_sharpe"], "; ".join(luck["notes"])
    result = json.loads((seed_dir / "result.json").read_text())
    return {
        "trials": counts,
        "best": {"trial": best.number, "params": dict(best.params), "out": str(seed_dir)},
        "validation": result.get("validation"),
        "validation_folds": [
            (f.get("validation") or {}).get("sharpe") for f in result.get("validation_folds", [])
        ],
        "test": report["test"],
        "test_period": report["test_period"],
        "bars_per_year": bars_per_year,
        "dsr": dsr,
        "dsr_note": note,
        "test_markets": {
            name: {k: m[k] for k in ("test", "test_period", "annualisation")}
            for name, m in markets.items()
        },
    }
