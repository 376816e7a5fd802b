"""The pydantic models: defaults, validation messages, serialisation, helpers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import stevie_api
from stevie_api import (
    API_VERSION,
    DataSpec,
    Ensemble,
    EnvSpec,
    ExpertSpec,
    HPOStudy,
    PBTPopulation,
    SplitSpec,
    TrainingRun,
    TrainingRunSpec,
)
from stevie_api.algorithms import DQNHyperparameters
from stevie_api.ensemble import EnsembleMember
from stevie_api.hpo import HPOStudySpec
from stevie_api.pbt import PBTPopulationSpec

DATA = {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"}
META = {"name": "demo"}


def tr_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": META,
        "spec": {"data": DATA, **spec},
    }


def error_text(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return "\n".join(
        ".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in excinfo.value.errors()
    )


def test_constants() -> None:
    assert stevie_api.GROUP == "stevie.dev"
    assert stevie_api.VERSION == "v1alpha1"
    assert API_VERSION == "stevie.dev/v1alpha1"
    for kind in (TrainingRun, HPOStudy, PBTPopulation, Ensemble):
        assert kind.model_fields["api_version"].default == API_VERSION


def test_market_defaults() -> None:
    split = SplitSpec()
    assert (split.train_fraction, split.validation_fraction) == (0.7, 0.15)
    assert split.validation_start is None and split.test_start is None
    data = DataSpec(uri="a.csv")
    assert data.symbol is None and data.bars_per_year is None and data.split == SplitSpec()
    env = EnvSpec()
    assert env.window == 20
    assert env.features == ["log_return", "rsi", "ma_fast_ratio", "ma_slow_ratio", "volatility"]
    assert (env.rsi_period, env.ma_fast, env.ma_slow, env.volatility_window) == (14, 10, 30, 20)
    assert env.action_scheme == "target" and env.positions == [-1.0, 0.0, 1.0]
    assert (env.trade_size, env.max_position, env.allow_short) == (0.5, 1.0, False)
    assert (env.no_trade_band, env.min_hold_bars, env.turnover_penalty) == (0.0, 8, 0.0)
    assert (env.fee_bps, env.slippage_bps) == (10.0, 5.0)
    assert (env.reward, env.reward_scale, env.drawdown_penalty) == ("log_return", 100.0, 1.0)
    assert (env.sharpe_eta, env.episode_length) == (0.01, 1000)
    assert env.observation_size == 104
    assert EnvSpec(window=10, features=["rsi"]).observation_size == 14
    expert = ExpertSpec()
    assert (expert.rsi_oversold, expert.rsi_overbought) == (30, 70)
    assert (expert.stop_loss, expert.take_profit, expert.allow_short) == (0.05, 0.10, True)


def test_training_defaults() -> None:
    spec = TrainingRunSpec.model_validate({"data": DATA})
    assert spec.algorithm == "PPO" and spec.total_timesteps == 100_000
    assert (spec.seed, spec.n_envs, spec.device) == (0, 8, "cpu")
    assert spec.ppo.to_sb3_kwargs() == {
        "learning_rate": 3e-4,
        "n_steps": 2048,
        "batch_size": 64,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.01,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
    }
    assert spec.dqn.to_sb3_kwargs() == {
        "learning_rate": 1e-4,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "batch_size": 64,
        "tau": 1.0,
        "gamma": 0.99,
        "train_freq": 4,
        "gradient_steps": 1,
        "target_update_interval": 1000,
        "exploration_fraction": 0.1,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
    }
    assert spec.policy.net_arch == [64, 64] and spec.policy.activation == "tanh"
    bc = spec.behaviour_cloning
    assert (bc.enabled, bc.epochs, bc.learning_rate, bc.batch_size) == (False, 20, 1e-3, 256)
    assert (bc.validation_fraction, bc.patience) == (0.2, 3)
    aug = spec.augmentation
    assert not aug.enabled and aug.copies == 2
    assert aug.noise.enabled and aug.noise.std == 0.001
    assert aug.volume_scaling.range == 0.05 and aug.regime_shift.magnitude == 0.002
    assert (aug.volatility_scaling.low, aug.volatility_scaling.high) == (0.8, 1.2)
    assert (aug.time_warp.low, aug.time_warp.high) == (0.8, 1.2)
    cur = spec.curriculum
    assert not cur.enabled
    assert cur.stages == ["stable", "moderate", "high_volatility", "turbulent"]
    assert (cur.promotion, cur.score_threshold, cur.window_episodes) == ("score", 0.0, 10)
    assert cur.steps_per_stage is None
    assert spec.evaluation.eval_freq == 10_000
    assert (spec.checkpoint.interval_steps, spec.checkpoint.keep) == (10_000, 3)
    assert spec.storage.uri is None and spec.storage.s3_secret_ref is None
    assert (spec.resources.cpu, spec.resources.memory, spec.resources.gpu) == ("1", "2Gi", 0)
    assert spec.node_selector == {} and spec.tolerations == []
    assert spec.backoff_limit == 3 and spec.active_deadline_seconds is None
    assert spec.image is None and spec.service_account_name is None


def test_hpo_defaults_are_the_seeds_space() -> None:
    spec = HPOStudySpec.model_validate({"template": {"data": DATA}})
    space = {k: v.model_dump(exclude_none=True) for k, v in spec.search_space.items()}
    assert space == {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "gamma": {"type": "float", "low": 0.9, "high": 0.9999, "log": False},
        "clip_range": {"type": "float", "low": 0.1, "high": 0.4, "log": False},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256], "log": False},
        "n_steps": {"type": "categorical", "choices": [1024, 2048, 4096], "log": False},
        "ent_coef": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    }
    assert (spec.sampler, spec.pruner) == ("tpe", "median")
    assert [o.model_dump() for o in spec.objectives] == [
        {"metric": "validation.sharpe", "direction": "maximize"}
    ]
    assert spec.significance.seeds == 3
    # A DQN template gets a DQN space (the seed's space is PPO's).
    dqn = HPOStudySpec.model_validate({"template": {"data": DATA, "algorithm": "DQN"}})
    assert set(dqn.search_space) <= set(DQNHyperparameters.model_fields)


def test_pbt_defaults() -> None:
    spec = PBTPopulationSpec.model_validate({"template": {"data": DATA}})
    assert (spec.population_size, spec.perturbation_interval, spec.mode) == (8, 10_000, "async")
    assert (spec.quantile_fraction, spec.resample_probability) == (0.25, 0.25)
    assert spec.perturbation_factors == [0.8, 1.2]
    assert set(spec.hyperparam_mutations) == {"learning_rate", "ent_coef", "clip_range", "gamma"}
    assert spec.fitness.as_dict() == {
        "sharpe": 0.4,
        "mean_profit": 0.3,
        "win_rate": 0.2,
        "stability": 0.1,
    }
    assert (spec.stopping.max_intervals, spec.stopping.target_fitness) == (10, None)
    assert (spec.parallelism, spec.max_interval_retries) == (2, 2)
    assert spec.quantile_size == 2 and spec.timesteps_per_member == 100_000


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"env": {"window": 1}}, "env.window"),
        ({"env": {"maFast": 20, "maSlow": 10}}, "maSlow (10) must be greater than maFast (20)"),
        ({"env": {"features": ["rsi", "rsi"]}}, "features must be unique"),
        ({"env": {"features": []}}, "env.features"),
        ({"env": {"positions": [0.0, -1.0]}}, "strictly increasing"),
        ({"env": {"positions": [-1.0, 1.0]}}, "must include 0.0"),
        ({"env": {"positions": [0.0, 2.0]}}, "env.positions.1"),
        ({"data": {"uri": ""}}, "data.uri"),
        ({"data": {**DATA, "split": {"trainFraction": 0.9, "validationFraction": 0.2}}}, "< 1"),
        ({"data": {**DATA, "split": {"validationStart": "2017-01-01"}}}, "given together"),
        (
            {
                "data": {
                    **DATA,
                    "split": {"validationStart": "2018-01-01", "testStart": "2017-06-01"},
                }
            },
            "must be before testStart",
        ),
        ({"data": {**DATA, "split": {"validationStart": "x", "testStart": "y"}}}, "ISO 8601"),
        ({"expert": {"rsiOversold": 80}}, "rsiOversold (80.0) must be less than rsiOverbought"),
        ({"algorithm": "DQN", "behaviourCloning": {"enabled": True}}, "behaviourCloning"),
        ({"dqn": {"explorationFinalEps": 0.5, "explorationInitialEps": 0.1}}, "explorationFinal"),
        ({"ppo": {"clipRange": 0}}, "ppo.clipRange"),
        ({"ppo": {"batchSize": 1}}, "ppo.batchSize"),
        ({"nEnvs": 0}, "nEnvs"),
        ({"resources": {"cpu": "lots"}}, "not a Kubernetes quantity"),
        ({"storage": {"uri": "http://x"}}, "unsupported scheme"),
        ({"storage": {"uri": "s3://"}}, "no bucket"),
        ({"augmentation": {"timeWarp": {"low": 2.0, "high": 1.0}}}, "low (2.0) must be <= high"),
        ({"curriculum": {"stages": ["stable", "stable"]}}, "stages must be unique"),
        ({"tolerations": [{"operator": "Exists", "value": "x"}]}, "operator is Exists"),
    ],
)
def test_training_run_validation_names_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        TrainingRun.model_validate(tr_doc(**spec))
    assert needle in error_text(excinfo)


def test_unknown_field_and_metadata_name() -> None:
    with pytest.raises(ValidationError) as excinfo:
        TrainingRun.model_validate(tr_doc(env={"windw": 3}))
    assert "spec.env.windw" in error_text(excinfo)
    bad = {**tr_doc(), "metadata": {"name": "Not_Valid"}}
    with pytest.raises(ValidationError) as excinfo:
        TrainingRun.model_validate(bad)
    assert "metadata.name" in error_text(excinfo) and "DNS-1123" in error_text(excinfo)
    # Other Kubernetes metadata is kept as is.
    meta = {"name": "x", "managedFields": [{"manager": "kubectl"}], "ownerReferences": []}
    run = TrainingRun.model_validate({**tr_doc(), "metadata": meta})
    assert run.to_dict()["metadata"]["managedFields"] == [{"manager": "kubectl"}]


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"foo": {"type": "float", "low": 0, "high": 1}}, "'foo' is not a PPO hyperparameter"),
        ({"gamma": {"type": "float", "low": 0.5, "high": 2}}, "2.0 is not a valid gamma"),
        ({"batch_size": {"type": "float", "low": 8, "high": 64}}, "batch_size is an integer"),
        ({"batch_size": {"type": "categorical", "choices": [32, "x"]}}, "'x' is not a valid"),
        ({"gamma": {"type": "float", "low": 0.99, "high": 0.9}}, "low must be < high"),
        ({"ent_coef": {"type": "float", "low": 0, "high": 0.1, "log": True}}, "needs low > 0"),
        ({"n_steps": {"type": "categorical"}}, "needs a non-empty choices"),
        ({"n_steps": {"type": "int", "low": 1.5, "high": 8}}, "integer low and high"),
        ({}, "at least one hyperparameter"),
    ],
)
def test_search_space_validation(space: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        HPOStudySpec.model_validate({"template": {"data": DATA}, "searchSpace": space})
    assert needle in error_text(excinfo)


def test_hpo_objectives() -> None:
    two = [
        {"metric": "validation.sharpe"},
        {"metric": "validation.max_drawdown", "direction": "minimize"},
    ]
    base: dict[str, Any] = {"template": {"data": DATA}, "objectives": two}
    with pytest.raises(ValidationError) as excinfo:
        HPOStudySpec.model_validate(base)
    assert "set pruner: none" in error_text(excinfo)
    with pytest.raises(ValidationError) as excinfo:
        HPOStudySpec.model_validate({**base, "pruner": "none", "sampler": "cmaes"})
    assert "sampler cmaes does not support several objectives" in error_text(excinfo)
    ok = HPOStudySpec.model_validate({**base, "pruner": "none", "sampler": "nsga2"})
    assert ok.multi_objective
    with pytest.raises(ValidationError) as excinfo:
        HPOStudySpec.model_validate({**base, "objectives": [{"metric": "test.sharpe"}]})
    assert "objectives.0.metric" in error_text(excinfo) and "never optimised" in error_text(excinfo)


def test_pbt_validation() -> None:
    base: dict[str, Any] = {"template": {"data": DATA}}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"populationSize": 1}, "populationSize"),
        ({"quantileFraction": 0.75}, "quantileFraction"),
        ({"perturbationFactors": [0.8, -1]}, "perturbationFactors must be > 0"),
        ({"hyperparamMutations": {"clip_range": {"type": "float", "low": 0.1, "high": 3}}}, "3.0"),
        ({"fitness": {"sharpe": 0, "meanProfit": 0, "winRate": 0, "stability": 0}}, "> 0"),
    ]
    for bad, needle in cases:
        with pytest.raises(ValidationError) as excinfo:
            PBTPopulationSpec.model_validate({**base, **bad})
        assert needle in error_text(excinfo), bad
    dqn = PBTPopulationSpec.model_validate({"template": {"data": DATA, "algorithm": "DQN"}})
    assert set(dqn.hyperparam_mutations) <= set(DQNHyperparameters.model_fields)


def test_ensemble_members_need_exactly_one_source() -> None:
    assert EnsembleMember.model_validate({"trainingRun": "a"}).source_kind == "TrainingRun"
    assert EnsembleMember.model_validate({"uri": "s3://b/m.zip"}).reference == "s3://b/m.zip"
    for bad, needle in [({}, "got none"), ({"trainingRun": "a", "hpoStudy": "b"}, "got 2")]:
        with pytest.raises(ValidationError) as excinfo:
            EnsembleMember.model_validate(bad)
        assert "exactly one of trainingRun, pbtPopulation, hpoStudy, uri" in error_text(excinfo)
        assert needle in error_text(excinfo)
    with pytest.raises(ValidationError) as excinfo:
        Ensemble.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "Ensemble",
                "metadata": META,
                "spec": {"members": [{"name": "a", "uri": "x"}, {"name": "a", "uri": "y"}]},
            }
        )
    assert "names must be unique" in error_text(excinfo)


def test_ensemble_acting_rules_default_to_the_members() -> None:
    from stevie_api.ensemble import EnsembleSpec

    members = {"members": [{"trainingRun": "a"}]}
    plain = EnsembleSpec.model_validate(members)
    assert plain.no_trade_band is None and plain.min_hold_bars is None
    assert "noTradeBand" not in plain.model_dump(by_alias=True, exclude_none=True)
    ruled = EnsembleSpec.model_validate(members | {"noTradeBand": 0.05, "minHoldBars": 3})
    assert (ruled.no_trade_band, ruled.min_hold_bars) == (0.05, 3)
    for bad in ({"noTradeBand": -0.1}, {"minHoldBars": -1}):
        with pytest.raises(ValidationError) as excinfo:
            EnsembleSpec.model_validate(members | bad)
        assert f"{next(iter(bad))}: Input should be greater than or equal to 0" in error_text(
            excinfo
        )
