"""The ensemble backtest: every policy on the same bars in the same simulator, weights from
validation only, no look-ahead, named member errors, outputs, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stevie_api.ensemble import EnsembleSpec
from stevie_api.market import DataSpec
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble import report as report_module
from stevie_trainer.ensemble.agent import FLAT, load_member
from stevie_trainer.ensemble.backtest import ENSEMBLE, run_backtest, run_split
from stevie_trainer.ensemble.decide import Ensemble, from_document
from stevie_trainer.ensemble.members import MemberError, MemberRef, resolve
from stevie_trainer.ensemble.report import ensemble_backtest
from stevie_trainer.ensemble.voting import METHODS, static_weights
from stevie_trainer.env.prepare import data_splits
from stevie_trainer.evaluation.baselines import BASELINES
from stevie_trainer.evaluation.episode import run_policy
from support.ensemble import TrainedMembers

NAMES = ("ppo", "dqn", "bc")


def spec_of(*names: str, **fields: Any) -> EnsembleSpec:
    return EnsembleSpec.model_validate(
        {"members": [{"trainingRun": n} for n in names or NAMES], **fields}
    )


def members(trained: TrainedMembers, *names: str) -> list[Any]:
    return [load_member(resolve(r)) for r in trained.refs(*names)]


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def backtest_out(trained_members: TrainedMembers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "backtest"
    ensemble_backtest(spec_of(), trained_members.refs(), str(out), name="tiny", log=quiet)
    return out


def read_report(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "report.json").read_text())
    return doc


def test_every_policy_on_both_splits_on_the_same_bars(backtest_out: Path) -> None:
    report = read_report(backtest_out)
    policies = {ENSEMBLE, *NAMES, *BASELINES}
    val, test = (report["splits"][s] for s in ("validation", "test"))
    for split in (val, test):
        assert set(split["policies"]) == policies and set(split["methods"]) == set(METHODS)
        bars = {m["bars"] for m in [*split["policies"].values(), *split["methods"].values()]}
        assert bars == {split["period"]["decisions"]}, bars
        # The ensemble's own method is the "ensemble" policy.
        assert split["methods"][report["method"]] == split["policies"][ENSEMBLE]
    assert pd.Timestamp(val["period"]["last_bar"]) < pd.Timestamp(test["period"]["first_decision"])
    assert report["best_member"]["name"] in NAMES
    assert report["simulator"]["rules_from"] == "ppo"
    assert [m["name"] for m in report["members"]] == list(NAMES)
    assert "On the test split the ensemble" in report["verdict"]


@pytest.mark.parametrize("name", NAMES)
def test_an_ensemble_of_one_member_voting_by_majority_is_that_member(
    trained_members: TrainedMembers, name: str
) -> None:
    """Same simulator, same fills: the one-member ensemble's equity is the member's own, bar
    for bar, on both splits (its decisions go through decide() and actions_for_targets)."""
    ensemble = Ensemble(members(trained_members, name), "majority")
    data = ensemble.members[0].spec.data
    bt = run_backtest(ensemble, load_ohlcv(data.only_uri()), data, "GOOGL", methods=["majority"])
    for run in bt.splits.values():
        ens, alone = run.episodes[ENSEMBLE], run.episodes[name]
        np.testing.assert_array_equal(ens.equity, alone.equity)
        np.testing.assert_array_equal(ens.ledger, alone.ledger)
        assert len(set(alone.targets)) > 1, "a member that never trades proves little"


def test_members_alone_pay_the_first_members_costs(
    trained_members: TrainedMembers, tmp_path: Path
) -> None:
    """A member trained with other costs is re-run with the first member's: the comparison
    is fair (and its equity differs from a run with its own costs)."""
    dear = tmp_path / "dear"
    shutil.copytree(trained_members.folder / "dqn", dear)
    doc = json.loads((dear / "spec.json").read_text())
    doc["env"]["feeBps"] = 100.0
    (dear / "spec.json").write_text(json.dumps(doc))
    refs = [
        *trained_members.refs("ppo"),
        MemberRef(name="dear", source="uri", uri=str(dear / "model.zip")),
    ]
    ensemble = Ensemble([load_member(resolve(r)) for r in refs], "majority")
    ppo, dqn = ensemble.members
    data = ppo.spec.data
    bt = run_backtest(ensemble, load_ohlcv(data.only_uri()), data, "GOOGL", methods=["majority"])
    run = bt.splits["test"]
    market = dqn.market(load_ohlcv(data.only_uri()), data.bars_per_year)
    fair = run_policy(market, ppo.env.model_copy(update={"positions": dqn.env.positions}),
                      run.bounds, dqn.policy)  # fmt: skip
    own = run_policy(market, dqn.env, run.bounds, dqn.policy)
    np.testing.assert_array_equal(run.episodes["dear"].equity, fair.equity)
    assert not np.array_equal(run.episodes["dear"].equity, own.equity)


def test_weights_come_from_validation_metrics_never_test(
    trained_members: TrainedMembers, backtest_out: Path, tmp_path: Path
) -> None:
    report = read_report(backtest_out)
    results = [json.loads((trained_members.folder / n / "result.json").read_text()) for n in NAMES]
    expected = static_weights([r["validation"]["sharpe"] for r in results], [None] * 3)
    weights = [m["voting_weight"] for m in report["members"]]
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    for split in report["splits"].values():
        mean = split["ensemble"]["mean_weights"]
        np.testing.assert_allclose([mean[n] for n in NAMES], expected, rtol=1e-12)

    # Members whose test results say the opposite of their validation keep their weights...
    def copies(edit: str) -> list[MemberRef]:
        refs = []
        for k, name in enumerate(NAMES):
            folder = tmp_path / edit / name
            shutil.copytree(trained_members.folder / name, folder)
            result = json.loads((folder / "result.json").read_text())
            result[edit] = {p: {"sharpe": 10.0 * (3 - k)} for p in result["test"]}
            if edit == "validation":
                result[edit] = {"sharpe": 10.0 * (3 - k)}
            (folder / "result.json").write_text(json.dumps(result))
            refs.append(MemberRef(name=name, source="TrainingRun", uri=str(folder)))
        return refs

    def static(refs: list[MemberRef]) -> Any:
        return Ensemble([load_member(resolve(r)) for r in refs], "performance_weighted").static

    np.testing.assert_allclose(static(copies("test")), expected, rtol=1e-12)
    # ... and the check can fail: changed validation results do move them.
    np.testing.assert_allclose(static(copies("validation")), [0.5, 1 / 3, 1 / 6], rtol=1e-12)


def _altered_after(frame: pd.DataFrame, t: int) -> pd.DataFrame:
    """The same bars up to t; later bars follow another random walk."""
    out = frame.copy()
    n = len(frame) - t - 1
    walk = np.exp(np.cumsum(np.random.default_rng(7).normal(0.0, 0.03, n)))
    for column in ("open", "high", "low", "close"):
        values = out[column].to_numpy(dtype=np.float64, copy=True)
        values[t + 1 :] *= walk
        out[column] = values
    return out


def test_dynamic_reweighting_does_not_look_ahead(trained_members: TrainedMembers) -> None:
    """Change every bar after t: the weights and decisions up to t do not move (and the
    later ones do, so the check can fail)."""
    ensemble = Ensemble(members(trained_members), "performance_weighted", reweight_window=20)
    data = ensemble.members[0].spec.data
    frame = load_ohlcv(data.only_uri())
    bounds = data_splits(ensemble.markets(frame)[0], data).test
    t = (bounds[0] + bounds[1]) // 2

    def run(f: pd.DataFrame) -> Any:
        markets = ensemble.markets(f, data.bars_per_year)
        return run_split(ensemble, markets, bounds, "test", methods=["performance_weighted"])

    base, other = run(frame), run(_altered_after(frame, t))
    k = t - base.bounds[0] + 1  # decisions at bars bounds[0]..t
    assert not np.allclose(base.weights[:, 0], base.weights[0, 0]), "weights must move"
    np.testing.assert_array_equal(base.weights[:k], other.weights[:k])
    assert base.decisions[:k] == other.decisions[:k]
    assert base.decisions[k - 1].bar == t
    assert not np.array_equal(base.weights[k + 25 :], other.weights[k + 25 :])
    # The same weights from the bars up to t alone (nothing after t exists).
    cut = ensemble.markets(frame.iloc[: t + 1], data.bars_per_year)
    bars = np.arange(base.bounds[0], t + 1)
    np.testing.assert_array_equal(ensemble.weight_path(cut, cut[0].close, bars), base.weights[:k])


def test_every_run_starts_where_the_widest_member_can_observe(
    trained_members: TrainedMembers,
) -> None:
    """A validation split starting inside the window-20 members' warm-up (but not the
    window-10 one's): all policies still trade the same bars."""
    ensemble = Ensemble(members(trained_members), "confidence")
    frame = load_ohlcv(ensemble.members[0].spec.data.only_uri())
    markets = ensemble.markets(frame)
    first = sorted(m.first_obs for m in markets)
    assert first[0] < first[-1], "the members must differ in warm-up"
    data = DataSpec.model_validate(
        ensemble.members[0].spec.data.model_dump(by_alias=True)
        | {"split": {"trainFraction": (first[0] + first[-1]) / 2 / len(frame)}}
    )
    lo = data_splits(markets[0], data).validation[0]
    assert first[0] <= lo < first[-1]
    run = run_backtest(ensemble, frame, data, "GOOGL", methods=["confidence"]).splits["validation"]
    starts = {ep.timestamps[0] for ep in [*run.episodes.values(), *run.methods.values()]}
    assert starts == {frame.index[first[-1]]}


