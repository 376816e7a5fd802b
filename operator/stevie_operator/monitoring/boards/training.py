"""Stevie / Training: each trainer process (a TrainingRun's, a PBT interval's, an HPO
trial's): timesteps against the total, throughput, episode reward, best validation Sharpe
and the active curriculum stage."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from stevie_operator.monitoring.panels import (
    POD,
    RES,
    Layout,
    Q,
    board,
    label_variable,
    stat,
    state_timeline,
    timeseries,
)

TRAINER = f'{POD}, run=~"$run"'
LEGEND = "{{stevie_name}} {{pod}}"


def _board() -> Dashboard:
    """The board with its variables: the namespace, the resource, then its trainer runs."""
    return board(
        "stevie-training",
        "Stevie / Training",
        "Trainer processes (TrainingRuns, PBT intervals, HPO trials) as they train.",
        label_variable("namespace", "Namespace", "stevie_trainer_timesteps", "namespace"),
        label_variable(
            "name", "Resource", 'stevie_trainer_timesteps{namespace=~"$namespace"}', "stevie_name"
        ),
        label_variable(
            "run",
            "Run",
            'stevie_trainer_timesteps{namespace=~"$namespace", stevie_name=~"$name"}',
            "run",
        ),
    )


def _progress(layout: Layout) -> None:
    """How far each trainer process is: timesteps against its total."""
    layout.row(
        "Progress",
        timeseries(
            "Timesteps vs total",
            "Timesteps trained against the timesteps requested, per trainer process.",
            "short",
            [
                Q(f"stevie_trainer_timesteps{{{TRAINER}}}", f"trained {LEGEND}"),
                Q(f"stevie_trainer_total_timesteps{{{TRAINER}}}", f"total {LEGEND}"),
            ],
            min_val=0,
            width=16,
        ),
        stat(
            "TrainingRun progress",
            "Timesteps trained over totalTimesteps per TrainingRun: the operator's view, "
            "from the run's status.",
            "percentunit",
            [Q(f"stevie_operator_training_progress_ratio{{{RES}}}", "{{namespace}}/{{name}}")],
            width=8,
            height=8,
        ),
    )


def _learning(layout: Layout) -> None:
    """Whether it learns, and how fast: throughput, episode reward, best Sharpe."""
    layout.row(
        "Learning",
        timeseries(
            "Environment steps / s",
            "Training throughput of each process (environment steps per second).",
            "short",
            [Q(f"stevie_trainer_fps{{{TRAINER}}}", LEGEND)],
            min_val=0,
            width=8,
        ),
        timeseries(
            "Episode reward (mean)",
            "Mean reward of the recent training episodes.",
            "none",
            [Q(f"stevie_trainer_episode_reward_mean{{{TRAINER}}}", LEGEND)],
            width=8,
        ),
        timeseries(
            "Best validation Sharpe",
            "Best out-of-sample (validation split) Sharpe ratio so far.",
            "none",
            [Q(f"stevie_trainer_best_validation_sharpe{{{TRAINER}}}", LEGEND)],
            width=8,
        ),
    )


def _curriculum(layout: Layout) -> None:
    """Which curriculum stage each run is in."""
    layout.row(
        "Curriculum",
        state_timeline(
            "Curriculum stage",
            "Which curriculum stage each run is in (1 while the stage is active).",
            [
                Q(
                    "max by (stevie_name, run, stage) "
                    f"(stevie_trainer_curriculum_stage{{{TRAINER}}})",
                    "{{stevie_name}} {{run}} {{stage}}",
                )
            ],
        ),
    )


def build() -> Dashboard:
    """The Training board: progress, learning, then curriculum.

    The calls' order is the board's: the Layout numbers rows and panels as they come.
    """
    layout = Layout(_board())
    _progress(layout)
    _learning(layout)
    _curriculum(layout)
    return layout.dashboard
