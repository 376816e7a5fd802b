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


def build() -> Dashboard:
    variables = (
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
    layout = Layout(
        board(
            "stevie-pbt",
            "Stevie / PBT",
            "Population-based training: member fitness, exploits and interval durations.",
            *variables,
        )
    )
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
    return layout.dashboard