def test_a_missing_or_corrupt_member_is_named(
    trained_members: TrainedMembers, tmp_path: Path
) -> None:
    ghost = MemberRef(name="ghost", source="TrainingRun", uri=str(tmp_path / "nowhere"))
    with pytest.raises(MemberError, match=r"member 'ghost': no model.zip under"):
        ensemble_backtest(
            spec_of(), [*trained_members.refs("ppo"), ghost], str(tmp_path / "a"), log=quiet
        )
    broken = tmp_path / "broken"
    shutil.copytree(trained_members.folder / "dqn", broken)
    (broken / "model.zip").write_bytes(b"PK not really a zip")
    bad = MemberRef(name="broken", source="TrainingRun", uri=str(broken))
    with pytest.raises(MemberError, match=r"member 'broken': .* is not a loadable model"):
        ensemble_backtest(spec_of(), [bad], str(tmp_path / "b"), log=quiet)
    (broken / "result.json").write_text("{not json")
    with pytest.raises(MemberError, match=r"member 'broken': result.json is not valid JSON"):
        ensemble_backtest(spec_of(), [bad], str(tmp_path / "c"), log=quiet)
    assert not list(tmp_path.glob("*/report.json"))


def test_outputs_are_written_and_ensemble_json_decides_as_the_backtest(
    backtest_out: Path,
) -> None:
    for name in ("report.json", "table.txt", "ensemble.json", "decisions.jsonl"):
        assert (backtest_out / name).stat().st_size > 0, name
    for name in ("equity.png", "weights.png", "consensus.png"):
        assert (backtest_out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = read_report(backtest_out)
    lines = (backtest_out / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == report["splits"]["test"]["period"]["decisions"]
    first = json.loads(lines[0])
    # no acting rules here: every vote is held ("held": see test_acting_rules)
    assert all(json.loads(line)["held"] == json.loads(line)["target"] for line in lines)
    assert set(first["votes"]) == set(NAMES) and first["time"].startswith(
        report["splits"]["test"]["period"]["first_decision"][:10]
    )
    table = (backtest_out / "table.txt").read_text()
    assert all(n in table for n in [*NAMES, *BASELINES, *METHODS, "Validation split"])
    # What the decision service loads decides the first test bar (a flat account) the same.
    doc = json.loads((backtest_out / "ensemble.json").read_text())
    assert doc["name"] == "tiny" and doc["method"] == report["method"] and doc["version"]
    served = from_document(doc)
    data = served.members[0].spec.data
    markets = served.markets(load_ohlcv(data.only_uri()), data.bars_per_year)
    weights = served.weight_path(markets, markets[0].close, np.array([first["bar"]]))[0]
    decision = served.decide(markets, first["bar"], weights, FLAT)
    assert decision.level == first["target"] and decision.confidence == first["confidence"]


def test_a_finished_backtest_is_returned_as_is(
    trained_members: TrainedMembers, backtest_out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = read_report(backtest_out)
    stamp = (backtest_out / "equity.png").stat().st_mtime_ns

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a finished backtest must not run again")

    monkeypatch.setattr(report_module, "run_backtest", refuse)
    said: list[str] = []
    again = ensemble_backtest(
        spec_of(), trained_members.refs(), str(backtest_out), name="tiny", log=said.append
    )
    assert again == before and "already finished" in said[0]
    assert (backtest_out / "equity.png").stat().st_mtime_ns == stamp
    # Other inputs (another method) are backtested again.
    with pytest.raises(AssertionError, match="must not run again"):
        ensemble_backtest(
            spec_of(method="majority"),
            trained_members.refs(),
            str(backtest_out),
            name="tiny",
            log=quiet,
        )
