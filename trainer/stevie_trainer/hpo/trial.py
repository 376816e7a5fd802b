"""The HPO trial worker: train one asked trial over its seeds, with pruning.

``run_trial`` opens the study, reads the trial's hyperparameters (sampled by the controller
at ask time), trains ``seedsPerTrial`` seeds one after the other under ``<out>/seed-<k>/``,
reports the validation score at every evaluation (step = timesteps, continuing across
seeds: seed k's evaluation at t timesteps is step ``k x totalTimesteps + t``, valued at the
running mean of the finished seeds and the current one) and stops when the pruner says so,
like rl-baselines3-zoo's ``TrialEvalCallback``. It tells the study the outcome itself:

* COMPLETE with the mean over seeds of each objective (of each seed's best model by
  validation Sharpe, the model a TrainingRun keeps; with ``evaluation.walkForward`` a
  seed trains one agent per fold and its objective is the aggregate over folds, see
  :mod:`stevie_trainer.rl.walkforward`);
* PRUNED (Optuna keeps the last intermediate value);
* FAIL with ``user_attrs["error"]`` when training raises (the exception propagates).

Beside each seed's model.zip, ``validation_returns.npy`` holds that model's per-bar
validation returns (a few KB, :func:`~stevie_trainer.hpo.luck.encode_returns`): the study's
DSR and PBO read them (:mod:`stevie_trainer.hpo.luck`). With walk-forward there is one per
fold, ``<seed>/fold-<k>/validation_returns.npy`` (that fold's best model on its window).

Several markets (``template.data.markets``): the objective reads the pooled validation
block (its Sharpe the mean of the markets' Sharpes; with walk-forward, the aggregate over
folds of those pooled scores), and ``validation_returns.npy`` holds the markets' per-bar
validation return series concatenated end to end in the spec's market order (within a
fold for walk-forward), so its length is the sum of the markets' validation bars (the
pooled block's ``bars``), from the episodes the evaluation itself read.

Idempotent: a finished trial is returned as is; a worker restarted mid-trial (pod retry)
re-uses the seeds that finished. The test split is never evaluated here: model selection
uses validation only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from stevie_api.hpo import HPOStudySpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.env.prepare import Prepared
from stevie_trainer.evaluation.performance import Performance
from stevie_trainer.hpo.luck import RETURNS_FILE, encode_returns
from stevie_trainer.hpo.study import (
    mark_failed,
    objective_value,
    open_study,
    seed_spec,
    tell_trial,
    trial_name,
    trial_spec,
)
from stevie_trainer.rl.agent import joined_returns
from stevie_trainer.rl.callbacks import RunState, ValidationCallback
from stevie_trainer.rl.session import open_session
from stevie_trainer.rl.train import claim
from stevie_trainer.rl.walkforward import walk_forward_seed

__all__ = ["SeedResult", "TrialEvalCallback", "find_trial", "run_trial", "train_seed"]

OnEval = Callable[[int, dict[str, Any]], bool]
"""Called after each validation evaluation with (timesteps, metrics); True stops training."""


class TrialEvalCallback(ValidationCallback):
    """ValidationCallback (best model by validation Sharpe saved as model.zip) that hands each
    evaluation to ``on_eval`` and stops training when it returns True (pruned)."""

    def __init__(
        self, prepared: Prepared, store: RunStore, state: RunState, every: int, on_eval: OnEval
    ) -> None:
        super().__init__(prepared, store, state, every)
        self.on_eval = on_eval
        self.stopped = False

    def evaluate(self) -> Performance:
        before = self.state.best_validation
        perf = super().evaluate()
        if self.state.best_validation is not before:
            # model.zip was just replaced: keep its per-bar validation returns beside it, for
            # the study's Deflated Sharpe Ratio and PBO (stevie_trainer.hpo.luck).
            self.store.write_bytes(RETURNS_FILE, encode_returns(joined_returns(self.last_episodes)))
        if not self.stopped and self.on_eval(self.num_timesteps, perf.to_dict()):
            self.stopped = True
        return perf

    def _on_step(self) -> bool:
        super()._on_step()
        return not self.stopped


@dataclass
class SeedResult:
    """One seed of a configuration, trained (or stopped by the pruner)."""

    seed: int
    out: str
    timesteps: int
    pruned: bool
    validation: dict[str, Any] | None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def value(self, metric: str) -> float:
        """An objective (``validation.<name>``) of this seed's best model."""
        return objective_value(self.validation, metric)


def train_seed(
    spec: TrainingRunSpec, out: str, on_eval: OnEval | None = None, log: Any = None
) -> SeedResult:
    """Train one configuration with one seed under ``out`` (model.zip = best by validation
    Sharpe, result.json): the TrainingRun machinery without checkpoints or the test report.
    A finished seed (result.json with status succeeded) is returned without training."""
    say = log or (lambda message: print(message, flush=True))
    store = RunStore(out)
    done = store.read_json("result.json")
    claim(store, spec)
    if done is not None and done.get("status") == "succeeded":
        return _seed_result(done)
    if spec.evaluation.walk_forward is not None:  # one agent per fold, scored over folds
        hook = on_eval or (lambda _t, _m: False)
        wf_result = walk_forward_seed(spec, store, TrialEvalCallback, hook, say)
        store.write_json("result.json", wf_result)
        return _seed_result(wf_result)
    started = time.monotonic()
    session = open_session(spec, say)
    state = session.state
    evaluator = TrialEvalCallback(
        session.prepared,
        store,
        state,
        spec.evaluation.eval_freq,
        on_eval or (lambda _t, _m: False),
    )
    curriculum, _ = session.curriculum()
    session.learn([evaluator, *curriculum])
    model = session.model
    bc = session.bc_report
    result = {
        "status": "pruned" if evaluator.stopped else "succeeded",
        "finished_at": iso_now(),
        "seed": spec.seed,
        "out": store.out,
        "timesteps": int(model.num_timesteps),
        "validation": state.best_validation,
        **({"validation_markets": state.best_validation_markets} if session.prepared.parts else {}),
        "best_timesteps": state.best_timesteps,
        "evaluations": state.evaluations,
        "behaviour_cloning": bc,
        "seconds": round(time.monotonic() - started, 2),
    }
    store.write_json("result.json", result)
    return _seed_result(result)


