"""Stevie / HPO: each study's trials by state, best value over time, trial durations and
the share of trials pruned."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from stevie_operator.monitoring.panels import (
    RES,
    Layout,
    Q,
    board,
    label_variable,
    percentiles,
    stat,
    timeseries,
)

TRIALS = "stevie_operator_hpo_trials"
BEST = f"stevie_operator_hpo_best_value{{{RES}}}"
DURATION = "stevie_operator_hpo_trial_duration_seconds"
BY = "namespace, name"
# Pruned over finished trials (running ones have no outcome yet); clamp_min keeps a study
# with none finished at 0 rather than NaN.
PRUNED_SHARE = (
    f'sum by ({BY}) ({TRIALS}{{{RES}, state="pruned"}})'
    f' / clamp_min(sum by ({BY}) ({TRIALS}{{{RES}, state=~"completed|pruned|failed"}}), 1)'
)


def _board() -> Dashboard:
    """The board with its variables: the namespace, then the HPOStudies in it."""
    return board(
        "stevie-hpo",
        "Stevie / HPO",
        "Hyperparameter studies: trials by state, best value, durations, pruning.",
        label_variable("namespace", "Namespace", TRIALS, "namespace"),
        label_variable("name", "HPOStudy", f'{TRIALS}{{namespace=~"$namespace"}}', "name"),
    )


def _now(layout: Layout) -> None:
    """Each study now: its trials by state, best value and pruned share."""
    layout.row(
        "Now",
        stat(
            "Trials by state",
            "Trials of the selected studies, by state.",
            "short",
            [Q(f"sum by (state) ({TRIALS}{{{RES}}})", "{{state}}")],
            width=10,
        ),
        stat(
            "Best value",
            "The best trial's (first) objective value, per study.",
            "none",
            [Q(BEST, "{{namespace}}/{{name}}")],
            width=8,
        ),
        stat(
            "Pruned share",
            "Pruned trials over finished trials, per study.",
            "percentunit",
            [Q(PRUNED_SHARE, "{{namespace}}/{{name}}")],
            width=6,
        ),
    )


def _over_time(layout: Layout) -> None:
    """The same over time, with how long trials take."""
    layout.row(
        "Over time",
        timeseries(
            "Trials by state",
            "Trials of the selected studies by state, stacked.",
            "short",
            [Q(f"sum by (state) ({TRIALS}{{{RES}}})", "{{state}}")],
            stack=True,
            min_val=0,
        ),
        timeseries(
            "Best value",
            "The best trial's objective value over time, per study.",
            "none",
            [Q(BEST, "{{namespace}}/{{name}}")],
            steps=True,
        ),
        timeseries(
            "Trial duration",
            "p50 and p95 wall time of trials finished recently, by final state.",
            "s",
            percentiles((0.5, 0.95), DURATION, RES, "state", "{{state}}"),
            min_val=0,
        ),
        timeseries(
            "Pruned share",
            "Pruned trials over finished trials, per study.",
            "percentunit",
            [Q(PRUNED_SHARE, "{{namespace}}/{{name}}")],
            min_val=0,
            max_val=1,
        ),
    )


def build() -> Dashboard:
    """The HPO board: the studies now, then over time.

    The calls' order is the board's: the Layout numbers rows and panels as they come.
    """
    layout = Layout(_board())
    _now(layout)
    _over_time(layout)
    return layout.dashboard
