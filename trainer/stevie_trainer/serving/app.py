"""The decision service: ``create_app(ensemble_json)`` is a FastAPI app deciding with that
ensemble, and only it.

Routes: ``POST /v1/decide``, ``GET /v1/stats`` (alias ``/api/stevie/ensemble/stats``),
``GET /metrics``, and the Open Inference Protocol v2: ``GET /v2``, ``/v2/health/live``,
``/v2/health/ready``, ``/v2/models/{name}``, ``/v2/models/{name}/ready``,
``POST /v2/models/{name}[/versions/{version}]/infer``.

Limits: a body over ``max_body_bytes`` is a 413, a body that is not ``application/json`` a
415, bad JSON a 400, bars the ensemble cannot decide on a 422 naming the field and bar
index (too few bars: how many are needed), an unknown model a 404, a decision before the
models are loaded a 503. Every error is a JSON body ``{"error": ..., "code": ...}``, never
a traceback. Handlers are ``async`` and decide inline: the work is CPU-bound and a thread
hop would only add latency.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stevie_trainer.serving import bars as bars_mod
from stevie_trainer.serving import oip
from stevie_trainer.serving.metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServeMetrics
from stevie_trainer.serving.schemas import (
    AccountIn,
    DecideRequest,
    DecideResponse,
    ErrorBody,
    InferRequest,
    InferResponse,
    MemberVote,
    ModelMetadata,
    StatsResponse,
)
from stevie_trainer.serving.service import ServiceError, Settings, State

if TYPE_CHECKING:
    from stevie_trainer.ensemble.agent import AccountState

__all__ = ["create_app"]

_JSON = "application/json"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = model.model_dump_json(by_alias=True).encode()
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


def _error(err: ServiceError, request_id: str | None = None) -> Response:
    body = ErrorBody(
        error=err.message,
        code=err.code,
        field=err.field,
        index=err.index,
        needed=err.needed,
        requestId=request_id,
    )
    return Response(
        body.model_dump_json(by_alias=True, exclude_none=True).encode(),
        status_code=err.status,
        media_type=_JSON,
    )


def _request_id(request: Request, given: str | None = None) -> str:
    candidate = given or request.headers.get("x-request-id")
    if candidate and _REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


async def _body(request: Request, limit: int) -> bytes:
    """The JSON body: 415 unless application/json, 413 past ``limit`` bytes."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != _JSON and not (media.startswith("application/") and media.endswith("+json")):
        shown = repr(ctype) if ctype else "none"
        raise ServiceError(
            415, "unsupported_media_type", f"Content-Type must be {_JSON} (got {shown})"
        )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServiceError(413, "body_too_large", f"body of {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ServiceError(413, "body_too_large", f"body over {limit} bytes (the limit)")
        chunks.append(chunk)
    return b"".join(chunks)


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation(err: ValidationError) -> ServiceError:
    """pydantic's first error as a 400 (not JSON) or 422 (naming the field and bar index)."""
    first = err.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return ServiceError(400, "invalid_json", f"body is not valid JSON: {first['msg']}")
    loc = tuple(first["loc"])
    if loc[:1] == ("bars",) or loc[:1] == ("account",):  # not the union member's label
        loc = loc[: 3 if loc[0] == "bars" else 2]
    field = _field(loc) or "body"
    index = loc[1] if len(loc) > 1 and loc[0] == "bars" and isinstance(loc[1], int) else None
    return ServiceError(
        422, "invalid_request", f"{field}: {first['msg']}", field=field, index=index
    )


def _account(a: AccountIn | None) -> AccountState:
    from stevie_trainer.ensemble.agent import FLAT, AccountState

    if a is None:
        return FLAT
    return AccountState(a.position, a.weight, a.unrealised_return, a.bars_in_position, a.drawdown)


def _routes_v1(app: FastAPI, state: State) -> None:
    limit = state.settings.max_body_bytes

    @app.post("/v1/decide", response_model=DecideResponse, responses=_ERRORS,
              openapi_extra=_body_schema(DecideRequest))  # fmt: skip
    async def decide(request: Request) -> Response:
        """The ensemble's target position after the close of the last bar."""
        request_id = _request_id(request)
        try:
            body = DecideRequest.model_validate_json(await _body(request, limit))
            bars = bars_mod.from_rows(body.bars)
        except ValidationError as err:
            raise _validation(err) from None
        except bars_mod.BarError as err:
            raise ServiceError.of(err) from None
        since = body.account.bars_since_target_change if body.account else None
        decision, acted, why = state.decide(bars, _account(body.account), request_id, since)
        answer = DecideResponse(
            action=acted.target,
            proposed=decision.level,
            trade=acted.trade,
            held=acted.held,
            hold_left=acted.hold_left,
            reason=why,
            confidence=decision.confidence,
            consensus=decision.consensus,
            members=[
                MemberVote(name=n, vote=v, weight=w)
                for n, v, w in zip(
                    state.member_names, decision.votes, decision.weights, strict=True
                )
            ],
            levels=state.levels,
            distribution=list(decision.distribution),
            method=state.method,
            version=state.version,
            request_id=request_id,
            bar_time=bars.last_time(),
            bars=len(bars),
        )
        return _json(answer, headers={"x-request-id": request_id})

    async def stats() -> Response:
        """What this replica decided since it started."""
        return _json(StatsResponse.model_validate(state.snapshot()))

    for path in ("/v1/stats", "/api/stevie/ensemble/stats"):
        app.add_api_route(path, stats, methods=["GET"], response_model=StatsResponse)

    @app.get("/metrics")
    async def metrics() -> Response:
        if state.log is not None:
            state.metrics.decision_log(state.log.snapshot())
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _routes_v2(app: FastAPI, state: State) -> None:
    limit = state.settings.max_body_bytes

    def model(name: str, version: str | None = None) -> None:
        if name != state.name or (version is not None and version != state.version):
            wanted = name if version is None else f"{name} version {version}"
            served = f"{state.name!r} version {state.version}"
            message = f"unknown model {wanted!r}; this server serves {served}"
            raise ServiceError(404, "unknown_model", message)

    @app.get("/v2")
    async def server() -> dict[str, Any]:
        return {"name": "stevie-ensemble", "version": "2", "extensions": []}

    @app.get("/v2/health/live")
    async def live() -> Response:
        if state.error:
            raise ServiceError(503, "load_failed", f"the ensemble failed to load: {state.error}")
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        state.require()
        return JSONResponse({"ready": True})

    @app.get("/v2/models/{name}", response_model=ModelMetadata)
    async def meta(name: str) -> Response:
        model(name)
        return _json(oip.metadata(state.name, state.version, len(state.member_names)))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        model(name)
        state.require()
        return JSONResponse({"name": name, "ready": True})

    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        """KServe v2 inference: ohlcv [N, 5|4], optional time [N] and account [5]."""
        model(name, version)
        try:
            body = InferRequest.model_validate_json(await _body(request, limit))
        except ValidationError as err:
            raise _validation(err) from None
        request_id = _request_id(request, body.id)
        bars, account, since, wanted = oip.parse(body)
        decision, acted, why = state.decide(bars, account or _account(None), request_id, since)
        answer = InferResponse(
            model_name=state.name,
            model_version=state.version,
            id=request_id,
            parameters={
                "bar_time": bars.last_time(),
                "members": state.member_names,
                "reason": why,
            },
            outputs=oip.outputs(decision, acted, wanted),
        )
        return _json(answer)

    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        app.add_api_route(path, infer, methods=["POST"], response_model=InferResponse,
                          responses=_ERRORS, openapi_extra=_body_schema(InferRequest))  # fmt: skip


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 404, 413, 415, 422, 503)
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request body's schema for the OpenAPI document (the route reads raw bytes); its
    definitions go to the document's components (see :func:`_openapi`)."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {_JSON: {"schema": schema}}}}


