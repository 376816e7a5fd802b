"""What every training process sets up the same way: data, env, model, BC, curriculum.

Used by a TrainingRun (:mod:`stevie_trainer.rl.train`) and by an HPO trial's seeds
(:mod:`stevie_trainer.hpo.trial`), which differ only in their callbacks and what they report.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor

from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import Checkpoint
from stevie_trainer.env.multivec import MarketLeg, MultiMarketVecEnv
from stevie_trainer.env.prepare import Prepared, prepare
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.rl.agent import build_model, continuation_overrides, load_model
from stevie_trainer.rl.bc import pretrain
from stevie_trainer.rl.callbacks import CurriculumCallback, RunState, restore_rng_state
from stevie_trainer.rl.demonstrations import Demonstrations, collect_demonstrations
from stevie_trainer.rl.stages import make_curriculum, regime_start_pools

Say = Callable[[str], None]


@dataclass
class Session:
    """One process's training: the prepared markets, the env, the model and its state."""

    spec: TrainingRunSpec
    prepared: Prepared
    env: VecTradingEnv | MultiMarketVecEnv
    model: BaseAlgorithm
    state: RunState
    bc_report: dict[str, Any] | None = None

    def curriculum(self) -> tuple[list[BaseCallback], Callable[[], str | None]]:
        """The curriculum callback (if the spec has one) and a reader of the current stage."""
        if not self.spec.curriculum.enabled:
            return [], lambda: None
        curriculum = make_curriculum(self.prepared)
        if self.state.curriculum is not None:
            curriculum.load_state_dict(self.state.curriculum)
        pools = regime_start_pools(self.prepared)
        if not isinstance(self.env, VecTradingEnv):  # the API refuses curriculum + markets
            raise ValueError("data.markets cannot be combined with curriculum yet")
        callback = CurriculumCallback(curriculum, pools, self.env.planner.set_starts, self.state)
        return [callback], lambda: curriculum.stage_name

    def learn(self, callbacks: list[BaseCallback]) -> int:
        """Train up to totalTimesteps (from wherever the model is); steps trained now."""
        remaining = self.spec.total_timesteps - self.model.num_timesteps
        if remaining > 0:
            self.model.learn(
                remaining, callback=callbacks, reset_num_timesteps=False, tb_log_name="run"
            )
        return max(0, remaining)


def open_session(
    spec: TrainingRunSpec,
    say: Say,
    *,
    name: str | None = None,
    checkpoint: Checkpoint | None = None,
    tensorboard_log: str | None = None,
    init_model: bytes | None = None,
    init_state: dict[str, Any] | None = None,
    prepared: Prepared | None = None,
) -> Session:
    """Prepare the data, build the env and the model: from ``checkpoint`` if given (model,
    optimizer, replay buffer, RNGs, run state); else from ``init_model`` (a PBT interval:
    another model's weights and optimizer, this spec's hyperparameters, ``init_state`` as
    the run state, e.g. its curriculum); else fresh with BC pre-training if enabled.
    ``prepared``: the data already prepared (PBT members share their template's)."""
    torch.set_num_threads(1)
    if prepared is None:
        prepared = prepare(spec, name)
    else:
        parts = [replace(p, spec=spec) for p in prepared.parts]
        prepared = replace(prepared, spec=spec, parts=parts)
    env = training_env(prepared)
    venv = VecMonitor(env)
    state = RunState(total_timesteps=spec.total_timesteps)
    if checkpoint is not None:
        model = load_model(spec, checkpoint.model_bytes(), venv)
        model.tensorboard_log = tensorboard_log
        replay = checkpoint.replay_bytes()
        if replay is not None:
            model.load_replay_buffer(io.BytesIO(replay))  # type: ignore[attr-defined]
        state.load(checkpoint.state.get("run", {}))
        restore_rng_state(checkpoint.state["rng"])
        state.resumed_from.append(checkpoint.timesteps)
        say(f"resuming from checkpoint at {checkpoint.timesteps:,} timesteps")
        return Session(spec, prepared, env, model, state, checkpoint.state.get("bc"))
    if init_model is not None:
        overrides = continuation_overrides(spec) | {"tensorboard_log": tensorboard_log}
        model = load_model(spec, init_model, venv, overrides=overrides)
        state.load(init_state or {})
        return Session(spec, prepared, env, model, state)
    model = build_model(spec, venv, tensorboard_log=tensorboard_log)
    bc = behaviour_cloning(model, prepared, say) if spec.behaviour_cloning.enabled else None
    return Session(spec, prepared, env, model, state, bc)


def training_env(prepared: Prepared) -> VecTradingEnv | MultiMarketVecEnv:
    """The batched training env: over the training market, or over every market's."""
    spec = prepared.spec
    if not prepared.parts:
        env = VecTradingEnv(
            prepared.train_market,
            spec.env,
            spec.n_envs,
            bounds=prepared.train_bounds,
            seed=spec.seed,
            split_name="train split",
        )
        env.planner.set_starts(prepared.train_starts)
        return env
    legs = [MarketLeg(p.train_market, p.train_bounds, p.train_starts) for p in prepared.parts]
    return MultiMarketVecEnv(legs, spec.env, spec.n_envs, seed=spec.seed)


def behaviour_cloning(model: BaseAlgorithm, prepared: Prepared, say: Say) -> dict[str, Any]:
    """Expert demonstrations on every training segment, then BC into the PPO policy."""
    spec = prepared.spec
    # About one pass over each segment's bars (at least 256 decisions per environment), on
    # every market of a multi-market run.
    segments = [(m.train_market, r) for m in prepared.markets for r in m.ranges]
    parts = [
        collect_demonstrations(
            market,
            spec.env,
            spec.expert,
            (first, last + 1),
            n_envs=spec.n_envs,
            steps=max(256, min(2000, (last - first) // spec.n_envs + 1)),
            seed=spec.seed + k,
        )
        for k, (market, (first, last)) in enumerate(segments)
    ]
    demos = Demonstrations.concatenate(parts)
    say(f"behaviour cloning on {len(demos):,} expert decisions")
    result = pretrain(model, demos, spec.behaviour_cloning, seed=spec.seed).to_dict()
    say(
        "behaviour cloning: validation accuracy "
        f"{result.get('validation_accuracy', float('nan')):.1%}, TV distance "
        f"{result.get('tv_distance_greedy', float('nan')):.3f}"
    )
    return result