def _seed_result(doc: dict[str, Any]) -> SeedResult:
    return SeedResult(
        seed=int(doc["seed"]),
        out=str(doc["out"]),
        timesteps=int(doc["timesteps"]),
        pruned=doc["status"] == "pruned",
        validation=doc.get("validation"),
        evaluations=list(doc.get("evaluations") or []),
        seconds=float(doc.get("seconds") or 0.0),
    )


def find_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """The trial of that number (ValueError when the study has none)."""
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            return t
    raise ValueError(
        f"study {study.study_name!r} has no trial {number} (ask it first: the controller "
        "creates trials, workers only run them)"
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run_trial(
    spec: HPOStudySpec,
    study_name: str,
    storage_location: str | optuna.storages.BaseStorage,
    number: int,
    out: str,
    *,
    log: Any = None,
    optuna_name: str | None = None,
) -> FrozenTrial:
    """Run (or resume, or return the finished) trial ``number`` of the study; see the module
    docstring. Returns the trial as recorded in the study. ``optuna_name``: the study's name
    in the storage when it is not ``study_name`` (which names the trial, ``<name>-tN``)."""
    say = log or (lambda message: print(message, flush=True))
    study = open_study(spec, optuna_name or study_name, storage_location, create=False)
    frozen = find_trial(study, number)
    if frozen.state.is_finished():
        say(f"{trial_name(study_name, number)}: already {frozen.state.name}")
        return frozen
    trial = optuna.trial.Trial(study, frozen._trial_id)
    name = trial_name(study_name, number)
    try:
        _train_trial(spec, study, trial, dict(frozen.params), name, out, say)
    except Exception as exc:
        mark_failed(study, number, f"{type(exc).__name__}: {exc}")
        raise
    return find_trial(study, number)


def _train_trial(
    spec: HPOStudySpec,
    study: optuna.Study,
    trial: optuna.trial.Trial,
    params: dict[str, Any],
    name: str,
    out: str,
    say: Callable[[str], None],
) -> None:
    run_spec, adjusted = trial_spec(spec, params)
    metrics = [o.metric for o in spec.objectives]
    total = run_spec.total_timesteps
    trial.set_user_attr("name", name)
    trial.set_user_attr("out", out)
    trial.set_user_attr("timesteps_budget", total * spec.seeds_per_trial)
    if adjusted:
        trial.set_user_attr("adjusted_params", adjusted)
    say(f"{name}: {params}" + (f" (adjusted: {adjusted})" if adjusted else ""))
    finished: list[SeedResult] = []
    done_steps = 0

    for k in range(spec.seeds_per_trial):
        prior = [r.value(metrics[0]) for r in finished]

        def on_eval(
            timesteps: int, values: dict[str, Any], k: int = k, prior: list[float] = prior
        ) -> bool:
            if len(metrics) > 1:  # Optuna cannot prune multi-objective trials
                return False
            value = _mean([*prior, objective_value(values, metrics[0])])
            step = k * total + timesteps
            trial.report(value, step)
            pruned = trial.should_prune()
            say(
                f"{name}: seed {k} at {timesteps:,} timesteps: {metrics[0]} {value:.3f}"
                + (" -> pruned" if pruned else "")
            )
            return pruned

        result = train_seed(
            seed_spec(run_spec, k), storage.join(out, f"seed-{k}"), on_eval, log=say
        )
        done_steps += result.timesteps
        trial.set_user_attr("timesteps_done", done_steps)
        if result.pruned:
            trial.set_user_attr("pruned_at_step", k * total + result.timesteps)
            _write_trial_json(out, name, "PRUNED", params, None, [*finished, result])
            tell_trial(study, trial.number, None, TrialState.PRUNED)
            return
        finished.append(result)
        trial.set_user_attr("seed_values", [[r.value(m) for m in metrics] for r in finished])

    values = [_mean([r.value(m) for r in finished]) for m in metrics]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"objective values are not finite: {values}")
    _write_trial_json(out, name, "COMPLETE", params, values, finished)
    tell_trial(study, trial.number, values, TrialState.COMPLETE)
    say(f"{name}: COMPLETE {dict(zip(metrics, values, strict=True))}")


def _write_trial_json(
    out: str,
    name: str,
    state: str,
    params: dict[str, Any],
    values: list[float] | None,
    seeds: list[SeedResult],
) -> None:
    RunStore(out).write_json(
        "trial.json",
        {
            "name": name,
            "state": state,
            "params": params,
            "values": values,
            "seeds": [asdict(s) for s in seeds],
            "finished_at": iso_now(),
        },
    )
