"""The ensemble's no-trade band and minimum hold: one value (the spec's, else the members'
common one, members that differ refused by name), what the ensemble's trades obey in the
backtest, while each member alone keeps its own; in report.json and ensemble.json."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stevie_api.ensemble import EnsembleSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble.agent import Member, load_member
from stevie_trainer.ensemble.backtest import ENSEMBLE, rules_env, run_backtest
from stevie_trainer.ensemble.decide import Ensemble, document, from_document, version_of
from stevie_trainer.ensemble.members import MemberError, MemberRef, resolve
from stevie_trainer.ensemble.report import ensemble_backtest, inputs_of
from stevie_trainer.env.kernel import L_GAP, L_NEW, L_OLD, L_TARGET
from stevie_trainer.evaluation.episode import run_policy
from support.ensemble import TrainedMembers

F64 = npt.NDArray[np.float64]
# Levels -1/0/1 without rebalancing: a band just over 1 drops most closes of a long.
BAND, HOLD = 1.01, 3


def quiet(_: str) -> None:
    pass


def retrained(trained: TrainedMembers, folder: Path, name: str, **env: Any) -> MemberRef:
    """A copy of member ``name`` whose spec.json says it was trained under ``env``."""
    shutil.copytree(trained.folder / name, folder)
    spec = json.loads((folder / "spec.json").read_text())
    spec["env"] |= env
    (folder / "spec.json").write_text(json.dumps(spec))
    return MemberRef(name=folder.name, source="uri", uri=str(folder / "model.zip"))


def loaded(refs: list[MemberRef]) -> list[Member]:
    return [load_member(resolve(r)) for r in refs]


def holds(ledger: F64, hold: int) -> bool:
    """Every target set after a change is kept for at least ``hold`` more bars."""
    targets = ledger[:, L_TARGET]
    changes = np.flatnonzero(np.diff(np.concatenate([[0.0], targets])) != 0.0)
    return bool(np.all(np.diff(changes) > hold))


def small_orders(ledger: F64, band: float) -> int:
    """Orders of a position (not an entry from flat) smaller than ``band``."""
    w, g = ledger[:, L_OLD], ledger[:, L_GAP]
    w_open = (w + g - 1.0) / g
    before = np.concatenate([[0.0], ledger[:-1, L_TARGET]])
    size = np.abs(ledger[:, L_NEW] - w_open)
    return int(np.count_nonzero((before != 0.0) & (size > 1e-12) & (size < band - 1e-9)))


def test_members_under_other_rules_are_refused_by_name(
    trained_members: TrainedMembers, tmp_path: Path
) -> None:
    slow = retrained(trained_members, tmp_path / "slow", "dqn", minHoldBars=5)
    refs = [*trained_members.refs("ppo"), slow]
    refused = r"member 'slow': trained with minHoldBars 5, unlike 'ppo' \(ppo 0, slow 5\)"
    with pytest.raises(MemberError, match=refused + r".*set the Ensemble's spec.minHoldBars"):
        Ensemble(loaded(refs), "majority")
    spec = EnsembleSpec.model_validate({"members": [{"trainingRun": "ppo"}, {"uri": slow.uri}]})
    refs = [refs[0], MemberRef(name="member-1", source="uri", uri=slow.uri)]
    with pytest.raises(MemberError, match=r"member 'member-1': trained with minHoldBars 5"):
        ensemble_backtest(spec, refs, str(tmp_path / "out"), log=quiet)
    # The spec's own value settles it; members that agree need none.
    assert Ensemble(loaded(refs), "majority", min_hold_bars=2).min_hold_bars == 2
    agreeing = Ensemble(loaded(trained_members.refs("ppo", "dqn")), "majority")
    assert (agreeing.no_trade_band, agreeing.min_hold_bars) == (0.0, 0)


def test_the_ensemble_trades_under_its_rules_and_each_member_under_its_own(
    trained_members: TrainedMembers, tmp_path: Path
) -> None:
    banded = retrained(trained_members, tmp_path / "banded", "dqn", noTradeBand=0.5,
                       minHoldBars=5)  # fmt: skip
    members = loaded([*trained_members.refs("ppo"), banded])
    ensemble = Ensemble(members, "majority", no_trade_band=BAND, min_hold_bars=HOLD)
    free = Ensemble(loaded(trained_members.refs("ppo", "dqn")), "majority")
    data = members[0].spec.data
    frame = load_ohlcv(data.only_uri())
    runs = [
        run_backtest(e, frame, data, "GOOGL", methods=["majority"]).splits["test"]
        for e in (ensemble, free)
    ]
    ruled, unruled = (run.episodes[ENSEMBLE].ledger for run in runs)
    assert holds(ruled, HOLD) and small_orders(ruled, BAND) == 0
    # The same checks fail without the rules (so they can fail), on the same votes' kind.
    assert not holds(unruled, HOLD) and small_orders(unruled, BAND) > 0
    # Each member alone: the first member's costs, its own band and hold.
    ppo, dqn = members
    own = rules_env(dqn.env, ppo.env)
    assert (own.no_trade_band, own.min_hold_bars) == (0.5, 5)
    market = dqn.market(frame, data.bars_per_year)
    alone = run_policy(market, own, runs[0].bounds, dqn.policy)
    np.testing.assert_array_equal(runs[0].episodes["banded"].equity, alone.equity)
    assert holds(runs[0].episodes["banded"].ledger, 5)
    np.testing.assert_array_equal(
        runs[0].episodes["ppo"].equity, runs[1].episodes["ppo"].equity
    )  # ppo alone is not held to the ensemble's rules


def test_the_rules_reach_the_report_and_the_served_document(
    trained_members: TrainedMembers, tmp_path: Path
) -> None:
    members = {"members": [{"trainingRun": "ppo"}, {"trainingRun": "dqn"}]}
    spec = EnsembleSpec.model_validate(members | {"noTradeBand": BAND, "minHoldBars": HOLD})
    refs = trained_members.refs("ppo", "dqn")
    report = ensemble_backtest(spec, refs, str(tmp_path / "out"), name="ruled", log=quiet)
    simulator = report["simulator"]
    assert (simulator["ensemble_no_trade_band"], simulator["ensemble_min_hold_bars"]) == (
        BAND,
        HOLD,
    )
    assert report["inputs"]["spec"]["noTradeBand"] == BAND
    table = (tmp_path / "out" / "table.txt").read_text()
    assert f"no-trade band {BAND:g} and minimum hold {HOLD} bars" in table
    # decisions.jsonl logs the vote (target) and what the account held under the rules:
    # the vote, or the last one held while a rule keeps it; the rules did keep some
    rows = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").open()]
    assert all(r["held"] in (r["target"], p["held"]) for p, r in itertools.pairwise(rows))
    assert any(r["held"] != r["target"] for r in rows)
    doc = json.loads((tmp_path / "out" / "ensemble.json").read_text())
    assert (doc["noTradeBand"], doc["minHoldBars"]) == (BAND, HOLD)
    served = from_document(doc)
    assert (served.env.no_trade_band, served.env.min_hold_bars) == (BAND, HOLD)
    # Unset, the inputs and the version are what they were before the rules existed.
    plain = EnsembleSpec.model_validate(members)
    assert "noTradeBand" not in inputs_of(plain, refs, "x")["spec"]
    resolved = [resolve(r) for r in refs]
    unset = document("ruled", resolved, "performance_weighted")
    assert unset["noTradeBand"] is None
    assert doc["version"] != unset["version"]
    legacy = {k: v for k, v in unset.items() if k not in ("noTradeBand", "minHoldBars")}
    legacy.pop("version")
    assert version_of(legacy) == unset["version"]
