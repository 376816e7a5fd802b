"""The arms of bench/three_claims.py on one market, each selected by validation only and
touched on the test split once, at the end.

1. default: a TrainingRun whose spec gives only ``data`` (every other field at its default:
   PPO, totalTimesteps 100,000 unless ``--default-steps``); ``train`` writes its test report
   (the agent beside buy-and-hold, the expert and random: ``test_backtest``).
2. HPO best: an HPOStudy over hpo_efficiency's SEARCH_SPACE, run in-process with forked
   trial workers (``bench._robust_study.run_study``); the best trial by validation is
   backtested once on test there. Its top-k trials (validation order) feed the ensemble.
3. PBT best: a PBTPopulation run by ``stevie run``'s runner (forked interval processes);
   ``pbt-finish`` picks the best checkpoint by validation fitness and tests it once.
4. ensemble: the HPO top-k and the PBT best voting as an Ensemble (the package's members,
   weights and voting): static weights from each member's validation Sharpe
   (performance_weighted's weightMetric), the voting method with the best validation
   Sharpe; then one test pass of that ensemble in its own simulator.

The super-training arms share one template: the default spec but for ``totalTimesteps``
(``--steps`` per trial or member), ``evaluation.evalFreq`` and ``ppo.nSteps``/``batchSize``
256 (so a PBT interval of a few thousand steps is whole rollouts; HPO samples both).
Every arm keeps the default env (costs, positions, no-trade band), so one simulator and
one test split serve all rows.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench._robust_study import COST_SPACE, run_study
from bench.hpo_efficiency import SEARCH_SPACE
from stevie_api import API_VERSION

Log = Callable[[str], None]
ROLLOUT_STEPS = 256  # ppo.nSteps of the super-training template (x nEnvs 8 = 2,048 a rollout)


def _file_log(path: Path) -> Log:
    def say(message: str) -> None:
        with path.open("a", encoding="utf-8") as log:
            log.write(message + "\n")

    return say


# --- 1. the default TrainingRun --------------------------------------------------------


def default_doc(uri: str, steps: int | None, seed: int) -> dict[str, Any]:
    """A TrainingRun spec with only data given (``totalTimesteps`` and ``seed`` only when
    the bench is told to override them)."""
    doc: dict[str, Any] = {"data": {"uri": uri}}
    if steps is not None:
        doc["totalTimesteps"] = steps
    if seed:
        doc["seed"] = seed
    return doc


def _train_default(job: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Forked worker: one default TrainingRun (resumable: a finished run is returned)."""
    out, doc = job
    import torch

    from stevie_api.training import TrainingRunSpec
    from stevie_trainer.rl.train import train

    torch.set_num_threads(1)
    Path(out).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Path(f"{out}.log").open("a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 2)  # SB3/torch warnings go to the run's log

        def say(message: str) -> None:
            log.write(message + "\n")
            log.flush()

        try:
            result = train(TrainingRunSpec.model_validate(doc), out, log=say)
        except Exception as exc:  # the bench reports it; the other arms go on
            return {"error": f"default TrainingRun: {type(exc).__name__}: {exc}"}
    return {
        "spec": doc,
        "out": out,
        "timesteps": result.get("timesteps"),
        "validation": result.get("validation"),
        "test": result["test"],
        "test_period": result["test_period"],
        "seconds": round(time.monotonic() - started, 1),
    }


def train_defaults(jobs: list[tuple[str, dict[str, Any]]], workers: int) -> list[dict[str, Any]]:
    """Every market's default run, ``workers`` at a time (forked, one torch thread each)."""
    import stevie_trainer.rl.train  # noqa: F401  (torch & co. once, before the forks)

    with multiprocessing.get_context("fork").Pool(max(1, min(workers, len(jobs)))) as pool:
        return pool.map(_train_default, jobs, chunksize=1)


# --- 2. the HPO study --------------------------------------------------------------------


def template(uri: str, steps: int, seed: int) -> dict[str, Any]:
    """The super-training arms' TrainingRun template (see the module docstring)."""
    return {
        "data": {"uri": uri},
        "ppo": {"nSteps": ROLLOUT_STEPS, "batchSize": ROLLOUT_STEPS},
        "totalTimesteps": steps,
        "seed": seed,
        # at least one rollout (nSteps <= 512 x 8 envs) before the first evaluation
        "evaluation": {"evalFreq": max(4096, steps // 8)},
    }


def hpo_doc(uri: str, *, steps: int, trials: int, seed: int) -> dict[str, Any]:
    """The HPOStudy spec: TPE over SEARCH_SPACE and the cost-aware rules (COST_SPACE, as
    robust_selection searches), no pruner (every trial trains its budget)."""
    return {
        "template": template(uri, steps, seed),
        "searchSpace": SEARCH_SPACE | COST_SPACE,
        "sampler": "tpe",
        "pruner": "none",
        "startupTrials": min(trials, 5),
        "maxTrials": trials,
        "seedsPerTrial": 1,
        "maxFailedTrials": trials,
    }


def run_hpo(root: Path, doc: dict[str, Any], workers: int, top: int) -> dict[str, Any]:
    """The study (its best trial tested once by run_study), and its ``top`` trials by
    validation: the ensemble's HPO members."""
    from stevie_api.hpo import HPOStudySpec
    from stevie_trainer.hpo.study import best_trials, open_study, storage_location

    result = run_study(root, "hpo", doc, workers)
    spec = HPOStudySpec.model_validate(doc)
    study = open_study(spec, "hpo", storage_location(spec, str(root / "hpo")))
    result["top"] = [
        {
            "trial": t.number,
            "validation_sharpe": t.values[0],
            "out": str(Path(t.user_attrs["out"]) / "seed-0"),
        }
        for t in best_trials(study)[:top]
    ]
    return result


# --- 3. the PBT population ---------------------------------------------------------------


def pbt_resource(
    name: str, uri: str, *, members: int, intervals: int, steps: int, seed: int, workers: int
) -> dict[str, Any]:
    """A PBTPopulation: ``steps`` per member over ``intervals`` intervals; the default
    hyperparameter mutations (PPO: learning_rate, ent_coef, clip_range, gamma) and fitness."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PBTPopulation",
        "metadata": {"name": name},
        "spec": {
            "template": template(uri, steps, seed),
            "populationSize": members,
            "perturbationInterval": max(1, steps // intervals),
            "stopping": {"maxIntervals": intervals},
            "parallelism": workers,
        },
    }


def run_pbt(root: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """The population through ``stevie run``'s runner; its summary's best member (chosen by
    validation fitness, tested once by pbt-finish)."""
    from stevie_api.pbt import PBTPopulation
    from stevie_operator.local.runner import run_resources
    from stevie_operator.registry import KINDS
    from stevie_trainer.common import storage

    started = time.monotonic()
    resource = PBTPopulation.model_validate(doc)
    say = _file_log(root.with_suffix(".log"))
    (found,) = run_resources([resource], root, KINDS, say=say, stream=False)
    status = found.get("status") or {}
    if status.get("phase") != "Succeeded" or not status.get("summaryUri"):
        return {"error": f"PBT: {status.get('phase')}: {status.get('message')}"}
    summary = json.loads(storage.read_text(status["summaryUri"]))
    best = summary["best"]
    return {
        "summary_uri": status["summaryUri"],
        "best": {k: best[k] for k in ("member", "interval", "fitness", "hyperparameters")},
        "validation": best.get("validation"),
        "test": best["test"],
        "test_period": best["test_period"],
        "exploits": summary.get("exploits"),
        "timesteps": sum(int(r.get("timesteps") or 0) for r in summary.get("intervals", [])),
        "seconds": round(time.monotonic() - started, 1),
    }


# --- 4. the ensemble ---------------------------------------------------------------------


def _sharpe(perf: dict[str, Any]) -> float:
    value = perf.get("sharpe")
    return -math.inf if value is None or not math.isfinite(value) else float(value)


def run_ensemble_arm(uri: str, members: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The Ensemble of ``members`` ((name, source, uri) as its backtest resolves them):
    validation picks the voting method, then one test pass of that ensemble."""
    from stevie_api.ensemble import EnsembleSpec
    from stevie_api.market import EnvSpec
    from stevie_trainer.data.ohlcv import load_ohlcv
    from stevie_trainer.ensemble.backtest import (
        common_bounds,
        run_ensemble,
        run_split,
        with_method,
    )
    from stevie_trainer.ensemble.members import MemberRef
    from stevie_trainer.ensemble.report import load_ensemble
    from stevie_trainer.ensemble.voting import METHODS
    from stevie_trainer.env.prepare import data_splits

    key = {"TrainingRun": "trainingRun", "PBTPopulation": "pbtPopulation"}
    # performance_weighted by validation.sharpe (the spec's defaults); the members searched
    # their own minHoldBars / noTradeBand (COST_SPACE), and one account trades under one
    # rule: the ensemble's are the env's defaults
    rules = EnvSpec()
    spec = EnsembleSpec.model_validate(
        {
            "members": [{"name": n, key[s]: n} for n, s, _ in members],
            "noTradeBand": rules.no_trade_band,
            "minHoldBars": rules.min_hold_bars,
        }
    )
    refs = [MemberRef(name=n, source=s, uri=u) for n, s, u in members]  # type: ignore[arg-type]
    ensemble, resolved = load_ensemble(spec, refs, lambda _: None)
    data = resolved[0].spec.data
    markets = ensemble.markets(load_ohlcv(uri), data.bars_per_year)
    splits = data_splits(markets[0], data)
    val = run_split(ensemble, markets, splits.validation, "validation", baselines=())
    by_method = {m: val.methods[m].performance().to_dict() for m in METHODS}
    order = sorted(METHODS, key=lambda m: m != ensemble.method)  # a tie: the spec's method
    method = max(order, key=lambda m: _sharpe(by_method[m]))
    span = common_bounds(markets, splits.test, "test split")
    bars = np.arange(span[0], span[1] - 1, dtype=np.int64)
    weights = ensemble.weight_path(markets, markets[0].close, bars)
    episode, _ = run_ensemble(
        with_method(ensemble, method), markets, span, weights, split_name="test split"
    )
    return {
        "members": [
            {
                "name": r.name,
                "source": r.source,
                "folder": r.folder,
                "weight": float(w),
                "validation_sharpe": r.metric("validation.sharpe"),
            }
            for r, w in zip(resolved, ensemble.static, strict=True)
        ],
        "method": method,
        "method_chosen_by": "the best validation Sharpe over every voting method",
        "validation_sharpe_by_method": {m: p.get("sharpe") for m, p in by_method.items()},
        "test": {"ensemble": episode.performance().to_dict()},
        "test_period": {
            "first_decision": str(episode.timestamps[0]),
            "last_bar": str(episode.timestamps[-1]),
        },
    }


def ensemble_members(hpo: dict[str, Any], pbt: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The HPO top-k (validation order) and the PBT best, as ensemble member references."""
    found = [(f"hpo-trial-{t['trial']}", "TrainingRun", t["out"]) for t in hpo.get("top", [])]
    if pbt.get("summary_uri"):
        found.append(("pbt-best", "PBTPopulation", pbt["summary_uri"]))
    return found
