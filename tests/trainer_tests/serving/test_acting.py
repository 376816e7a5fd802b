"""The service acts on the ensemble's votes under the ensemble's no-trade band and minimum
hold, as its backtest does: request after request, fed the account the backtest's simulator
holds, it answers the target the simulator kept, whether it traded, and the hold's clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_trainer.ensemble.agent import AccountState
from stevie_trainer.ensemble.backtest import EnsemblePolicy, common_bounds
from stevie_trainer.ensemble.decide import Ensemble, from_document
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.kernel import L_NEW, L_OLD, L_TARGET
from stevie_trainer.evaluation.episode import run_policy
from support.ensemble import TrainedMembers

from .conftest import Running, write_document

F32 = np.ndarray[Any, np.dtype[np.float32]]
I64 = np.ndarray[Any, np.dtype[np.int64]]
# With levels -1/0/1 and no rebalancing, a band just over 1 drops most closes of a long
# (its weight stays about 1) and lets reversals (about 2) through.
BAND, HOLD = 1.01, 3


class Recording(EnsemblePolicy):
    """The backtest's policy, keeping the account it decided from and the hold's clock."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.accounts: list[tuple[AccountState, int]] = []

    def act(self, obs: F32, accounts: Accounts) -> I64:
        self.accounts.append((AccountState.of(accounts, 0), int(accounts.hold[0])))
        return super().act(obs, accounts)


def gapless(frame: pd.DataFrame) -> pd.DataFrame:
    """Each open at the previous close: the weight a fill sees is then the weight at the
    close, the one a request gives (the members observe nothing of the open)."""
    out = frame.copy()
    opens = out["close"].shift(1).fillna(out["open"]).to_numpy()
    out["open"] = opens
    out["high"] = np.maximum(out["high"].to_numpy(), opens)
    out["low"] = np.minimum(out["low"].to_numpy(), opens)
    return out


