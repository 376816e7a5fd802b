"""Open Inference Protocol v2 (KServe v2 JSON) for the ensemble: tensors in, tensors out.

Inputs: ``ohlcv`` FP64 (or FP32) [N, 5] (open, high, low, close, volume) or [N, 4], rows
oldest first, ``data`` row-major (flat, or nested rows); optional ``time`` [N], INT64 unix
seconds or BYTES ISO-8601 strings (without it the bars are taken in the order given);
optional ``account`` FP64 [5]: position, weight, unrealisedReturn, barsInPosition, drawdown.
Outputs: ``action``, ``confidence``, ``consensus`` FP64 [1] and ``votes``, ``weights`` FP64
[members]; ``outputs`` in the request picks some of them.
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

__all__ = ["OUTPUTS", "metadata", "outputs", "parse"]

PLATFORM = "stevie-ensemble"
OUTPUTS = ("action", "confidence", "consensus", "votes", "weights")
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
            TensorMetadata(name="account", datatype="FP64", shape=[5]),
        ],
        outputs=[
            *(TensorMetadata(name=n, datatype="FP64", shape=[1]) for n in OUTPUTS[:3]),
            *(TensorMetadata(name=n, datatype="FP64", shape=[members]) for n in OUTPUTS[3:]),
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


def _account(tensor: InferInput) -> AccountState:
    from stevie_trainer.ensemble.agent import AccountState

    values = _array(tensor).ravel()
    if values.size != 5 or not np.isfinite(values).all():
        raise _bad("input 'account' must be 5 finite numbers", "account")
    position, weight, unrealised, bars_in, drawdown = (float(v) for v in values)
    if not -1.0 <= position <= 1.0 or drawdown > 0.0 or bars_in < 0 or bars_in != int(bars_in):
        raise _bad(
            "input 'account': position in [-1, 1], barsInPosition a whole number >= 0, "
            "drawdown <= 0",
            "account",
        )
    return AccountState(position, weight, unrealised, int(bars_in), drawdown)


def parse(request: InferRequest) -> tuple[Bars, AccountState | None, list[str]]:
    """The bars, the account (None: flat) and the outputs asked for."""
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
    account = _account(by_name["account"]) if "account" in by_name else None
    wanted = [o.name for o in request.outputs] if request.outputs else list(OUTPUTS)
    unknown = [n for n in wanted if n not in OUTPUTS]
    if unknown:
        raise _bad(f"unknown output(s) {unknown}; outputs are {', '.join(OUTPUTS)}", "outputs")
    return bars, account, wanted


def outputs(decision: Decision, wanted: list[str]) -> list[InferOutput]:
    values: dict[str, list[float]] = {
        "action": [decision.level],
        "confidence": [decision.confidence],
        "consensus": [decision.consensus],
        "votes": list(decision.votes),
        "weights": list(decision.weights),
    }
    return [
        InferOutput(name=n, shape=[len(values[n])], datatype="FP64", data=values[n]) for n in wanted
    ]
