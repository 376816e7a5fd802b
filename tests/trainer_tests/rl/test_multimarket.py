"""Several markets in one run (data.markets): the spec, the batched env, selection, reports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from stevie_api.training import TrainingRunSpec
from stevie_trainer.env.multivec import MultiMarketVecEnv, block_sizes
from stevie_trainer.env.prepare import prepare
from stevie_trainer.env.vec import VecTradingEnv
from stevie_trainer.rl.agent import build_model, validation_episode, validation_performance
from stevie_trainer.rl.session import training_env
from stevie_trainer.rl.train import train
from support.data import BUNDLED_DAILY, BUNDLED_HOURLY
from support.specs import template

MARKETS = [
    {"uri": BUNDLED_DAILY, "symbol": "GOOGL", "barsPerYear": 252},
    {"uri": BUNDLED_HOURLY, "symbol": "EURUSD"},
]
# result.json of a single-market run, as before data.markets existed.
SINGLE_KEYS = {
    "status", "finished_at", "timesteps", "algorithm", "data", "annualisation", "validation",
    "best_timesteps", "evaluations", "test_period", "test", "behaviour_cloning",
    "augmentation", "curriculum", "resumed_from", "artifacts", "versions", "timings",
}  # fmt: skip


def multi_spec(**overrides: Any) -> TrainingRunSpec:
    doc = template(data={"markets": MARKETS, "split": {"trainFraction": 0.6}}, nEnvs=5)
    return TrainingRunSpec.model_validate(doc | overrides)


def test_two_market_spec_validates_and_round_trips() -> None:
    spec = multi_spec()
    dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert "uri" not in dumped["data"] and len(dumped["data"]["markets"]) == 2
    assert TrainingRunSpec.model_validate(dumped) == spec
    assert [s.symbol for s in spec.data.sources()] == ["GOOGL", "EURUSD"]
    single = TrainingRunSpec.model_validate(template())
    assert not single.data.multi_market and single.data.sources()[0].uri == single.data.uri
    dumped_single = single.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert set(dumped_single["data"]) == {"uri", "barsPerYear", "split"}


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        ({"uri": BUNDLED_DAILY, "markets": MARKETS}, {}, "exactly one of data.uri"),
        ({}, {}, "exactly one of data.uri"),
        ({"markets": [MARKETS[0], MARKETS[0]]}, {}, "repeated: GOOGL"),
        ({"markets": MARKETS}, {"nEnvs": 1}, "nEnvs (1) must be at least"),
        ({"markets": MARKETS}, {"curriculum": {"enabled": True}}, "curriculum"),
    ],
)
def test_bad_multi_market_specs_are_refused_in_one_line(
    data: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match="Value error") as err:
        TrainingRunSpec.model_validate(template(data=data) | extra)
    assert message in str(err.value)


def test_episodes_never_mix_markets_and_every_market_trades() -> None:
    """Each block of environments steps exactly like a single-market env of its market
    alone (same seeds, same actions): its episodes read that market's bars only."""
    spec = multi_spec(env={"episodeLength": 60})
    prepared = prepare(spec)
    env = training_env(prepared)
    assert isinstance(env, MultiMarketVecEnv)
    assert block_sizes(5, 2) == [3, 2]
    assert env.market_of_env.tolist() == [0, 0, 0, 1, 1]
    alone = []
    for k, part in enumerate(prepared.parts):
        single = VecTradingEnv(
            part.train_market, spec.env, env.groups[k].num_envs,
            bounds=part.train_bounds, seed=spec.seed + env.blocks[k].start,
        )  # fmt: skip
        single.planner.set_starts(part.train_starts)
        alone.append(single)
    obs = env.reset()
    np.testing.assert_array_equal(obs, np.concatenate([s.reset() for s in alone]))
    rng = np.random.default_rng(1)
    finished = [0, 0]
    for _ in range(200):
        actions = rng.integers(0, env.action_space.n, size=env.num_envs)  # type: ignore[attr-defined]
        obs, rewards, dones, infos = env.step(actions)
        for k, single in enumerate(alone):
            b = env.blocks[k]
            s_obs, s_rew, _, _ = single.step(actions[b])
            np.testing.assert_array_equal(np.asarray(obs)[b], s_obs)
            np.testing.assert_array_equal(rewards[b], s_rew)
            first, last = prepared.parts[k].ranges[0]
            bars = env.groups[k].accounts.t
            assert ((bars >= first) & (bars <= last)).all()
        for i in np.flatnonzero(dones):
            assert infos[i]["market"] == env.market_of_env[i]
            finished[infos[i]["market"]] += 1
    assert min(finished) > 0  # every market finished episodes


