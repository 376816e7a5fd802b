"""Prometheus metrics of a trainer process, served on ``STEVIE_METRICS_PORT`` if set."""

from __future__ import annotations

import os
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

PORT_ENV = "STEVIE_METRICS_PORT"


class TrainerMetrics:
    """Gauges labelled by run: timesteps, fps, episode reward, validation Sharpe, stage, and
    the walk-forward fold."""

    def __init__(self, run: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.run = run
        labels = ["run"]
        self.timesteps = Gauge(
            "stevie_trainer_timesteps", "Timesteps trained", labels, registry=self.registry
        )
        self.total = Gauge(
            "stevie_trainer_total_timesteps", "Timesteps requested", labels, registry=self.registry
        )
        self.fps = Gauge(
            "stevie_trainer_fps", "Environment steps per second", labels, registry=self.registry
        )
        self.reward = Gauge(
            "stevie_trainer_episode_reward_mean",
            "Mean reward of recent training episodes",
            labels,
            registry=self.registry,
        )
        self.sharpe = Gauge(
            "stevie_trainer_best_validation_sharpe",
            "Best validation Sharpe so far",
            labels,
            registry=self.registry,
        )
        self.stage = Gauge(
            "stevie_trainer_curriculum_stage",
            "Curriculum stage (1 = active)",
            [*labels, "stage"],
            registry=self.registry,
        )
        self.fold = Gauge(
            "stevie_trainer_walk_forward_fold",
            "Walk-forward fold being trained (0-based; absent without walkForward)",
            labels,
            registry=self.registry,
        )
        self.folds = Gauge(
            "stevie_trainer_walk_forward_folds",
            "Walk-forward folds of the run",
            labels,
            registry=self.registry,
        )
        self._stage: str | None = None

    def serve(self, port: int | None = None) -> int | None:
        """Start the /metrics endpoint on ``port`` (default: $STEVIE_METRICS_PORT, else off)."""
        if port is None:
            env = os.environ.get(PORT_ENV)
            if not env:
                return None
            port = int(env)
        try:
            start_http_server(port, registry=self.registry)
        except OSError as err:  # metrics are an aid: never fail a training run for them
            print(f"metrics server not started on :{port}: {err}", file=sys.stderr)
            return None
        return port

    def update(self, progress: dict[str, Any]) -> None:
        run = self.run
        self.timesteps.labels(run).set(progress["timesteps"])
        self.total.labels(run).set(progress["total_timesteps"])
        self.fps.labels(run).set(progress["fps"])
        if progress.get("episode_reward_mean") is not None:
            self.reward.labels(run).set(progress["episode_reward_mean"])
        if progress.get("best_validation_sharpe") is not None:
            self.sharpe.labels(run).set(progress["best_validation_sharpe"])
        fold = progress.get("fold")
        if fold is not None:
            self.fold.labels(run).set(fold["index"])
            self.folds.labels(run).set(fold["count"])
        stage = progress.get("stage")
        if stage != self._stage:
            if self._stage is not None:
                self.stage.labels(run, self._stage).set(0)
            if stage is not None:
                self.stage.labels(run, stage).set(1)
            self._stage = stage
