"""Status helpers shared by the reconcilers: condition sets, Events, merge patches, parsing
what pods wrote.

Every kind has the metav1.Condition types Ready, Progressing, Degraded, Succeeded and Failed,
set from its phase (:func:`phase_conditions`); lastTransitionTime only moves when a
condition's status changes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from stevie_api.common import MetricSummary, StatusBase

__all__ = [
    "CONDITION_TYPES",
    "INVALID_SPEC",
    "TERMINAL",
    "Event",
    "count",
    "finite",
    "merge_patch",
    "metric_summary",
    "notes_line",
    "parse_time",
    "phase_conditions",
    "probability",
    "set_conditions",
]

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "Succeeded", "Failed")
TERMINAL = ("Succeeded", "Failed")
"""Phases a resource does not leave by itself."""
INVALID_SPEC = "InvalidSpec"
"""The reason of a Failed phase whose spec does not validate (fix the spec to retry)."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the resource."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def set_conditions(
    status: StatusBase,
    values: Mapping[str, tuple[bool, str, str]],
    generation: int | None,
    now: datetime,
) -> None:
    """Set each condition type to (is true, reason, message); lastTransitionTime only moves
    when a condition's status changes."""
    for type_, (true, reason, message) in values.items():
        status.set_condition(
            type_,
            "True" if true else "False",
            reason,
            message,
            observed_generation=generation,
            now=now,
        )


def phase_conditions(
    phase: str, reason: str, message: str, degraded: tuple[str, str] | None
) -> dict[str, tuple[bool, str, str]]:
    """The five conditions of a Pending/Running/Succeeded/Failed phase, all with the phase's
    reason and message; ``degraded`` (reason, message) sets Degraded in any phase."""
    ok = ("AsExpected", "")
    deg = degraded or ((reason, message) if phase == "Failed" else ok)
    return {
        # Serving (an Ensemble whose decision service is up) is ready, and not finished.
        "Ready": (phase in ("Succeeded", "Serving"), reason, message),
        "Progressing": (phase in ("Pending", "Running"), reason, message),
        "Degraded": (phase == "Failed" or degraded is not None, *deg),
        "Succeeded": (phase == "Succeeded", reason, message),
        "Failed": (phase == "Failed", reason, message),
    }


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new`` (``{}`` if equal)."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for null, NaN, infinities and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def metric_summary(data: Any) -> MetricSummary | None:
    """The headline metrics of a result.json performance dict (extra keys ignored)."""
    if not isinstance(data, Mapping):
        return None
    # The trainer's metrics follow empyrical (drawdown <= 0); the API states a positive fraction.
    drawdown = finite(data.get("max_drawdown", data.get("maxDrawdown")))
    return MetricSummary(
        sharpe=finite(data.get("sharpe")),
        sortino=finite(data.get("sortino")),
        total_return=finite(data.get("total_return", data.get("totalReturn"))),
        max_drawdown=None if drawdown is None else abs(drawdown),
        win_rate=finite(data.get("win_rate", data.get("winRate"))),
        trades=count(data.get("trades")),
        orders=count(data.get("orders")),
        turnover=_non_negative(data.get("turnover")),
        total_cost=_non_negative(data.get("total_cost", data.get("totalCost"))),
        cost_share=finite(data.get("cost_share", data.get("costShare"))),
    )


def count(value: Any) -> int | None:
    """A JSON count as an int; None for negatives, booleans and non-numbers."""
    number = finite(value)
    return int(number) if number is not None and number >= 0 else None


def probability(value: Any) -> float | None:
    """A JSON probability (a DSR, a PBO) as a float in [0, 1]; None otherwise."""
    number = finite(value)
    return number if number is not None and 0.0 <= number <= 1.0 else None


def notes_line(value: Any) -> str | None:
    """A report's list of notes as one status line ("; "-joined); None if there are none."""
    if not isinstance(value, list):
        return None
    return "; ".join(n for n in value if isinstance(n, str)) or None


def _non_negative(value: Any) -> float | None:
    """A finite number >= 0 (a turnover, a cost), else None: a bad value never fails the
    status patch (the field has ge=0)."""
    number = finite(value)
    return number if number is not None and number >= 0 else None


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes (RFC 3339) timestamp, or None."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
