"""Every bad request is a 4xx JSON body naming what is wrong (never a 500, never a
traceback), and the bars the service rejects are the bars validate_ohlcv rejects."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from stevie_trainer.data.ohlcv import DataError, validate_ohlcv
from stevie_trainer.ensemble.decide import Ensemble
from stevie_trainer.serving.bars import parse_times

Rows = list[dict[str, Any]]


def _set(i: int, key: str, value: Any) -> Callable[[Rows], None]:
    def edit(rows: Rows) -> None:
        rows[i][key] = value

    return edit


def _swap(i: int) -> Callable[[Rows], None]:
    def edit(rows: Rows) -> None:
        rows[i]["time"], rows[i + 1]["time"] = rows[i + 1]["time"], rows[i]["time"]

    return edit


def _dup(i: int) -> Callable[[Rows], None]:
    def edit(rows: Rows) -> None:
        rows[i]["time"] = rows[i - 1]["time"]

    return edit


def _high_below_low(i: int) -> Callable[[Rows], None]:
    def edit(rows: Rows) -> None:
        rows[i]["high"] = rows[i]["low"] * 0.99

    return edit


# (edit, field, index, words in the message); these all validate_ohlcv rejects too
BAD_BARS = [
    (_set(5, "open", float("nan")), "bars[5].open", 5, "not a finite number"),
    (_set(6, "close", float("inf")), "bars[6].close", 6, "not a finite number"),
    (_set(7, "volume", float("nan")), "bars[7].volume", 7, "missing"),
    (_set(8, "low", 0.0), "bars[8].low", 8, "must be positive"),
    (_set(9, "close", -3.5), "bars[9].close", 9, "must be positive"),
    (_high_below_low(10), "bars[10].high", 10, "< low"),
    (_swap(11), "bars[12].time", 12, "oldest first"),
    (_dup(13), "bars[13].time", 13, "duplicate"),
    (_set(14, "volume", -1.0), "bars[14].volume", 14, "negative"),
]


@pytest.fixture(scope="module")
def good(ensemble: Ensemble, googl: pd.DataFrame, bars_of: Any, needed: int) -> Rows:
    rows: Rows = bars_of(googl.iloc[400 : 400 + needed])
    return rows


@pytest.fixture(scope="module")
def client(service: Any) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def post(client: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    """POST raw JSON (NaN and Infinity as Python writes them)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/v1/decide", content=data, headers={"content-type": "application/json", **headers}
    )


def assert_error(got: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert got.status_code == status, got.text
    assert got.headers["content-type"].startswith("application/json")
    assert "Traceback" not in got.text
    body: dict[str, Any] = got.json()
    assert body["code"] == code and isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize(("edit", "field", "index", "words"), BAD_BARS)
def test_bad_bars_are_422_naming_field_and_index(
    client: httpx.Client, good: Rows, edit: Any, field: str, index: int, words: str
) -> None:
    rows = copy.deepcopy(good)
    edit(rows)
    body = assert_error(post(client, {"bars": rows}), 422, "invalid_bars")
    assert body["field"] == field and body["index"] == index
    assert field in body["error"] and words in body["error"]


@pytest.mark.parametrize(("edit", "field", "index", "words"), BAD_BARS)
def test_validate_ohlcv_rejects_the_same_bars(
    good: Rows, edit: Any, field: str, index: int, words: str
) -> None:
    rows = copy.deepcopy(good)
    edit(rows)
    frame = pd.DataFrame(rows).set_index("time")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True))
    with pytest.raises(DataError, match=rf"data rows? .*\b{index + 1}\b"):
        validate_ohlcv(frame, "request")
    validate_ohlcv(
        pd.DataFrame(good).set_index(pd.to_datetime([r["time"] for r in good], utc=True)), "request"
    )


def test_too_few_bars_says_how_many(
    client: httpx.Client, good: Rows, ensemble: Ensemble, needed: int
) -> None:
    body = assert_error(post(client, {"bars": good[:-1]}), 422, "too_few_bars")
    assert body["needed"] == needed
    assert f"at least {needed}" in body["error"]
    assert post(client, {"bars": good}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "index"),
    [
        ({"bars": []}, "bars", None),
        ({"bars": [{"time": "2020-01-01", "open": 1, "high": 1, "low": 1}]}, "bars[0].close", 0),
        (
            {"bars": [{"time": "2020-01-01", "open": "x", "high": 1, "low": 1, "close": 1}]},
            "bars[0].open",
            0,
        ),
        ({"bars": [{"time": [1], "open": 1, "high": 1, "low": 1, "close": 1}]}, "bars[0].time", 0),
        ({"bars": [], "acount": {}}, None, None),
        ({}, "bars", None),
        ([1, 2], "body", None),
    ],
)
def test_malformed_requests_are_422(
    client: httpx.Client, body: Any, field: str | None, index: int | None
) -> None:
    got = assert_error(post(client, body), 422, "invalid_request")
    if field is not None:
        assert got["field"] == field
    assert got.get("index") == index


@pytest.mark.parametrize(
    ("i", "value", "words"),
    [
        (3, "yesterday", "not an ISO-8601 time"),
        (4, "2013-02-30T00:00:00Z", "not an ISO-8601 time"),
        (5, 1.7e12, "not unix seconds"),
    ],
)
def test_bad_times_are_422(
    client: httpx.Client, good: Rows, i: int, value: Any, words: str
) -> None:
    rows = copy.deepcopy(good)
    rows[i]["time"] = value
    body = assert_error(post(client, {"bars": rows}), 422, "invalid_bars")
    assert body["field"] == f"bars[{i}].time" and body["index"] == i and words in body["error"]


