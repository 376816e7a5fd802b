"""Building blocks shared by the four kinds: base model, metadata, conditions, status, ParamSpec."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "Condition",
    "ConditionStatus",
    "MetricSummary",
    "ObjectMeta",
    "ParamSpec",
    "ParamValue",
    "StatusBase",
    "StevieModel",
    "utcnow",
]

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_CONDITION_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")

ConditionStatus = Literal["True", "False", "Unknown"]
"""The three values of metav1.Condition.status."""

ParamValue = bool | int | float | str
"""A hyperparameter value: the choices of a categorical ParamSpec, best parameters, ..."""


def utcnow() -> datetime:
    """Now, timezone-aware in UTC, truncated to seconds (as Kubernetes stores times)."""
    return datetime.now(UTC).replace(microsecond=0)


class StevieModel(BaseModel):
    """Base of every Stevie model: snake_case in Python, camelCase in YAML/JSON, no unknown keys."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
    )

    def to_dict(self) -> dict[str, Any]:
        """The Kubernetes (camelCase, JSON-compatible) form, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(StevieModel):
    """Kubernetes object metadata (the fields Stevie reads; other metadata is kept as is)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        description="Name of the resource, unique in its namespace: a DNS-1123 subdomain "
        "(lowercase letters, digits, '-' and '.', at most 253 characters). Child Jobs are "
        "named after it."
    )
    namespace: str | None = Field(
        default=None, description="Namespace of the resource (default: the current namespace)."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels; they are copied onto child Jobs and pods."
    )
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    uid: str | None = Field(default=None, description="Set by Kubernetes: unique id.")
    generation: int | None = Field(
        default=None, description="Set by Kubernetes: incremented on every spec change."
    )
    resource_version: str | None = Field(
        default=None, description="Set by Kubernetes: version for optimistic concurrency."
    )
    creation_timestamp: str | None = Field(
        default=None, description="Set by Kubernetes: creation time (RFC 3339)."
    )

    @field_validator("name")
    @classmethod
    def _dns1123(cls, value: str) -> str:
        if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
            raise ValueError(
                f"{value!r} is not a valid name: use a DNS-1123 subdomain (lowercase letters, "
                "digits, '-' and '.', starting and ending with a letter or digit, at most 253 "
                "characters)"
            )
        return value


class Condition(StevieModel):
    """One condition of a resource, shaped exactly like Kubernetes' metav1.Condition."""

    model_config = ConfigDict(
        json_schema_extra={
            "required": ["type", "status", "lastTransitionTime", "reason", "message"]
        }
    )

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Condition type in CamelCase: Ready, Progressing, Degraded, Succeeded, "
        "Failed, or a kind-specific one.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the resource that this condition was set from.",
    )
    last_transition_time: datetime = Field(
        default_factory=utcnow,
        description="Last time the condition's status changed (RFC 3339).",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        description="Programmatic reason for the last transition, in CamelCase (e.g. "
        "JobSucceeded, InvalidSpec).",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details about the last transition (may be empty).",
    )

    @field_validator("reason")
    @classmethod
    def _camel_reason(cls, value: str) -> str:
        if not _CONDITION_REASON.match(value):
            raise ValueError(
                f"{value!r} is not a valid reason: use CamelCase letters, digits, '_', ',' "
                "or ':', starting with a letter"
            )
        return value


class StatusBase(StevieModel):
    """Fields every status has. Kinds narrow `phase` to their own phases."""

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the spec this status was computed from.",
    )
    phase: str | None = Field(default=None, description="Coarse state of the resource.")
    message: str | None = Field(
        default=None, description="Human-readable summary of the current state."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Observations of the resource's state (Ready, Progressing, Degraded and "
        "kind-specific), with the metav1.Condition fields; one entry per type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )

    def get_condition(self, type_: str) -> Condition | None:
        """The condition of that type, if any."""
        return next((c for c in self.conditions if c.type == type_), None)

    def set_condition(
        self,
        type_: str,
        status: ConditionStatus,
        reason: str,
        message: str = "",
        observed_generation: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Add or update a condition, keeping lastTransitionTime unless the status changes.

        Returns True when the condition's status changed (or the condition is new).
        """
        current = self.get_condition(type_)
        changed = current is None or current.status != status
        new = Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            observed_generation=observed_generation,
            last_transition_time=(
                (now or utcnow()) if changed or current is None else current.last_transition_time
            ),
        )
        if current is None:
            self.conditions.append(new)
        else:
            self.conditions[self.conditions.index(current)] = new
        return changed


class MetricSummary(StevieModel):
    """Headline metrics of a policy on one data split (all optional: filled when known)."""

    sharpe: float | None = Field(
        default=None, description="Annualised Sharpe ratio (annualised by the bar frequency)."
    )
    sortino: float | None = Field(default=None, description="Annualised Sortino ratio.")
    total_return: float | None = Field(
        default=None, description="Total return over the split, as a fraction (0.1 = +10%)."
    )
    max_drawdown: float | None = Field(
        default=None,
        description="Maximum drawdown as a positive fraction of peak equity (0.2 = -20%).",
    )
    win_rate: float | None = Field(
        default=None, description="Fraction of round-trip trades that made money (0..1)."
    )
    trades: int | None = Field(default=None, ge=0, description="Number of round-trip trades.")
    orders: int | None = Field(
        default=None, ge=0, description="Steps that traded (a fill or a close-out)."
    )
    turnover: float | None = Field(
        default=None,
        ge=0,
        description="Notional traded (buys and sells) as a multiple of the mean equity over "
        "the split.",
    )
    total_cost: float | None = Field(
        default=None,
        ge=0,
        description="Fees, slippage and borrow paid, as a fraction of the starting equity.",
    )
    cost_share: float | None = Field(
        default=None,
        description="Costs as a share of the gross return; null when the gross return is <= 0.",
    )


class ParamSpec(StevieModel):
    """Prior of one hyperparameter: a numeric range (optionally log-scaled) or a set of choices."""

    type: Literal["float", "int", "categorical"] = Field(
        description="float or int: a range [low, high]; categorical: one of `choices`."
    )
    low: float | None = Field(
        default=None, description="Lower bound (inclusive) of a float or int range."
    )
    high: float | None = Field(
        default=None, description="Upper bound (inclusive) of a float or int range."
    )
    log: bool = Field(
        default=False,
        description="Sample (and perturb) on a logarithmic scale; needs low > 0.",
    )
    choices: list[Annotated[ParamValue, Field(description="One choice.")]] | None = Field(
        default=None,
        description="Values of a categorical hyperparameter (numbers, strings or booleans).",
    )

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("type categorical needs a non-empty choices list")
            if self.low is not None or self.high is not None:
                raise ValueError("type categorical takes choices, not low/high")
            if self.log:
                raise ValueError("log applies to float and int ranges, not to categorical")
            return self
        if self.choices is not None:
            raise ValueError(f"type {self.type} takes low and high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"type {self.type} needs both low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if not self.low < self.high:
            raise ValueError(f"low must be < high (got low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got low={self.low})")
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError(
                f"type int needs integer low and high (got low={self.low}, high={self.high})"
            )
        return self

    def candidate_values(self) -> list[ParamValue]:
        """The values that bound this prior (low and high, or every choice): for validation."""
        if self.type == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def contains(self, value: ParamValue) -> bool:
        """Whether a value lies in this prior."""
        if self.type == "categorical":
            return value in (self.choices or [])
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high
