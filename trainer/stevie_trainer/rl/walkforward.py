"""Walk-forward selection: one agent per fold, the validation score taken over the folds.

With ``spec.evaluation.walkForward``, the bars before the test split are re-cut into K
chronological folds (:func:`stevie_trainer.data.folds.walk_forward_folds`). Fold k trains
its own agent on its training window only and keeps that agent's best checkpoint by the
Sharpe of its own validation window, exactly as a single-split run does; the run's
``validation`` is the aggregate over folds
(:func:`stevie_trainer.evaluation.selection.aggregate`): ``sharpe`` is the selection
score (the mean over folds, or ``mean - z std / sqrt(K)`` for score lcb), the other metrics
their mean. One validation split is one noisy draw; K later-and-later windows, each scored
by a model that never saw it, make the score less a matter of one window's luck.

* Budget: ``totalTimesteps`` is the run's, split evenly among the folds
  (:func:`stevie_trainer.rl.foldplan.fold_targets`), so walk-forward costs what a single
  split does; progress.json counts timesteps summed over folds against it.
* Layout under the run: ``fold-<k>/`` holds each fold's model.zip (best by its validation
  Sharpe), final.zip, checkpoints/ and fold.json (written when the fold is done: a rerun
  skips it); a crash in fold k resumes fold k from its latest checkpoint.
* The run's model.zip (the test report's, and what Ensembles read) is the LAST fold's best
  model, for both schemes: anchored, it trained on the most bars; rolling, on the most
  recent ones. The test split is touched only by the final report, after every fold.

* Several markets (``data.markets``): each market's bars before its own test split are cut
  into the same K folds (:mod:`stevie_trainer.rl.foldplan`); fold k trains one agent on
  every market's fold-k training window (each market in its own block of environments, so
  no episode mixes two markets' bars: :mod:`stevie_trainer.env.multivec`) and keeps its
  best checkpoint by the pooled Sharpe of their fold-k validation windows (the mean over
  markets, as a single-split multi-market run selects); the run's score aggregates those
  pooled fold scores. Each fold reports ``validation_markets`` too; the final report tests
  the last fold's model on every market's test split, per market (``test_markets``) and
  pooled (``test``).

An HPO trial's seed trains through :func:`walk_forward_seed` (same folds, no checkpoints,
the trial's evaluator and pruning hook), so its objective is the same aggregate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.common.telemetry import TrainerMetrics
from stevie_trainer.env.prepare import Prepared
from stevie_trainer.evaluation.selection import aggregate
from stevie_trainer.rl.agent import load_model, save_model
from stevie_trainer.rl.callbacks import (
    CheckpointCallback,
    ProgressCallback,
    RunState,
    ValidationCallback,
)
from stevie_trainer.rl.foldplan import (
    FOLD_JSON,
    FoldPlan,
    WalkForwardPlan,
    finished_record,
    fold_record,
    plan_folds,
    run_summary,
    walk_forward,
)
from stevie_trainer.rl.session import Say, open_session
from stevie_trainer.rl.train import data_block, test_backtest, test_markets, upload_tree, versions

__all__ = ["MakeEvaluator", "OnEval", "describe_folds", "train_walk_forward", "walk_forward_seed"]

OnEval = Callable[[int, dict[str, Any]], bool]
"""After each validation evaluation: (timesteps, metrics) -> True to stop (HPO pruning)."""

MakeEvaluator = Callable[[Prepared, RunStore, RunState, int, OnEval], BaseCallback]
"""Builds a fold's evaluator: (prepared, store, state, evalFreq, on_eval) -> a
:class:`ValidationCallback` that calls ``on_eval`` (the HPO trial's ``TrialEvalCallback``)."""


# ----------------------------------------------------------------------------- TrainingRun


@dataclass
class _Run:
    """What every fold of a TrainingRun shares: the run's folder, gauges, TensorBoard."""

    store: RunStore
    metrics: TrainerMetrics
    total: int
    tb: Path
    say: Say
    train_seconds: float = 0.0


def _train_fold(plan: FoldPlan, run: _Run, offset: int) -> dict[str, Any]:
    """Train (or resume) one fold of a TrainingRun: the single-split callbacks on the fold's
    windows, its checkpoints under its folder, progress on the run's summed axis."""
    spec = plan.spec(offset)
    session = open_session(
        spec,
        run.say,
        checkpoint=plan.store.latest_checkpoint(),
        tensorboard_log=str(run.tb / f"fold-{plan.index}"),
        prepared=plan.prepare(spec),
    )
    state = session.state
    checkpoints = CheckpointCallback(
        plan.store,
        state,
        spec.checkpoint.interval_steps,
        spec.checkpoint.keep,
        lambda: {"bc": session.bc_report},
    )
    curriculum, stage = session.curriculum()
    fold = (plan.index, plan.count)
    callbacks: list[BaseCallback] = [
        ValidationCallback(session.prepared, plan.store, state, spec.evaluation.eval_freq),
        checkpoints,
        *curriculum,
        ProgressCallback(
            run.store, state, run.metrics, stage, offset=offset, total=run.total, fold=fold
        ),
    ]
    t0 = time.monotonic()
    if session.learn(callbacks):
        checkpoints.save()
    run.train_seconds += time.monotonic() - t0
    plan.store.write_bytes("final.zip", save_model(session.model))
    record = fold_record(plan, session, "succeeded")
    plan.store.write_json(FOLD_JSON, record)
    return record


def _announce(plan: FoldPlan, offset: int, say: Say) -> None:
    steps = plan.spec(offset).total_timesteps
    if not plan.multi_market:
        (a, b), (c, d) = plan.legs[0].fold.train, plan.legs[0].fold.validation
        windows = f"bars [{a}, {b}), validating on [{c}, {d})"
        say(f"{plan.label}: training on {windows}, {steps:,} timesteps")
        return
    windows = "; ".join(
        f"{leg.market.name} bars [{leg.fold.train[0]}, {leg.fold.train[1]}) validating on "
        f"[{leg.fold.validation[0]}, {leg.fold.validation[1]})"
        for leg in plan.legs
    )
    say(f"{plan.label}: training on {len(plan.legs)} markets ({windows}), {steps:,} timesteps")


def _train_folds(plan: WalkForwardPlan, run: _Run) -> list[dict[str, Any]]:
    """Every fold in order; a finished fold (fold.json) is read back, not trained again."""
    records: list[dict[str, Any]] = []
    offset = 0
    for fold in plan.folds:
        record = finished_record(fold)
        if record is None:
            _announce(fold, offset, run.say)
            record = _train_fold(fold, run, offset)
        else:
            run.say(f"{fold.label}: already trained ({record['timesteps']:,} timesteps)")
        records.append(record)
        offset += int(record["timesteps"])
    return records


def _final_test(plan: WalkForwardPlan, store: RunStore) -> dict[str, Any]:
    """The test split, for the first and only time: after every fold has made its choice.
    The run's model.zip (the last fold's) on every market's test split, per market and
    pooled for several (:func:`~stevie_trainer.rl.train.test_markets`)."""
    spec = plan.spec
    real = plan.folds[-1].real(spec)
    best = load_model(spec, storage.read_bytes(store.uri("model.zip")))
    if not real.parts:
        return test_backtest(real, best, store) | {"data": data_block(real)}
    test, markets = test_markets(real, best, store)
    return test | {"data": data_block(real), "test_markets": markets}


def train_walk_forward(
    spec: TrainingRunSpec, store: RunStore, say: Say, *, name: str | None = None
) -> dict[str, Any]:
    """Train (or resume) every fold of the run under ``store``, then the one test report of
    the last fold's model; result.json's content (written by the caller's ``train``)."""
    started = time.monotonic()
    plan = plan_folds(spec, store, name)
    tb_local = storage.local_path(store.uri("tensorboard"))
    tb_dir = tb_local or Path(tempfile.mkdtemp(prefix="stevie-tb-"))
    metrics = TrainerMetrics(name or store.out.rstrip("/").rsplit("/", 1)[-1])
    port = metrics.serve()
    if port:
        say(f"metrics on :{port}/metrics")
    run = _Run(store, metrics, spec.total_timesteps, tb_dir, say)
    records = _train_folds(plan, run)
    last = plan.folds[-1]
    for artifact in ("model.zip", "final.zip"):
        store.write_bytes(artifact, storage.read_bytes(last.store.uri(artifact)))
    if tb_local is None:
        upload_tree(tb_dir, store.uri("tensorboard"))
    test = _final_test(plan, store)
    summary = run_summary(records, walk_forward(spec))
    return {
        "status": "succeeded",
        "finished_at": iso_now(),
        "timesteps": summary.pop("timesteps"),
        "algorithm": spec.algorithm,
        "data": test["data"],
        "annualisation": test["annualisation"],
        **summary,
        "walk_forward": plan.describe(),
        "test_period": test["test_period"],
        "test": test["test"],
        **({"test_markets": test["test_markets"]} if "test_markets" in test else {}),
        "augmentation": records[-1]["augmentation"],
        "curriculum": records[-1]["curriculum"],
        "artifacts": {
            "model": store.uri("model.zip"),
            "final_model": store.uri("final.zip"),
            "equity_plot": test["equity_plot"],
            "tensorboard": store.uri("tensorboard"),
            "folds": [f.store.out for f in plan.folds],
        },
        "versions": versions(),
        "timings": {
            "total_seconds": round(time.monotonic() - started, 2),
            "train_seconds_this_process": round(run.train_seconds, 2),
        },
    }


def _sharpe(block: dict[str, Any] | None) -> str:
    sharpe = (block or {}).get("sharpe")
    return "n/a" if sharpe is None else f"{sharpe:.2f}"


def describe_folds(result: dict[str, Any]) -> str:
    """One line per fold and the score, for the end of a run's log."""
    wf = result["walk_forward"]
    multi = "test_markets" in result
    lines = [
        f"walk-forward ({wf['folds']} {wf['scheme']} folds, score {wf['score']}): "
        f"validation Sharpe {result['validation']['sharpe']:.2f}"
        + (" (pooled over markets)" if multi else "")
        + "; the model is the last fold's"
    ]
    for f in result["validation_folds"]:
        if not multi:
            v = f["windows"]["validation"]
            period = f"validation {v['first']} .. {v['last']}"
            lines.append(f"  fold {f['fold'] + 1}: {period}, Sharpe {_sharpe(f['validation'])}")
            continue
        per_market = ", ".join(
            f"{m} {_sharpe(block)}" for m, block in (f.get("validation_markets") or {}).items()
        )
        lines.append(
            f"  fold {f['fold'] + 1}: pooled Sharpe {_sharpe(f['validation'])} ({per_market})"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- HPO seed


def _seed_fold(
    plan: FoldPlan,
    before: list[dict[str, Any]],
    evaluator: MakeEvaluator,
    on_eval: OnEval,
    say: Say,
) -> tuple[dict[str, Any], bool]:
    """One fold of an HPO seed, after the folds ``before``: its record and whether the
    pruner stopped it. ``on_eval`` sees the run's summed timesteps and the aggregate of the
    folds before and this evaluation: what the objective would be if the seed ended now."""
    wf = walk_forward(plan.run_spec)
    offset = sum(int(r["timesteps"]) for r in before)
    spec = plan.spec(offset)
    session = open_session(spec, say, prepared=plan.prepare(spec))
    earlier = [r["validation"] for r in before]
    stopped = False

    def fold_eval(timesteps: int, metrics: dict[str, Any]) -> bool:
        nonlocal stopped
        stopped = stopped or on_eval(offset + timesteps, aggregate([*earlier, metrics], wf))
        return stopped

    every = spec.evaluation.eval_freq
    callback = evaluator(session.prepared, plan.store, session.state, every, fold_eval)
    curriculum, _ = session.curriculum()
    session.learn([callback, *curriculum])
    record = fold_record(plan, session, "pruned" if stopped else "succeeded")
    plan.store.write_json(FOLD_JSON, record)
    return record, stopped


def walk_forward_seed(
    spec: TrainingRunSpec, store: RunStore, evaluator: MakeEvaluator, on_eval: OnEval, say: Say
) -> dict[str, Any]:
    """One HPO seed over the folds (no checkpoints, no test report): result.json's content
    in :func:`stevie_trainer.hpo.trial.train_seed`'s shape, its ``validation`` the
    aggregate the trial's objective reads. Once the pruner stops a fold, the seed stops
    (status pruned). Folds a previous attempt finished are not trained again."""
    started = time.monotonic()
    plan = plan_folds(spec, store)
    records: list[dict[str, Any]] = []
    stopped = False
    for fold in plan.folds:
        record = finished_record(fold)
        if record is None:
            _announce(fold, sum(int(r["timesteps"]) for r in records), say)
            record, stopped = _seed_fold(fold, records, evaluator, on_eval, say)
        records.append(record)
        if stopped:
            break
    # The seed's model (an Ensemble's HPO member reads it): the last trained fold's best.
    last = plan.folds[len(records) - 1].store
    store.write_bytes("model.zip", storage.read_bytes(last.uri("model.zip")))
    return {
        "status": "pruned" if stopped else "succeeded",
        "finished_at": iso_now(),
        "seed": spec.seed,
        "out": store.out,
        **run_summary(records, walk_forward(spec)),
        "walk_forward": plan.describe(),
        "seconds": round(time.monotonic() - started, 2),
    }