@pytest.mark.parametrize(
    "account",
    [
        {"drawdown": 0.1},
        {"position": 2.0},
        {"barsInPosition": -1},
        {"weight": "heavy"},
        {"position": 0.0, "leverage": 3},
    ],
)
def test_bad_account_is_422(client: httpx.Client, good: Rows, account: dict[str, Any]) -> None:
    body = assert_error(post(client, {"bars": good, "account": account}), 422, "invalid_request")
    assert body["field"].startswith("account.")


def test_body_too_large_is_413(service: Any, client: httpx.Client, good: Rows) -> None:
    limit = service.state.settings.max_body_bytes
    big = json.dumps({"bars": good * (limit // len(json.dumps(good)) + 2)}).encode()
    assert len(big) > limit
    assert_error(post(client, big), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for k in range(0, len(big), 65536):
            yield big[k : k + 65536]

    got = client.post("/v1/decide", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in got.request.headers
    assert_error(got, 413, "body_too_large")
    assert post(client, {"bars": good}).status_code == 200  # the service is fine after


def test_limit_is_configurable(serve: Any, good: Rows) -> None:
    running = serve(max_body_bytes=1000)
    with running.client() as client:
        assert_error(post(client, {"bars": good}), 413, "body_too_large")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client: httpx.Client, good: Rows, ctype: str | None) -> None:
    headers = {} if ctype is None else {"content-type": ctype}
    got = client.post("/v1/decide", content=json.dumps({"bars": good}).encode(), headers=headers)
    assert_error(got, 415, "unsupported_media_type")
    ok = post(client, {"bars": good}, **{"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_invalid_json_is_400(client: httpx.Client) -> None:
    assert_error(post(client, b'{"bars": [1, 2'), 400, "invalid_json")


def test_v2_bad_tensors_are_4xx(client: httpx.Client, good: Rows) -> None:
    ohlcv = [[r["open"], r["high"], r["low"], r["close"]] for r in good]
    cases = [
        (
            {
                "inputs": [
                    {
                        "name": "ohlcv",
                        "shape": [len(ohlcv), 3],
                        "datatype": "FP64",
                        "data": [x[:3] for x in ohlcv],
                    }
                ]
            },
            "ohlcv",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "ohlcv",
                        "shape": [len(ohlcv), 4],
                        "datatype": "FP64",
                        "data": [x for row in ohlcv for x in row][:-1],
                    }
                ]
            },
            "ohlcv",
        ),
        ({"inputs": [{"name": "prices", "shape": [1], "datatype": "FP64", "data": [1]}]}, "prices"),
        (
            {
                "inputs": [
                    {"name": "ohlcv", "shape": [len(ohlcv), 4], "datatype": "BYTES", "data": ohlcv}
                ]
            },
            "ohlcv",
        ),
    ]
    for body, field in cases:
        got = client.post("/v2/models/ens/infer", json=body)
        assert_error(got, 422, "invalid_tensor")
        assert got.json()["field"] == field
    rows = copy.deepcopy(ohlcv)
    rows[20][1] = rows[20][2] / 2  # high < low
    body = {
        "inputs": [{"name": "ohlcv", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]
    }
    error = assert_error(client.post("/v2/models/ens/infer", json=body), 422, "invalid_bars")
    assert error["index"] == 20 and error["field"] == "ohlcv[20, 1] (high)"
    got = client.post("/v2/models/ens/infer", content=b"{}", headers={"content-type": "text/csv"})
    assert_error(got, 415, "unsupported_media_type")


def test_unknown_routes_and_methods_are_json(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/decide"), 405, "method_not_allowed")


def test_times_parse_like_pandas() -> None:
    iso = [
        "2020-01-01T00:00:00Z",
        "2020-01-01T01:00:00+00:00",
        "2020-01-01 02:00:00",
        "2020-01-01T04:00:00+02:00",
        "2020-01-01T03:00:00.5",
        "2020-01-02",
    ]
    want = pd.to_datetime(pd.Series(iso), utc=True, format="ISO8601")
    assert list(parse_times(iso)) == list(pd.DatetimeIndex(want).as_unit("ns").asi8)
    same_shape = ["2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z"]  # numpy's fast path
    assert list(parse_times(same_shape)) == [1577836800 * 10**9, 1577840400 * 10**9]
    assert list(parse_times([1577836800, 1577836800.25, "2020-01-01T00:00:01Z"])) == [
        1577836800 * 10**9,
        1577836800 * 10**9 + 250_000_000,
        1577836801 * 10**9,
    ]


def test_valid_but_extreme_prices_are_422_not_500(client: httpx.Client, good: Rows) -> None:
    rows = copy.deepcopy(good)
    for k, row in enumerate(rows):  # every bar valid; the log returns overflow
        price = 1e200 if k % 2 else 1e-200
        row.update(open=price, high=price, low=price, close=price)
    body = assert_error(post(client, {"bars": rows}), 422, "features_undefined")
    assert "cannot observe the last bar" in body["error"]
    assert post(client, {"bars": good}).status_code == 200
