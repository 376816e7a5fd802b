"""One interval of one PBT member: what ``python -m stevie_trainer pbt-interval`` runs.

A member is a chain of intervals. Interval ``i`` starts from a checkpoint -- the member's own
previous interval, or after an exploit the checkpoint of the member it copied -- applies this
interval's hyperparameters (SB3 rebuilds its schedules from them; weights and optimizer state
are kept), trains ``perturbationInterval`` timesteps, then scores the model with one
deterministic pass over the validation split. The interval's folder holds::

    model.zip      the weights after the interval, with the optimizer state (what others copy)
    state.json     run state carried to the next interval (curriculum stage)
    validation_returns.npy  the model's per-bar validation returns (float64, 8 bytes a bar:
                   the finish's Deflated Sharpe Ratio, :mod:`stevie_trainer.pbt.luck`)
    result.json    validation metrics, fitness, hyperparameters, timings (written last)

Several markets (``template.data.markets``): the interval trains on all of them at once
(the multi-market vec env) and is scored on the pooled validation block, with each
market's in result.json's ``validation_markets``; validation_returns.npy holds the
markets' series joined in the spec's order (:func:`~stevie_trainer.rl.agent.joined_returns`).
    progress.json  while training

Idempotent: an interval whose result.json exists is returned as is; an interrupted interval is
trained again from its (unchanged) starting checkpoint, so a retried Job or process is safe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor

from stevie_api.common import ParamValue
from stevie_api.pbt import PBTPopulationSpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.common.telemetry import TrainerMetrics
from stevie_trainer.env.prepare import Prepared, prepare
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.evaluation.baselines import make_baseline
from stevie_trainer.evaluation.episode import run_policy
from stevie_trainer.pbt.fitness import fitness, fitness_terms
from stevie_trainer.pbt.luck import RETURNS_FILE, encode_returns
from stevie_trainer.rl.agent import AgentPolicy, joined_returns, save_model, validation_pass
from stevie_trainer.rl.callbacks import ProgressCallback
from stevie_trainer.rl.session import Session, open_session

__all__ = [
    "MODEL_NAME",
    "interval_spec",
    "member_seed",
    "prepared_data",
    "train_interval",
    "warm_up",
]

MODEL_NAME = "model.zip"


_PREPARED: dict[str, Prepared] = {}


def prepared_data(spec: PBTPopulationSpec, name: str | None = None) -> Prepared:
    """The template's data, splits and augmented copies (seeded by the template's seed, so
    every member trains on the same data), prepared once per process: a runner that forks
    its interval processes prepares it before forking."""
    key = json.dumps(spec.template.model_dump(mode="json"), sort_keys=True) + f"|{name}"
    if key not in _PREPARED:
        _PREPARED[key] = prepare(spec.template, name)
    return _PREPARED[key]


def warm_up(spec: PBTPopulationSpec, name: str | None = None) -> None:
    """Do once, in a runner that forks its interval processes, what every interval does
    first: prepare the data, load the compiled simulator and evaluation kernels, and run
    torch through one short training of the template's model (the first optimiser imports
    ``torch._dynamo``, ~2 s; the first initialisation, forward and backward passes set up
    kernels). Torch runs single-threaded here, so the fork copies no thread pool."""
    import torch

    from stevie_trainer.rl.agent import build_model

    torch.set_num_threads(1)
    prep = prepared_data(spec, name)
    run_spec = interval_spec(spec, 0, 0, {})
    env = VecTradingEnv(prep.train_market, run_spec.env, run_spec.n_envs,
                        bounds=prep.train_bounds, seed=0)  # fmt: skip
    model = build_model(run_spec, VecMonitor(env))
    steps = run_spec.ppo.n_steps * run_spec.n_envs if run_spec.algorithm == "PPO" else 64
    model.learn(steps)
    agent = AgentPolicy(model)
    for policy in (agent, make_baseline("buy-and-hold", prep.market.features.indicators,
                                        run_spec.expert)):  # fmt: skip
        run_policy(prep.market, run_spec.env, prep.splits.validation, policy, split_name="warm-up")
    del model, agent


def member_seed(spec: PBTPopulationSpec, member: int, interval: int) -> int:
    """Seed of a member's interval: distinct episode streams per member and interval (a
    member that copied another does not replay the donor's episodes)."""
    return spec.template.seed + 10_007 * member + interval


def interval_spec(
    spec: PBTPopulationSpec, member: int, interval: int, params: Mapping[str, Any]
) -> TrainingRunSpec:
    """The template with the interval's hyperparameters; totalTimesteps is the member's
    budget after this interval (for display: an interval always trains one interval)."""
    return spec.template.with_hyperparameters(dict(params)).model_copy(
        update={
            "seed": member_seed(spec, member, interval),
            "total_timesteps": spec.perturbation_interval * (interval + 1),
        }
    )


