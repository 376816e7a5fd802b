"""SB3 callbacks of a training run: validation, checkpoints, progress (+ curriculum hook)."""

from __future__ import annotations

import io
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from stable_baselines3.common.callbacks import BaseCallback

from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.common.telemetry import TrainerMetrics
from stevie_trainer.env.prepare import Prepared
from stevie_trainer.evaluation.episode import Episode
from stevie_trainer.evaluation.performance import Performance
from stevie_trainer.rl.agent import save_model, validation_pass
from stevie_trainer.rl.curriculum import Curriculum


@dataclass
class RunState:
    """What a run knows besides the model: saved in checkpoints, reported in result.json."""

    total_timesteps: int
    best_sharpe: float | None = None
    best_timesteps: int | None = None
    best_validation: dict[str, Any] | None = None
    best_validation_markets: dict[str, Any] | None = None  # per market (data.markets)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: list[int] = field(default_factory=list)
    curriculum: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_sharpe": self.best_sharpe,
            "best_timesteps": self.best_timesteps,
            "best_validation": self.best_validation,
            "best_validation_markets": self.best_validation_markets,
            "evaluations": self.evaluations,
            "resumed_from": self.resumed_from,
            "curriculum": self.curriculum,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.best_sharpe = data.get("best_sharpe")
        self.best_timesteps = data.get("best_timesteps")
        self.best_validation = data.get("best_validation")
        self.best_validation_markets = data.get("best_validation_markets")
        self.evaluations = list(data.get("evaluations", []))
        self.resumed_from = list(data.get("resumed_from", []))
        self.curriculum = data.get("curriculum")


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch global RNG states, JSON-safe."""
    np_state = cast("tuple[Any, ...]", np.random.get_state(legacy=True))
    return {
        "python": repr(random.getstate()),
        "numpy": [np_state[0], np.asarray(np_state[1]).tolist(), *map(float, np_state[2:])],
        "torch": torch.get_rng_state().tolist(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    import ast

    random.setstate(ast.literal_eval(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


class PeriodicCallback(BaseCallback):
    """Calls :meth:`fire` every ``every`` timesteps, counted from where training (re)starts."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every
        self.last = 0

    def fire(self) -> None:
        raise NotImplementedError

    def _on_training_start(self) -> None:
        self.last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last >= self.every:
            self.last = self.num_timesteps
            self.fire()
        return True


class ValidationCallback(PeriodicCallback):
    """Every ``every`` steps: a deterministic pass over the validation split; the best model
    by validation Sharpe is saved as model.zip (model selection uses validation only).
    A multi-market run selects by the pooled Sharpe (the mean over markets, see
    :mod:`~stevie_trainer.evaluation.pooled`) and keeps each market's metrics beside it."""

    def __init__(self, prepared: Prepared, store: RunStore, state: RunState, every: int):
        super().__init__(every)
        self.prepared = prepared
        self.store = store
        self.state = state
        # the latest pass: the one market's episode, or each market's (subclasses keep them)
        self.last_episodes: list[Episode] = []

    def fire(self) -> None:
        self.evaluate()

    def _on_training_end(self) -> None:
        if self.num_timesteps != self.last:
            self.evaluate()

    def evaluate(self) -> Performance:
        self.last = self.num_timesteps
        # several markets: a pooled performance, and each market's metrics
        perf, markets, self.last_episodes = validation_pass(self.prepared, self.model)
        metrics = perf.to_dict()
        entry: dict[str, Any] = {"timesteps": self.num_timesteps, **metrics}
        if markets:
            entry["markets"] = markets
        self.state.evaluations.append(entry)
        sharpe = perf.sharpe
        for key in ("sharpe", "total_return", "max_drawdown", "win_rate"):
            value = metrics.get(key)
            if value is not None:
                self.logger.record(f"validation/{key}", value)
        best = self.state.best_sharpe
        improved = not math.isnan(sharpe) and (best is None or sharpe > best)
        # With no defined Sharpe yet (e.g. the agent never traded), keep the first model.
        first = best is None and self.state.best_timesteps is None
        if improved or first:
            if improved:
                self.state.best_sharpe = sharpe
            self.state.best_timesteps = self.num_timesteps
            self.state.best_validation = metrics
            self.state.best_validation_markets = markets or None
            self.store.write_bytes("model.zip", save_model(self.model))
        return perf