def test_per_market_validation_equals_a_single_market_evaluation() -> None:
    spec = multi_spec()
    prepared = prepare(spec)
    model = build_model(spec, training_env(prepared))
    pooled, per_market = validation_performance(prepared, model)
    assert list(per_market) == ["GOOGL", "EURUSD"]
    for source in spec.data.sources():
        alone = TrainingRunSpec.model_validate(
            template(data={"uri": source.uri, "symbol": source.symbol,
                           "barsPerYear": source.bars_per_year, "split": {"trainFraction": 0.6}})
        )  # fmt: skip
        metrics = validation_episode(prepare(alone), model).performance().to_dict()
        assert per_market[str(source.symbol)] == metrics
    sharpes = [m["sharpe"] for m in per_market.values()]
    if all(s is not None for s in sharpes):
        assert math.isclose(pooled.sharpe, math.fsum(float(s or 0) for s in sharpes) / 2)
    else:
        assert math.isnan(pooled.sharpe)
    assert pooled.bars == sum(int(m["bars"] or 0) for m in per_market.values())
    with pytest.raises(ValueError, match=r"data\.markets"):
        validation_episode(prepared, model)


def test_multi_market_run_reports_per_market_and_pooled(tmp_path: Path) -> None:
    spec = multi_spec(totalTimesteps=1024, nEnvs=4)
    result = train(spec, str(tmp_path / "multi"), log=lambda _: None)
    single = train(
        TrainingRunSpec.model_validate(template()), str(tmp_path / "one"), log=lambda _: None
    )
    assert set(single) == SINGLE_KEYS  # a single-uri run's result.json is as before
    assert set(result) == SINGLE_KEYS | {"validation_markets", "test_markets"}
    assert set(result["validation"]) == set(single["validation"])
    assert set(result["validation_markets"]) == {"GOOGL", "EURUSD"}
    assert set(result["test"]) == set(single["test"])
    for policy, block in result["test"].items():
        assert set(block) == set(single["test"][policy])
        per = [result["test_markets"][m]["test"][policy] for m in ("GOOGL", "EURUSD")]
        assert block["trades"] == sum(p["trades"] for p in per)
        if all(p["total_return"] is not None for p in per):
            assert math.isclose(block["total_return"], np.mean([p["total_return"] for p in per]))
    for k in range(2):
        assert (tmp_path / "multi" / f"equity-{k}.png").is_file()
    assert [m["name"] for m in result["data"]["markets"]] == ["GOOGL", "EURUSD"]
    on_disk = json.loads((tmp_path / "multi" / "result.json").read_text())
    assert on_disk["test_markets"]["EURUSD"]["annualisation"]["bars_per_year"] > 1000


def test_studies_and_populations_take_several_markets() -> None:
    """A PBTPopulation scores a member on the pooled validation of its markets (one split:
    walk-forward is refused in one line at validation, not after hours of training). An
    HPOStudy's trial selects on the pooled validation (and a TrainingRun may combine several
    markets with walk-forward)."""
    from stevie_api.hpo import HPOStudySpec
    from stevie_api.pbt import PBTPopulationSpec

    markets = [
        {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv", "symbol": "GOOGL"},
        {"uri": "pkg://gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv", "symbol": "EUR"},
    ]
    template = {"data": {"markets": markets}, "nEnvs": 2}
    population = PBTPopulationSpec.model_validate({"template": template})
    assert population.template.data.multi_market
    walk_forward = template | {"evaluation": {"walkForward": {"folds": 2}}}
    with pytest.raises(ValueError, match="walkForward is not supported by a PBTPopulation"):
        PBTPopulationSpec.model_validate({"template": walk_forward})
    with pytest.raises(ValueError, match="nEnvs"):
        PBTPopulationSpec.model_validate({"template": template | {"nEnvs": 1}})
    for doc in (template, walk_forward):
        study = HPOStudySpec.model_validate({"template": doc})
        assert study.template.data.markets is not None and len(study.template.data.markets) == 2
    run = TrainingRunSpec.model_validate(walk_forward)
    assert run.evaluation.walk_forward is not None and run.data.multi_market


def test_only_uri_names_the_markets_when_there_are_several() -> None:
    from stevie_api.market import DataSpec

    one = DataSpec.model_validate({"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"})
    assert one.only_uri() == "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"
    several = DataSpec.model_validate({"markets": [{"uri": "a.csv", "symbol": "A"},
                                                   {"uri": "b.csv", "symbol": "B"}]})  # fmt: skip
    with pytest.raises(ValueError, match="data lists several: A, B"):
        several.only_uri()