def _openapi(app: FastAPI) -> None:
    defs: dict[str, Any] = {}
    for model in (DecideRequest, InferRequest):
        ref = "#/components/schemas/{model}"
        defs.update(model.model_json_schema(by_alias=True, ref_template=ref).get("$defs", {}))
    schema = app.openapi()
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)


def _handlers(app: FastAPI, state: State) -> None:
    async def service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return _error(exc, request.headers.get("x-request-id"))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        text = (
            f"no route {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return _error(ServiceError(exc.status_code, code, text))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        return _error(ServiceError(422, "invalid_request", f"{field}: {first['msg']}", field=field))

    async def internal(request: Request, exc: Exception) -> Response:
        print(f"decision service: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return _error(ServiceError(500, "internal_error", "internal error (see the server log)"))

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, internal)


def create_app(
    document_path_or_uri: str,
    *,
    log_uri: str | None = None,
    max_body_bytes: int = 1 << 20,
    segment_records: int = 1000,
    segment_seconds: float = 60.0,
    torch_threads: int | None = 1,
    fast_features: bool = True,
    freeze_gc: bool = False,
) -> FastAPI:
    """The decision service of the ensemble ``document_path_or_uri`` (an ensemble.json).

    The document is read here (an unreadable one raises ValueError at once); the models
    load in the background when the app starts, and readiness turns true once they have.
    """
    settings = Settings(
        document=document_path_or_uri,
        log_uri=log_uri,
        max_body_bytes=max_body_bytes,
        segment_records=segment_records,
        segment_seconds=segment_seconds,
        torch_threads=torch_threads,
        fast_features=fast_features,
        freeze_gc=freeze_gc,
    )
    metrics = ServeMetrics()
    state = State(settings, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title=f"Stevie ensemble {state.name}", version=state.version, lifespan=lifespan)
    app.state.service = state
    _routes_v1(app, state)
    _routes_v2(app, state)
    _handlers(app, state)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _openapi(app)
    return app