class CheckpointCallback(PeriodicCallback):
    """Every ``every`` steps: model + optimizer, DQN replay buffer, RNG and run state."""

    def __init__(
        self,
        store: RunStore,
        state: RunState,
        every: int,
        keep: int,
        extra_state: Callable[[], dict[str, Any]],
    ):
        super().__init__(every)
        self.store = store
        self.state = state
        self.keep = keep
        self.extra_state = extra_state

    def fire(self) -> None:
        self.save()

    def save(self) -> None:
        self.last = self.num_timesteps
        replay = None
        if hasattr(self.model, "replay_buffer"):
            buf = io.BytesIO()
            self.model.save_replay_buffer(buf)  # type: ignore[attr-defined]
            replay = buf.getvalue()
        state = {"run": self.state.to_dict(), "rng": rng_state(), **self.extra_state()}
        self.store.save_checkpoint(
            self.num_timesteps, save_model(self.model), state, replay=replay, keep=self.keep
        )


class ProgressCallback(BaseCallback):
    """progress.json for the operator, a progress line (terminal) or JSON log lines (pod),
    and Prometheus gauges.

    A walk-forward fold's model counts its own timesteps from 0: ``offset`` (the folds
    before it) and ``total`` (the whole run's) keep progress.json's timesteps / total the
    run's, summed over folds; ``fold`` (index, count) is reported beside them."""

    def __init__(
        self,
        store: RunStore,
        state: RunState,
        metrics: TrainerMetrics,
        stage: Callable[[], str | None],
        every_seconds: float = 2.0,
        *,
        offset: int = 0,
        total: int | None = None,
        fold: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.store = store
        self.state = state
        self.metrics = metrics
        self.stage = stage
        self.every = every_seconds
        self.offset = offset
        self.total = total
        self.fold = fold
        self.tty = sys.stderr.isatty()
        self.last_time = 0.0
        self.last_steps = 0
        self.start_time = 0.0

    def _on_training_start(self) -> None:
        self.start_time = self.last_time = time.monotonic()
        self.last_steps = self.num_timesteps
        self.report()

    def _on_step(self) -> bool:
        if time.monotonic() - self.last_time >= self.every:
            self.report()
        return True

    def _on_training_end(self) -> None:
        self.report(final=True)

    def report(self, final: bool = False) -> None:
        now = time.monotonic()
        fps = (self.num_timesteps - self.last_steps) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_steps = now, self.num_timesteps
        total = self.state.total_timesteps if self.total is None else self.total
        steps = self.offset + self.num_timesteps
        rewards = [ep["r"] for ep in (self.model.ep_info_buffer or [])]
        mean_reward = float(np.mean(rewards)) if rewards else None
        progress: dict[str, Any] = {
            "timesteps": steps,
            "total_timesteps": total,
            "stage": self.stage(),
            "best_validation_sharpe": self.state.best_sharpe,
            "episode_reward_mean": mean_reward,
            "fps": round(fps, 1),
            "updated_at": iso_now(),
        }
        if self.fold is not None:
            progress["fold"] = {"index": self.fold[0], "count": self.fold[1]}
        self.store.write_json("progress.json", progress)
        self.metrics.update(progress)
        pct = 100.0 * steps / max(total, 1)
        if self.tty:
            sharpe = self.state.best_sharpe
            line = (
                f"\r[{pct:5.1f}%] {steps:,}/{total:,} steps  {fps:,.0f} steps/s"
                f"  best val Sharpe {'n/a' if sharpe is None else f'{sharpe:.2f}'}"
                + (f"  fold {self.fold[0] + 1}/{self.fold[1]}" if self.fold else "")
                + (f"  stage {progress['stage']}" if progress["stage"] else "")
            )
            print(line, end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            print(json.dumps({"event": "progress", **progress}), file=sys.stderr, flush=True)


class CurriculumCallback(BaseCallback):
    """Feeds finished episodes' rewards to the curriculum; after each rollout, promotes it
    when its rule says so and narrows or widens the episode starts to the new stage."""

    def __init__(
        self,
        curriculum: Curriculum,
        per_regime: list[npt.NDArray[np.int64]],
        set_starts: Callable[[npt.NDArray[np.int64]], None],
        state: RunState,
    ):
        super().__init__()
        self.curriculum = curriculum
        self.per_regime = per_regime
        self.set_starts = set_starts
        self.state = state

    def _on_training_start(self) -> None:
        self.set_starts(self.curriculum.starts(self.per_regime))
        self.state.curriculum = self.curriculum.state_dict()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.curriculum.record_episode(float(episode["r"]))
        return True

    def _on_rollout_end(self) -> None:
        if self.curriculum.advance(self.num_timesteps):
            self.set_starts(self.curriculum.starts(self.per_regime))
            self.logger.record("curriculum/stage", self.curriculum.stage)
        self.state.curriculum = self.curriculum.state_dict()
