"""Open Inference Protocol v2 (KServe v2 JSON) for the ensemble: tensors in, tensors out.

Inputs: ``ohlcv`` FP64 (or FP32) [N, 5] (open, high, low, close, volume) or [N, 4], rows
oldest first, ``data`` row-major (flat, or nested rows); optional ``time`` [N], INT64 unix
seconds or BYTES ISO-8601 strings (without it the bars are taken in the order given);
optional ``account`` FP64 [5]: position, weight, unrealisedReturn, barsInPosition, drawdown,
or [6]: and barsSinceTargetChange (what the minimum hold needs; see schemas.AccountIn).
Outputs: ``action`` (the target to hold, after the rules), ``confidence``, ``consensus`` FP64
[1], ``votes``, ``weights`` FP64 [members], and ``proposed`` (the vote), ``trade`` and
``held`` (1.0 or 0.0) FP64 [1]; ``outputs`` in the request picks some of them. Why the rules
changed the vote is the response's ``parameters.reason``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from stevie_trainer.serving import bars as bars_mod
from stevie_trainer.serving.bars import BarError, Bars
from stevie_trainer.serving.schemas import (
    InferInput,
    InferOutput,
    InferRequest,
    ModelMetadata,
    TensorMetadata,
)
from stevie_trainer.serving.service import ServiceError

if TYPE_CHECKING:
    from stevie_trainer.ensemble.agent import AccountState
    from stevie_trainer.ensemble.voting import Decision
    from stevie_trainer.serving.rules import Acted

__all__ = ["OUTPUTS", "metadata", "outputs", "parse"]

PLATFORM = "stevie-ensemble"
OUTPUTS = ("action", "confidence", "consensus", "votes", "weights", "proposed", "trade", "held")
_PER_MEMBER = ("votes", "weights")
_INPUTS = ("ohlcv", "time", "account")
_NUMERIC = ("FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32")


def metadata(name: str, version: str, members: int) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        versions=[version],
        platform=PLATFORM,
        inputs=[
            TensorMetadata(name="ohlcv", datatype="FP64", shape=[-1, 5]),
            TensorMetadata(name="time", datatype="INT64", shape=[-1]),
            TensorMetadata(name="account", datatype="FP64", shape=[-1]),
        ],
        outputs=[
            TensorMetadata(name=n, datatype="FP64", shape=[members if n in _PER_MEMBER else 1])
            for n in OUTPUTS
        ],
    )


def _bad(message: str, field: str, code: str = "invalid_tensor") -> ServiceError:
    return ServiceError(422, code, message, field=field)


def _array(tensor: InferInput) -> np.ndarray[Any, Any]:
    """The tensor's data as a float64 array of its declared shape."""
    if tensor.datatype not in _NUMERIC:
        raise _bad(f"input {tensor.name!r} must be numeric (got {tensor.datatype})", tensor.name)
    try:
        arr = np.asarray(tensor.data, dtype=np.float64)
    except (ValueError, TypeError):
        raise _bad(f"input {tensor.name!r}: data must be numbers", tensor.name) from None
    size = math.prod(tensor.shape)
    if any(d < 0 for d in tensor.shape) or arr.size != size:
        raise _bad(
            f"input {tensor.name!r}: {arr.size} values do not fill shape {tensor.shape}",
            tensor.name,
        )
    return arr.reshape(tensor.shape)


def _time(tensor: InferInput) -> list[str | int | float]:
    if tensor.datatype == "BYTES":
        if not all(isinstance(v, str) for v in tensor.data):
            raise _bad("input 'time' (BYTES) must hold ISO-8601 strings", "time")
        return list(tensor.data)
    values = _array(tensor).ravel()
    if tensor.datatype.startswith(("INT", "UINT")):
        return [int(v) for v in values]
    return [float(v) for v in values]


def _whole(value: float) -> bool:
    return value >= 0 and value == int(value)


def _account(tensor: InferInput) -> tuple[AccountState, int | None]:
    """The account and its bars since the target changed (None: not given)."""
    from stevie_trainer.ensemble.agent import AccountState

    values = _array(tensor).ravel()
    if values.size not in (5, 6) or not np.isfinite(values).all():
        raise _bad("input 'account' must be 5 or 6 finite numbers", "account")
    position, weight, unrealised, bars_in, drawdown = (float(v) for v in values[:5])
    since = float(values[5]) if values.size == 6 else 0.0
    if not -1.0 <= position <= 1.0 or drawdown > 0.0 or not (_whole(bars_in) and _whole(since)):
        raise _bad(
            "input 'account': position in [-1, 1], barsInPosition and barsSinceTargetChange "
            "whole numbers >= 0, drawdown <= 0",
            "account",
        )
    state = AccountState(position, weight, unrealised, int(bars_in), drawdown)
    return state, int(since) if values.size == 6 else None


def parse(request: InferRequest) -> tuple[Bars, AccountState | None, int | None, list[str]]:
    """The bars, the account (None: flat), its bars since the target changed (None: not
    given) and the outputs asked for."""
    by_name: dict[str, InferInput] = {}
    for tensor in request.inputs:
        if tensor.name not in _INPUTS:
            raise _bad(
                f"unknown input {tensor.name!r}; inputs are {', '.join(_INPUTS)}", tensor.name
            )
        by_name[tensor.name] = tensor
    if "ohlcv" not in by_name:
        raise _bad("input 'ohlcv' ([N, 5] or [N, 4] FP64) is required", "ohlcv")
    ohlcv = _array(by_name["ohlcv"])
    time = _time(by_name["time"]) if "time" in by_name else None
    try:
        bars = bars_mod.from_tensors(ohlcv, time)
    except BarError as err:
        raise ServiceError.of(err) from None
    account, since = _account(by_name["account"]) if "account" in by_name else (None, None)
    wanted = [o.name for o in request.outputs] if request.outputs else list(OUTPUTS)
    unknown = [n for n in wanted if n not in OUTPUTS]
    if unknown:
        raise _bad(f"unknown output(s) {unknown}; outputs are {', '.join(OUTPUTS)}", "outputs")
    return bars, account, since, wanted


def outputs(decision: Decision, acted: Acted, wanted: list[str]) -> list[InferOutput]:
    values: dict[str, list[float]] = {
        "action": [acted.target],
        "confidence": [decision.confidence],
        "consensus": [decision.consensus],
        "votes": list(decision.votes),
        "weights": list(decision.weights),
        "proposed": [decision.level],
        "trade": [float(acted.trade)],
        "held": [float(acted.held)],
    }
    return [
        InferOutput(name=n, shape=[len(values[n])], datatype="FP64", data=values[n]) for n in wanted
    ]
