"""Request and response bodies of the decision service (JSON, camelCase).

``POST /v1/decide`` takes the bars (oldest first) and optionally the account the ensemble
trades; the Open Inference Protocol v2 routes (``/v2/...``) take the same bars as tensors.
The answer is the vote acted on under the ensemble's rules, as its backtest acts on it
(:mod:`.rules`): the minimum hold (from ``barsSinceTargetChange``), the no-trade band (from
``weight``) and rebalancing.
Bars are a TypedDict, not a model: pydantic validates them from the JSON bytes in Rust
without building an object per bar (the engine wants arrays, not objects).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

__all__ = [
    "AccountIn",
    "BarIn",
    "DecideRequest",
    "DecideResponse",
    "ErrorBody",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "MemberStats",
    "MemberVote",
    "ModelMetadata",
    "StatsResponse",
    "TensorMetadata",
]


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", allow_inf_nan=False
    )


class BarIn(TypedDict):
    """One bar: ``time`` is an ISO-8601 string (no offset: UTC) or unix seconds. Other keys
    are ignored (checking them costs ~35 us a request; a misspelt field is missing instead:
    a required one is a 422, volume is needed only by members that observe it). NaN and
    infinities pass here: the bar checks name them with the bar's index."""

    __pydantic_config__ = ConfigDict(allow_inf_nan=True)  # type: ignore[misc]

    time: str | int | float
    open: float
    high: float
    low: float
    close: float
    volume: NotRequired[float | None]


class AccountIn(_Camel):
    """The account the ensemble trades, as its members observe it (default: flat)."""

    position: float = Field(
        default=0.0, ge=-1.0, le=1.0, description="The target position held (0: flat)."
    )
    weight: float = Field(
        default=0.0,
        description="What the position weighs in equity now. The members observe it, and "
        "the no-trade band and rebalancing compare the target with it (the backtest "
        "compares at the fill's open, after the gap, which a decision at the close cannot "
        "know: an order near the band's edge can go the other way there).",
    )
    unrealised_return: float = Field(
        default=0.0, description="Equity / equity at entry - 1 (0 when flat)."
    )
    bars_in_position: int = Field(default=0, ge=0, description="Bars since the position opened.")
    drawdown: float = Field(default=0.0, le=0.0, description="Equity / peak equity - 1 (<= 0).")
    bars_since_target_change: int | None = Field(
        default=None,
        ge=0,
        description="Bars since the target position last changed (0: at the last bar's "
        "open; a margin close-out is a change to 0). The minimum hold needs it: the service "
        "keeps no state between requests. Unset: no hold running, as at the start of a "
        "backtest (the answer's reason says so when the ensemble has a hold).",
    )


class DecideRequest(_Camel):
    """``POST /v1/decide``: the bars, oldest first, and the account (default flat)."""

    bars: list[BarIn] = Field(min_length=1, description="OHLC(V) bars, oldest first.")
    account: AccountIn | None = Field(default=None, description="The account; default flat.")


class MemberVote(_Camel):
    name: str = Field(description="Member name.")
    vote: float = Field(description="The member's own vote (a target position level).")
    weight: float = Field(description="Its weight in this decision (weights sum to 1).")


class DecideResponse(_Camel):
    """The ensemble's decision after the close of the last bar."""

    action: float = Field(
        description="The target position to hold: the vote (proposed), unless the minimum "
        "hold or the no-trade band keeps the account's current one."
    )
    proposed: float = Field(description="The level the ensemble voted for, before the rules.")
    trade: bool = Field(
        description="Whether an order is placed (at the next open): the weight goes to "
        "action. False: the target is kept and the weight within the rebalancing rule, or "
        "the no-trade band dropped the order (not traded)."
    )
    held: bool = Field(
        description="The minimum hold was running: the target could not change (action is "
        "the account's position)."
    )
    hold_left: int = Field(
        description="Decisions after this one that cannot change the target (0: none)."
    )
    reason: str | None = Field(
        description="Why action is not the vote, or no order is placed (hold, band), or "
        "that the hold could not be checked; null when the vote is acted on as it is."
    )
    confidence: float = Field(description="The ensemble's probability of that level.")
    consensus: float = Field(description="Weight share of the members whose vote it is.")
    members: list[MemberVote] = Field(description="Each member's vote and weight.")
    levels: list[float] = Field(description="The position levels the ensemble chooses from.")
    distribution: list[float] = Field(description="The ensemble's probability per level.")
    method: str = Field(description="The voting method.")
    version: str = Field(description="Ensemble version (hash of models, weights, method).")
    request_id: str = Field(description="This request's id (X-Request-Id when given).")
    bar_time: str | None = Field(description="ISO-8601 UTC time of the last bar.")
    bars: int = Field(description="Bars received.")


class MemberStats(_Camel):
    name: str
    agreement: float = Field(
        description="Share of decisions whose ensemble vote (proposed) is the member's own."
    )
    contribution: float = Field(description="The member's mean weight over the decisions.")


class StatsResponse(_Camel):
    """``GET /v1/stats``: what this replica decided since it started."""

    name: str
    version: str
    method: str
    since: str = Field(description="When this replica started (ISO-8601 UTC).")
    decisions: int
    actions: dict[str, int] = Field(description="Decisions per action level (after the rules).")
    held: int = Field(description="Decisions taken while the minimum hold was running.")
    banded: int = Field(description="Orders the no-trade band dropped.")
    mean_consensus: float | None
    mean_confidence: float | None
    members: list[MemberStats]
    features: str = Field(description="'fast' (checked equal to the training code) or 'reference'.")
    log: dict[str, Any] | None = Field(description="The decision log's counters, when logging.")


class ErrorBody(BaseModel):
    """Every error: ``error`` (one line, as the Open Inference Protocol has it) and where."""

    error: str
    code: str
    field: str | None = None
    index: int | None = None
    needed: int | None = None
    request_id: str | None = Field(default=None, alias="requestId")


# ----------------------------------------------------------------------------- OIP v2

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip


class InferInput(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=True)

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """``POST /v2/models/{name}/infer`` (KServe v2 JSON): ``ohlcv`` FP64 [N, 5] or [N, 4],
    optional ``time`` INT64 (unix seconds) or BYTES (ISO-8601) [N], optional ``account``
    FP64 [5] (position, weight, unrealisedReturn, barsInPosition, drawdown) or [6] (and
    barsSinceTargetChange)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[InferOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
