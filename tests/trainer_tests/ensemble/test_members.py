"""Members: resolving model folders, loading, their own observations and probabilities."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble.agent import AccountState, load_member
from stevie_trainer.ensemble.decide import Ensemble, document, from_document
from stevie_trainer.ensemble.members import MemberError, MemberRef, resolve
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.trading import TradingEnv
from support.ensemble import TrainedMembers


def test_a_training_run_resolves_to_its_best_model_and_validation(
    trained_members: TrainedMembers,
) -> None:
    (ref,) = trained_members.refs("dqn")
    member = resolve(ref)
    assert member.model_uri.endswith("dqn/model.zip") and member.spec.algorithm == "DQN"
    result = json.loads((trained_members.folder / "dqn" / "result.json").read_text())
    assert member.metric("validation.sharpe") == result["validation"]["sharpe"]


@pytest.mark.parametrize("name", ["ppo", "dqn", "bc"])
def test_observations_are_the_simulators_for_the_same_account(
    trained_members: TrainedMembers, name: str
) -> None:
    """Step a member's own environment; at every bar the member's observation built from
    the bars and AccountState.of(accounts) is the environment's, bit for bit."""
    (ref,) = trained_members.refs(name)
    member = load_member(resolve(ref))
    frame = load_ohlcv(member.spec.data.only_uri())
    market = MarketData.from_frame(frame, member.env)
    env = TradingEnv(market, member.env, mode="eval")
    obs, _ = env.reset()
    actions = np.random.default_rng(0).integers(0, len(member.levels), size=300)
    for a in actions:
        mine = member.observations(market, np.array([env.bar]), AccountState.of(env.accounts))
        np.testing.assert_array_equal(mine[0], obs)
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            break


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_probabilities_are_a_distribution_whose_argmax_is_the_agents_action(
    trained_members: TrainedMembers, name: str
) -> None:
    (ref,) = trained_members.refs(name)
    member = load_member(resolve(ref))
    market = member.market(load_ohlcv(member.spec.data.only_uri()))
    bars = np.arange(market.first_obs, market.n_bars)
    obs = member.observations(market, bars)
    probs = member.probabilities(obs)
    assert probs.shape == (len(bars), len(member.levels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    greedy, _ = member.policy.model.predict(obs, deterministic=True)
    assert np.array_equal(probs.argmax(axis=1), greedy)


def test_broken_members_are_named(trained_members: TrainedMembers, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_members.folder / "ppo", broken)
    (broken / "model.zip").write_bytes(b"not a zip")
    ref = MemberRef(name="broken", source="TrainingRun", uri=str(broken))
    with pytest.raises(MemberError, match=r"member 'broken': .* is not a loadable model"):
        load_member(resolve(ref))
    (broken / "model.zip").unlink()
    with pytest.raises(MemberError, match=r"member 'broken': no model\.zip under"):
        resolve(ref)
    gone = MemberRef(name="gone", source="PBTPopulation", uri=str(tmp_path / "pbt_summary.json"))
    with pytest.raises(MemberError, match=r"member 'gone': no model\.zip"):
        resolve(gone)
    shutil.copytree(trained_members.folder / "ppo", tmp_path / "garbled")
    (tmp_path / "garbled" / "spec.json").write_text("{")
    with pytest.raises(MemberError, match=r"spec\.json is not valid JSON"):
        resolve(MemberRef(name="garbled", source="TrainingRun", uri=str(tmp_path / "garbled")))


def test_the_document_reloads_the_same_ensemble(trained_members: TrainedMembers) -> None:
    resolved = [resolve(r) for r in trained_members.refs()]
    doc = document("ens", resolved, "boltzmann_addition", reweight_window=20)
    again = from_document(json.loads(json.dumps(doc)))
    assert isinstance(again, Ensemble) and again.names == ["ppo", "dqn", "bc"]
    assert (
        document("ens", resolved, "boltzmann_addition", reweight_window=20)["version"]
        == (doc["version"])
    )
    assert document("ens", resolved, "majority")["version"] != doc["version"]
    frame = load_ohlcv(resolved[0].spec.data.only_uri())
    markets = again.markets(frame)
    t = len(frame) - 1
    weights = again.weight_path(markets, markets[0].close, np.array([t]))[0]
    decision = again.decide(markets, t, weights)
    assert decision.level in again.grid and len(decision.votes) == 3
    # Members with another window (bc: 10) get their own view; the others share one.
    assert markets[0] is markets[1] and markets[2] is not markets[0]
    assert again.bars_needed == again.warm_up + 1 + 20 + 1