def _open(
    spec: PBTPopulationSpec,
    member: int,
    interval: int,
    params: Mapping[str, ParamValue],
    init: str | None,
    name: str | None,
    say: Callable[[str], None],
) -> Session:
    """The interval's training session: from the ``init`` checkpoint's weights and optimiser
    state with this interval's hyperparameters (or a fresh model)."""
    run_spec = interval_spec(spec, member, interval, params)
    init_model = init_state = None
    if init is not None:
        init_model = storage.read_bytes(storage.join(init, MODEL_NAME))
        init_state = (RunStore(init).read_json("state.json") or {}).get("run")
    return open_session(
        run_spec,
        say,
        name=name,
        init_model=init_model,
        init_state=init_state,
        prepared=prepared_data(spec, name),
    )


def _callbacks(
    session: Session, store: RunStore, steps: int, run: str
) -> tuple[list[BaseCallback], Callable[[], str | None]]:
    """Progress (and curriculum) callbacks for ``steps`` more timesteps, and the curriculum's
    stage reader; the metrics are labelled ``run`` (``m<member>-i<interval>``)."""
    state = session.state
    state.total_timesteps = int(session.model.num_timesteps) + steps
    metrics = TrainerMetrics(run)
    metrics.serve()
    curriculum, stage = session.curriculum()
    return [*curriculum, ProgressCallback(store, state, metrics, stage=stage)], stage


def _validate(session: Session) -> tuple[dict[str, Any], bytes, dict[str, Any] | None]:
    """The interval's model on the validation split (what its fitness scores), its per-bar
    returns as a .npy file, and each market's metrics (None for one market). Several
    markets: the pooled block and the markets' series joined (a multi-market TrainingRun's
    :func:`~stevie_trainer.rl.agent.validation_pass`)."""
    perf, per_market, episodes = validation_pass(session.prepared, session.model)
    markets = dict(per_market) if session.prepared.parts else None
    return perf.to_dict(), encode_returns(joined_returns(episodes)), markets


def train_interval(
    spec: PBTPopulationSpec,
    member: int,
    interval: int,
    params: Mapping[str, ParamValue],
    init: str | None,
    out: str,
    *,
    name: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train (or return the finished result of) one interval under ``out``; ``init`` is the
    folder of the checkpoint to start from (None: a fresh model, BC pre-trained if enabled)."""
    say = log or (lambda message: print(message, flush=True))
    clock = _Clock()
    store = RunStore(out)
    done = store.read_json("result.json")
    if done is not None and done.get("status") == "succeeded":
        say(f"{store.out}: interval already finished")
        return done
    session = _open(spec, member, interval, params, init, name, say)
    start_steps = int(session.model.num_timesteps)
    callbacks, stage = _callbacks(
        session, store, spec.perturbation_interval, f"m{member}-i{interval}"
    )
    clock.lap("setup_seconds")
    session.model.learn(
        spec.perturbation_interval, callback=callbacks, reset_num_timesteps=False,
        tb_log_name="pbt",
    )  # fmt: skip
    clock.lap("train_seconds")
    validation, returns, markets = _validate(session)
    clock.lap("eval_seconds")
    model_uri = store.write_bytes(MODEL_NAME, save_model(session.model))
    returns_uri = store.write_bytes(RETURNS_FILE, returns)
    store.write_json("state.json", {"run": session.state.to_dict()})
    clock.lap("save_seconds")
    result: dict[str, Any] = {
        "status": "succeeded",
        "finished_at": iso_now(),
        "member": member,
        "interval": interval,
        "hyperparameters": dict(params),
        "init_checkpoint": init,
        "checkpoint": store.out,
        "model": model_uri,
        "timesteps_start": start_steps,
        "timesteps": int(session.model.num_timesteps),
        "validation": validation,
        **({"validation_markets": markets} if markets is not None else {}),
        "validation_returns": returns_uri,
        "fitness": fitness(validation, spec.fitness),
        "fitness_terms": fitness_terms(validation),
        "curriculum_stage": stage(),
        "behaviour_cloning": session.bc_report,
        "timings": clock.timings(),
    }
    store.write_json("result.json", result)
    say(_summary(result))
    return result


def _summary(result: dict[str, Any]) -> str:
    validation, timings = result["validation"], result["timings"]
    return (
        f"member {result['member']} interval {result['interval']}: fitness "
        f"{result['fitness']:.4f} (validation Sharpe {_fmt(validation.get('sharpe'))}, "
        f"return {_fmt(validation.get('total_return'), '+.2%')}), "
        f"{timings['train_seconds']:.1f} s training of {timings['total_seconds']:.1f} s"
    )


class _Clock:
    """Wall time of an interval's phases, as result.json's ``timings`` reports them."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 3)
        self.last = now

    def timings(self) -> dict[str, float]:
        return self.laps | {"total_seconds": round(time.monotonic() - self.started, 3)}


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)