@pytest.fixture(scope="module")
def ruled_json(trained_members: TrainedMembers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ruled") / "ensemble.json"
    return write_document(trained_members, path, no_trade_band=BAND, min_hold_bars=HOLD)


def account_body(state: AccountState, since: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "position": state.position,
        "weight": state.weight,
        "unrealisedReturn": state.unrealised,
        "barsInPosition": state.bars_in,
        "drawdown": state.drawdown,
    }
    return body if since is None else body | {"barsSinceTargetChange": since}


def test_the_service_acts_as_the_backtest_did(
    serve: Any, ruled_json: Path, googl: pd.DataFrame, bars_of: Any, needed: int
) -> None:
    ensemble = from_document(json.loads(ruled_json.read_text()))
    assert (ensemble.no_trade_band, ensemble.min_hold_bars) == (BAND, HOLD)
    frame = gapless(googl)
    markets = ensemble.markets(frame)
    span = common_bounds(markets, (1200, 1300), "test")
    decision_bars = np.arange(span[0], span[1] - 1)
    weights = ensemble.weight_path(markets, markets[0].close, decision_bars)
    policy = Recording(ensemble, markets, weights, span[0])
    episode = run_policy(markets[0], ensemble.env, span, policy)
    ledger = episode.ledger
    running: Running = serve(ruled_json)
    since: int | None = None
    held = banded = 0
    with running.client() as client:
        for k, record in enumerate(policy.records):
            state, clock = policy.accounts[k]
            assert clock == (0 if since is None else max(HOLD - since, 0)), k
            t = record.bar
            body = {"bars": bars_of(frame.iloc[t - needed + 1 : t + 1]),
                    "account": account_body(state, since)}  # fmt: skip
            got = client.post("/v1/decide", json=body)
            assert got.status_code == 200, got.text
            answer = got.json()
            assert answer["proposed"] == record.decision.level, k
            assert answer["action"] == ledger[k, L_TARGET], k
            assert answer["trade"] == (ledger[k, L_NEW] != ledger[k, L_OLD]), k
            assert answer["held"] == (clock > 0), k
            if k + 1 < len(policy.accounts):
                assert answer["holdLeft"] == policy.accounts[k + 1][1], k
            held += answer["held"] and answer["proposed"] != state.position
            banded += answer["reason"] is not None and "not traded" in answer["reason"]
            if ledger[k, L_TARGET] != state.position:
                since = 0
            elif since is not None:
                since += 1
    assert held > 0 and banded > 0, "the rules must bite for the comparison to mean anything"


def test_without_the_bars_since_the_change_the_hold_is_not_checked(
    serve: Any, ruled_json: Path, googl: pd.DataFrame, bars_of: Any, needed: int
) -> None:
    running: Running = serve(ruled_json)
    bars = bars_of(googl.iloc[400 : 400 + needed])
    with running.client() as client:
        free = client.post("/v1/decide", json={"bars": bars}).json()
        long = {"position": 1.0, "weight": 1.0}
        just_changed = client.post(
            "/v1/decide", json={"bars": bars, "account": long | {"barsSinceTargetChange": 0}}
        ).json()
        bad = client.post(
            "/v1/decide", json={"bars": bars, "account": {"barsSinceTargetChange": -1}}
        )
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "barsSinceTargetChange" in schemas["AccountIn"]["properties"]
    answer = schemas["DecideResponse"]["properties"]
    assert {"proposed", "trade", "held", "holdLeft", "reason"} <= set(answer)
    assert "minimum hold" in answer["action"]["description"]
    assert not free["held"] and "not checked" in free["reason"]
    assert free["action"] == free["proposed"] and free["trade"] == (free["proposed"] != 0.0)
    assert just_changed["held"] and just_changed["action"] == 1.0
    assert just_changed["holdLeft"] == HOLD - 1
    assert bad.status_code == 422 and bad.json()["field"] == "account.barsSinceTargetChange"


def test_v2_takes_the_bars_since_the_change_and_answers_the_acted_target(
    serve: Any, ruled_json: Path, googl: pd.DataFrame, needed: int
) -> None:
    running: Running = serve(ruled_json)
    frame = googl.iloc[900 : 900 + needed]
    ohlcv = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    tensor = {"name": "ohlcv", "shape": list(ohlcv.shape), "datatype": "FP64",
              "data": ohlcv.ravel().tolist()}  # fmt: skip

    def infer(account: list[float]) -> dict[str, Any]:
        inputs = [tensor, {"name": "account", "shape": [len(account)], "datatype": "FP64",
                           "data": account}]  # fmt: skip
        with running.client() as client:
            got = client.post("/v2/models/ens/infer", json={"inputs": inputs})
        assert got.status_code == 200, got.text
        answer: dict[str, Any] = got.json()
        return answer

    held = infer([-1.0, -1.0, 0.0, 0, 0.0, 1])
    outputs = {o["name"]: o["data"][0] for o in held["outputs"]}
    assert outputs["action"] == -1.0 and outputs["held"] == 1.0
    if outputs["proposed"] != -1.0:
        assert "held" in held["parameters"]["reason"]
    free = {o["name"]: o["data"][0] for o in infer([-1.0, -1.0, 0.0, 0, 0.0])["outputs"]}
    assert free["held"] == 0.0 and free["proposed"] == outputs["proposed"]


def test_members_trained_under_other_rules_are_refused_by_name(
    serve: Any, trained_members: TrainedMembers, tmp_path: Path
) -> None:
    """Without the spec's own band, members that differ have no one band to trade by."""
    doc = json.loads(write_document(trained_members, tmp_path / "ensemble.json").read_text())
    doc["members"][1]["spec"]["env"]["noTradeBand"] = 0.2  # what the service reads of it
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(doc))
    running: Running = serve(path, wait_ready=False)
    assert not running.state.wait_loaded(60)
    with running.client() as client:
        error = client.get("/v2/health/ready").json()["error"]
    assert "member 'dqn'" in error and "noTradeBand 0.2" in error and "'ppo'" in error
    # With the ensemble's own band, the same members decide.
    doc["noTradeBand"] = 0.1
    again: Ensemble = from_document(doc)
    assert again.no_trade_band == 0.1 and again.env.no_trade_band == 0.1
