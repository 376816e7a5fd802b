"""The running service over real HTTP: health and readiness, /v1/decide is the backtest's
decision (Ensemble.decide on the same bars), the v2 routes, stats and /metrics."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_trainer.ensemble.agent import FLAT, AccountState
from stevie_trainer.ensemble.decide import Ensemble
from stevie_trainer.serving.service import State


def direct(ensemble: Ensemble, frame: pd.DataFrame, account: AccountState = FLAT) -> Any:
    """The decision at the frame's last bar as the backtest takes it."""
    markets = ensemble.markets(frame)
    t = len(frame) - 1
    weights = ensemble.weight_path(markets, markets[0].close, np.array([t]))[0]
    return ensemble.decide(markets, t, weights, account)


def test_live_and_ready(service: Any) -> None:
    with service.client() as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/ens/ready").status_code == 200
        assert client.get("/v2").json()["name"] == "stevie-ensemble"


def test_not_ready_until_the_models_are_loaded(
    serve: Any, monkeypatch: pytest.MonkeyPatch, bars_of: Any, googl: pd.DataFrame
) -> None:
    release = threading.Event()
    real_load = State.load

    def slow_load(self: State) -> None:
        release.wait(30)
        real_load(self)

    monkeypatch.setattr(State, "load", slow_load)
    running = serve(wait_ready=False)
    with running.client() as client:
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["code"] == "not_ready"
        early = client.post("/v1/decide", json={"bars": bars_of(googl.iloc[:200])})
        assert early.status_code == 503 and "loading" in early.json()["error"]
        release.set()
        assert running.state.wait_loaded(30)
        assert client.get("/v2/health/ready").status_code == 200


def test_a_member_that_cannot_load_is_never_ready(
    serve: Any, tmp_path: Any, ensemble_json: Any
) -> None:
    import json
    import shutil

    doc = json.loads(ensemble_json.read_text())
    folder = tmp_path / "broken"
    shutil.copytree(doc["members"][0]["folder"], folder)
    (folder / "model.zip").write_bytes(b"not a zip")
    doc["members"][0]["folder"] = str(folder)
    path = tmp_path / "ensemble.json"
    path.write_text(json.dumps(doc))
    running = serve(path, wait_ready=False)
    assert not running.state.wait_loaded(30)
    with running.client() as client:
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert "not a loadable model" in ready.json()["error"]
        assert client.get("/v2/health/live").status_code == 503


@pytest.mark.parametrize(
    ("start", "extra", "account"),
    [
        (0, 0, None),
        (700, 0, None),
        (
            1500,
            37,
            {
                "position": 1.0,
                "weight": 0.93,
                "unrealisedReturn": 0.021,
                "barsInPosition": 4,
                "drawdown": -0.012,
            },
        ),
        (
            2000,
            120,
            {
                "position": -1.0,
                "weight": -1.02,
                "unrealisedReturn": -0.01,
                "barsInPosition": 1,
                "drawdown": -0.05,
            },
        ),
    ],
)
def test_decide_is_the_backtests_decision(
    service: Any,
    ensemble: Ensemble,
    googl: pd.DataFrame,
    bars_of: Any,
    start: int,
    extra: int,
    account: dict[str, Any] | None,
    needed: int,
) -> None:
    frame = googl.iloc[start : start + needed + extra]
    body: dict[str, Any] = {"bars": bars_of(frame, numeric_time=start % 2 == 1)}
    state = FLAT
    if account is not None:
        body["account"] = account
        state = AccountState(
            account["position"],
            account["weight"],
            account["unrealisedReturn"],
            account["barsInPosition"],
            account["drawdown"],
        )
    with service.client() as client:
        got = client.post("/v1/decide", json=body, headers={"x-request-id": f"req-{start}"})
    assert got.status_code == 200, got.text
    answer = got.json()
    want = direct(ensemble, frame, state)
    assert answer["action"] == want.level
    assert answer["confidence"] == want.confidence
    assert answer["consensus"] == want.consensus
    assert [m["vote"] for m in answer["members"]] == list(want.votes)
    assert [m["weight"] for m in answer["members"]] == list(want.weights)
    assert answer["distribution"] == list(want.distribution)
    assert [m["name"] for m in answer["members"]] == ensemble.names
    assert answer["requestId"] == f"req-{start}" == got.headers["x-request-id"]
    assert answer["barTime"] == frame.index[-1].isoformat()
    assert answer["bars"] == len(frame) and answer["version"] == service.state.version


def test_the_last_bars_decide_as_the_backtest_did(
    service: Any, ensemble: Ensemble, googl: pd.DataFrame, bars_of: Any, needed: int
) -> None:
    """The backtest decides at bar t with the whole file behind it (features, shadow votes
    of the whole split in one batch); a request carries only the last ``needed`` bars."""
    markets = ensemble.markets(googl)
    ts = np.arange(needed + 300, len(googl), 37)
    weights = ensemble.weight_path(markets, markets[0].close, ts)
    with service.client() as client:
        for t, w in zip(ts, weights, strict=True):
            want = ensemble.decide(markets, int(t), w, FLAT)
            body = {"bars": bars_of(googl.iloc[t - needed + 1 : t + 1])}
            got = client.post("/v1/decide", json=body).json()
            assert got["action"] == want.level, t
            assert [m["vote"] for m in got["members"]] == list(want.votes)
            assert [m["weight"] for m in got["members"]] == pytest.approx(want.weights, abs=1e-9)
            assert got["confidence"] == pytest.approx(want.confidence, abs=1e-6)


