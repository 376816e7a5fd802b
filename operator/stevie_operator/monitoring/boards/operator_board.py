"""Stevie / Operator: reconciles (rate, errors, p95 duration), resources by kind and phase,
trainer Job failures and each resource's best validation Sharpe.

Reconcile and resource-count series have no namespace of their own (the operator is one
process for all namespaces): ``$namespace`` filters the per-resource panels only."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from stevie_operator.monitoring.panels import (
    Layout,
    Q,
    board,
    label_variable,
    percentiles,
    rate,
    stat,
    timeseries,
)

KIND = 'kind=~"$kind"'
NS_KIND = f'namespace=~"$namespace", {KIND}'  # series of resources (namespace/name labels)
COUNT = "stevie_operator_reconcile_duration_seconds_count"
DURATION = "stevie_operator_reconcile_duration_seconds"
# Counters with labels have no series until first incremented: "or 0 per kind" draws a flat
# zero for each kind that reconciles, rather than "No data", while nothing failed.
ZERO_PER_KIND = f"0 * sum by (kind) ({rate(COUNT, KIND)})"


def _board() -> Dashboard:
    """The board with its variables: the namespace (per-resource panels only), the kind."""
    return board(
        "stevie-operator",
        "Stevie / Operator",
        "The operator's reconciles and the resources it knows, by kind and phase.",
        # Every reconciled resource has a Job-failures series (at 0 until one fails).
        label_variable("namespace", "Namespace", "stevie_operator_job_failures_total", "namespace"),
        label_variable("kind", "Kind", "stevie_operator_resources", "kind"),
    )


def _reconciles(layout: Layout) -> None:
    """How often the operator reconciles, how often that fails, how long it takes."""
    layout.row(
        "Reconciles",
        timeseries(
            "Reconciles / s",
            "Reconciles run per second, by kind (each create, update, timer tick and child "
            "event of a resource runs one).",
            "ops",
            [Q(f"sum by (kind) ({rate(COUNT, KIND)})", "{{kind}}")],
            width=8,
        ),
        timeseries(
            "Reconcile errors / s",
            "Reconciles that raised (kopf retries them), by kind.",
            "ops",
            [
                Q(
                    f"sum by (kind) ({rate('stevie_operator_reconcile_errors_total', KIND)})"
                    f" or {ZERO_PER_KIND}",
                    "{{kind}}",
                )
            ],
            min_val=0,
            width=8,
        ),
        timeseries(
            "Reconcile duration",
            "p95 and p50 of the time one reconcile takes, by kind.",
            "s",
            percentiles((0.95, 0.5), DURATION, KIND, "kind", "{{kind}}"),
            min_val=0,
            width=8,
        ),
    )


def _resources(layout: Layout) -> None:
    """The resources the operator knows, by kind and phase, now and over time."""
    layout.row(
        "Resources",
        stat(
            "Resources by phase",
            "Resources of the selected kinds, by phase, now.",
            "short",
            [Q(f"sum by (phase) (stevie_operator_resources{{{KIND}}})", "{{phase}}")],
            width=8,
            height=8,
        ),
        timeseries(
            "Resources by kind and phase",
            "Resources known to the operator over time, stacked by kind and phase.",
            "short",
            [
                Q(
                    f"sum by (kind, phase) (stevie_operator_resources{{{KIND}}})",
                    "{{kind}} {{phase}}",
                )
            ],
            stack=True,
            min_val=0,
            width=16,
        ),
    )


def _results(layout: Layout) -> None:
    """What the resources produce: failed trainer Jobs and best validation Sharpe."""
    layout.row(
        "Results",
        timeseries(
            "Trainer Job failures",
            "Child Jobs (trainings, intervals, trials) seen failed per rate interval, by resource.",
            "short",
            [
                Q(
                    "sum by (kind, namespace, name) "
                    f"(increase(stevie_operator_job_failures_total{{{NS_KIND}}}[$__rate_interval]))",
                    "{{kind}} {{namespace}}/{{name}}",
                )
            ],
            min_val=0,
        ),
        timeseries(
            "Best validation Sharpe",
            "Best validation Sharpe of each resource, as its status reports it.",
            "none",
            [
                Q(
                    f"stevie_operator_best_validation_sharpe{{{NS_KIND}}}",
                    "{{kind}} {{namespace}}/{{name}}",
                )
            ],
        ),
    )


def build() -> Dashboard:
    """The Operator board: reconciles, then resources, then their results.

    The calls' order is the board's: the Layout numbers rows and panels as they come.
    """
    layout = Layout(_board())
    _reconciles(layout)
    _resources(layout)
    _results(layout)
    return layout.dashboard
