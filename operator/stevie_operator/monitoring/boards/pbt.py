"""Stevie / PBT: each population's fitness per member over time, exploits, intervals
completed and how long an interval takes (p50/p95)."""

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

FITNESS = f"stevie_operator_pbt_member_fitness{{{RES}}}"
INTERVALS = f"stevie_operator_pbt_intervals_completed{{{RES}}}"
EXPLOITS = f"stevie_operator_pbt_exploits_total{{{RES}}}"
DURATION = "stevie_operator_pbt_interval_duration_seconds"
LAST = f"stevie_operator_pbt_last_interval_timestamp_seconds{{{RES}}}"  # while training
BY = "namespace, name"


def _board() -> Dashboard:
    """The board with its variables: the namespace, then the PBTPopulations in it."""
    return board(
        "stevie-pbt",
        "Stevie / PBT",
        "Population-based training: member fitness, exploits and interval durations.",
        label_variable(
            "namespace", "Namespace", "stevie_operator_pbt_intervals_completed", "namespace"
        ),
        label_variable(
            "name",
            "PBTPopulation",
            'stevie_operator_pbt_intervals_completed{namespace=~"$namespace"}',
            "name",
        ),
    )


def _population(layout: Layout) -> None:
    """Each population now: intervals, exploits, best fitness, time since an interval."""
    layout.row(
        "Population",
        stat(
            "Intervals completed",
            "Member intervals completed, per population.",
            "short",
            [Q(f"sum by ({BY}) ({INTERVALS})", "{{namespace}}/{{name}}")],
            width=6,
        ),
        stat(
            "Exploits",
            "Exploit decisions (a member copied a better one) since the operator started.",
            "short",
            [Q(f"sum by ({BY}) ({EXPLOITS})", "{{namespace}}/{{name}}")],
            width=6,
        ),
        stat(
            "Best fitness",
            "The best member's latest validation fitness, per population.",
            "none",
            [Q(f"max by ({BY}) ({FITNESS})", "{{namespace}}/{{name}}")],
            width=6,
        ),
        stat(
            "Since last interval",
            "Time since an interval of the population last completed (training populations "
            "only: the SteviePBTStalled alert fires when it grows too long).",
            "s",
            [Q(f"time() - max by ({BY}) ({LAST})", "{{namespace}}/{{name}}")],
            width=6,
        ),
    )


def _fitness(layout: Layout) -> None:
    """Every member's fitness over time, where exploits show as jumps."""
    layout.row(
        "Fitness",
        timeseries(
            "Fitness per member",
            "Latest validation fitness of each member: exploits show as a member jumping "
            "to another's level.",
            "none",
            [Q(FITNESS, "{{name}} member {{member}}")],
            steps=True,
            width=24,
            height=9,
        ),
    )


def _intervals(layout: Layout) -> None:
    """Progress over time: intervals completed, exploits and interval durations."""
    layout.row(
        "Intervals",
        timeseries(
            "Intervals completed",
            "Member intervals completed, per population.",
            "short",
            [Q(f"sum by ({BY}) ({INTERVALS})", "{{namespace}}/{{name}}")],
            min_val=0,
            steps=True,
            width=8,
        ),
        timeseries(
            "Exploits",
            "Exploit decisions per rate interval, per population.",
            "short",
            [
                Q(
                    f"sum by ({BY}) (increase({EXPLOITS}[$__rate_interval]))",
                    "{{namespace}}/{{name}}",
                )
            ],
            min_val=0,
            width=8,
        ),
        timeseries(
            "Interval duration",
            "p50 and p95 wall time of completed member intervals (Job start to completion).",
            "s",
            percentiles((0.5, 0.95), DURATION, RES, BY, "{{name}}"),
            min_val=0,
            width=8,
        ),
    )


def build() -> Dashboard:
    """The PBT board: the populations now, their members' fitness, their intervals.

    The calls' order is the board's: the Layout numbers rows and panels as they come.
    """
    layout = Layout(_board())
    _population(layout)
    _fitness(layout)
    _intervals(layout)
    return layout.dashboard
