"""Stevie / Ensemble: the decision service of each Ensemble: readiness, requests by route
and status, p50/p99 latency, the 5xx share, decisions by action, consensus and confidence,
and each member's weight."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel

from stevie_operator.monitoring.panels import (
    POD,
    Layout,
    Q,
    board,
    label_variable,
    mean,
    percentiles,
    rate,
    stat,
    timeseries,
)

REQUESTS = "stevie_serve_requests_total"
LATENCY = "stevie_serve_request_duration_seconds"
# Requests that are decisions: a 503 of /v2/health/ready is the readiness probe doing its
# job while the models load, and /metrics is Prometheus (the same filter as the alert's).
SERVED = f'{POD}, route!~"/metrics|/v2/health/.*"'
SERVER_ERRORS = f'{SERVED}, status=~"5.."'
# 5xx over all served requests; "or vector(0)" reads 0 while no request failed (the counter
# has no 5xx series until one does).
ERROR_SHARE = (
    f"(sum ({rate(REQUESTS, SERVER_ERRORS)}) or vector(0)) / sum ({rate(REQUESTS, SERVED)})"
)


def _share_panel(title: str, description: str, histogram: str) -> TimeseriesPanel:
    """Low tail, median and mean of a share histogram (consensus, confidence)."""
    return timeseries(
        title,
        description,
        "percentunit",
        [
            *percentiles((0.1, 0.5), histogram, POD),
            Q(mean(histogram, POD), "mean"),
        ],
        min_val=0,
        max_val=1,
    )


def _board() -> Dashboard:
    """The board with its variables: the namespace, then the Ensembles in it."""
    return board(
        "stevie-ensemble",
        "Stevie / Ensemble",
        "The Ensembles' decision services: traffic, latency, errors and decisions.",
        label_variable("namespace", "Namespace", "stevie_serve_ready", "namespace"),
        label_variable(
            "name", "Ensemble", 'stevie_serve_ready{namespace=~"$namespace"}', "stevie_name"
        ),
    )


def _service(layout: Layout) -> None:
    """Now, at a glance: ready pods, what each Ensemble serves, traffic and the 5xx share."""
    layout.row(
        "Service",
        stat(
            "Ready pods",
            "Decision-service pods with their models loaded, per Ensemble.",
            "short",
            [Q(f"sum by (stevie_name) (stevie_serve_ready{{{POD}}})", "{{stevie_name}}")],
        ),
        stat(
            "Serving",
            "The ensemble version and voting method each Ensemble serves.",
            "none",
            [
                Q(
                    f"max by (name, version, method) (stevie_ensemble_info{{{POD}}})",
                    "{{name}} {{version}} ({{method}})",
                )
            ],
            names_only=True,
        ),
        stat(
            "Requests / s",
            "All HTTP requests per second.",
            "reqps",
            [Q(f"sum ({rate(REQUESTS, POD)})", "requests")],
        ),
        stat(
            "5xx share", "Server errors over all requests.", "percentunit", [Q(ERROR_SHARE, "5xx")]
        ),
    )


def _requests(layout: Layout) -> None:
    """Traffic over time: requests by route and status, latency, errors, decisions."""
    layout.row(
        "Requests",
        timeseries(
            "Requests / s by route and status",
            "HTTP requests per second, by route template and status code.",
            "reqps",
            [Q(f"sum by (route, status) ({rate(REQUESTS, POD)})", "{{route}} {{status}}")],
            min_val=0,
        ),
        timeseries(
            "Latency",
            "p50 and p99 request latency by route (first byte in to last byte out).",
            "s",
            percentiles((0.99, 0.5), LATENCY, POD, "route", "{{route}}"),
            min_val=0,
        ),
        timeseries(
            "Errors",
            "Share of requests answered with a 5xx status.",
            "percentunit",
            [Q(ERROR_SHARE, "5xx share")],
            min_val=0,
        ),
        timeseries(
            "Decisions / s by action",
            "Decisions per second, by the action level decided.",
            "ops",
            [
                Q(
                    f"sum by (action) ({rate('stevie_ensemble_decisions_total', POD)})",
                    "action {{action}}",
                )
            ],
            stack=True,
            min_val=0,
        ),
    )


def _decisions(layout: Layout) -> None:
    """What the ensemble decides: how much its members agree, how sure it is, who weighs."""
    layout.row(
        "Decisions",
        _share_panel(
            "Consensus",
            "Weight share of the members voting for the decision (1 = unanimous).",
            "stevie_ensemble_consensus",
        ),
        _share_panel(
            "Confidence",
            "The ensemble's probability of the decision it took.",
            "stevie_ensemble_confidence",
        ),
        timeseries(
            "Member weights",
            "Each member's weight in the last decision, per Ensemble.",
            "none",
            [
                Q(
                    f"avg by (stevie_name, member) (stevie_ensemble_member_weight{{{POD}}})",
                    "{{stevie_name}} {{member}}",
                )
            ],
            min_val=0,
            width=24,
        ),
    )


def build() -> Dashboard:
    """The Ensemble board: one row per concern, top to bottom.

    The calls' order is the board's: the Layout numbers rows and panels as they come.
    """
    layout = Layout(_board())
    _service(layout)
    _requests(layout)
    _decisions(layout)
    return layout.dashboard