def test_v2_metadata_and_infer(
    service: Any, ensemble: Ensemble, googl: pd.DataFrame, needed: int
) -> None:
    frame = googl.iloc[300 : 300 + needed + 5]
    with service.client() as client:
        meta = client.get("/v2/models/ens").json()
        assert meta["name"] == "ens" and meta["versions"] == [service.state.version]
        assert {i["name"] for i in meta["inputs"]} == {"ohlcv", "time", "account"}
        assert [o["name"] for o in meta["outputs"]][:3] == ["action", "confidence", "consensus"]
        ohlcv = frame[["open", "high", "low", "close", "volume"]].to_numpy()
        body = {
            "id": "v2-1",
            "inputs": [
                {
                    "name": "ohlcv",
                    "shape": list(ohlcv.shape),
                    "datatype": "FP64",
                    "data": ohlcv.ravel().tolist(),
                },
                {
                    "name": "time",
                    "shape": [len(frame)],
                    "datatype": "INT64",
                    "data": [int(t.timestamp()) for t in frame.index],
                },
            ],
        }
        got = client.post("/v2/models/ens/infer", json=body)
        # [N, 4] nested rows, BYTES times, only the action, under the version's route
        four = {
            "inputs": [
                {
                    "name": "ohlcv",
                    "shape": [len(frame), 4],
                    "datatype": "FP64",
                    "data": frame[["open", "high", "low", "close"]].to_numpy().tolist(),
                },
                {
                    "name": "time",
                    "shape": [len(frame)],
                    "datatype": "BYTES",
                    "data": [t.isoformat() for t in frame.index],
                },
            ],
            "outputs": [{"name": "action"}],
        }
        version = service.state.version
        got4 = client.post(f"/v2/models/ens/versions/{version}/infer", json=four)
        unknown = client.post("/v2/models/other/infer", json=body)
        wrong_version = client.post("/v2/models/ens/versions/nope/infer", json=body)
        unknown_meta = client.get("/v2/models/other")
    assert got.status_code == 200, got.text
    answer = got.json()
    want = direct(ensemble, frame)
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert answer["id"] == "v2-1" and answer["model_name"] == "ens"
    assert outputs["action"] == [want.level]
    assert outputs["confidence"] == [want.confidence]
    assert outputs["consensus"] == [want.consensus]
    assert outputs["votes"] == list(want.votes)
    assert got4.status_code == 200, got4.text
    assert [o["name"] for o in got4.json()["outputs"]] == ["action"]
    assert got4.json()["outputs"][0]["data"] == [
        direct(ensemble, frame.drop(columns="volume")).level
    ]
    for bad in (unknown, wrong_version, unknown_meta):
        assert bad.status_code == 404
        assert bad.json()["code"] == "unknown_model" and "'ens'" in bad.json()["error"]


def test_stats_count_the_decisions(
    serve: Any, ensemble: Ensemble, googl: pd.DataFrame, bars_of: Any, needed: int
) -> None:
    running = serve()
    n = needed
    decisions = []
    with running.client() as client:
        for start in (0, 250, 500, 750, 1000):
            frame = googl.iloc[start : start + n]
            assert client.post("/v1/decide", json={"bars": bars_of(frame)}).status_code == 200
            decisions.append(direct(ensemble, frame))
        client.post("/v1/decide", json={"bars": bars_of(googl.iloc[:10])})  # a 422: not counted
        stats = client.get("/v1/stats").json()
        alias = client.get("/api/stevie/ensemble/stats").json()
    assert stats == alias
    assert stats["decisions"] == 5 and sum(stats["actions"].values()) == 5
    for level in {d.level for d in decisions}:
        assert stats["actions"][f"{level:g}"] == sum(d.level == level for d in decisions)
    assert stats["meanConsensus"] == pytest.approx(np.mean([d.consensus for d in decisions]))
    assert stats["meanConfidence"] == pytest.approx(np.mean([d.confidence for d in decisions]))
    for i, member in enumerate(stats["members"]):
        assert member["name"] == ensemble.names[i]
        agreed = np.mean([d.votes[i] == d.level for d in decisions])
        assert member["agreement"] == pytest.approx(agreed)
        assert member["contribution"] == pytest.approx(np.mean([d.weights[i] for d in decisions]))
    assert sum(m["contribution"] for m in stats["members"]) == pytest.approx(1.0)
    assert stats["features"] == "fast" and stats["version"] == running.state.version


def test_metrics_expose_the_families(
    service: Any, ensemble: Ensemble, googl: pd.DataFrame, bars_of: Any, needed: int
) -> None:
    with service.client() as client:
        body = {"bars": bars_of(googl.iloc[:needed])}
        assert client.post("/v1/decide", json=body).status_code == 200
        client.get("/no/such/path")
        text = client.get("/metrics").text
    for family in (
        'stevie_serve_requests_total{method="POST",route="/v1/decide",status="200"}',
        'stevie_serve_request_duration_seconds_bucket{le="0.005",route="/v1/decide",status="200"}',
        'stevie_serve_requests_total{method="GET",route="unmatched",status="404"}',
        "stevie_ensemble_decisions_total{action=",
        "stevie_ensemble_consensus_bucket{",
        "stevie_ensemble_confidence_bucket{",
        'stevie_ensemble_member_weight{member="ppo"}',
        "stevie_serve_ready 1.0",
        "stevie_ensemble_info{"
        f'method="performance_weighted",name="ens",version="{service.state.version}"}} 1.0',
    ):
        assert family in text, family
