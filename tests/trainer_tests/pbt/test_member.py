"""One PBT interval: fresh start, continuing from a checkpoint with new hyperparameters,
idempotence, the summary/plots/test backtest at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stevie_api.common import ParamValue
from stevie_api.pbt import PBTPopulationSpec
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.env.prepare import prepare
from stevie_trainer.evaluation.episode import run_policy
from stevie_trainer.evaluation.performance import sharpe_ratio
from stevie_trainer.pbt.evolution import new_population, record_result
from stevie_trainer.pbt.finish import finish_population, overhead
from stevie_trainer.pbt.fitness import fitness
from stevie_trainer.pbt.luck import decode_returns
from stevie_trainer.pbt.member import interval_spec, member_seed, train_interval
from stevie_trainer.pbt.state import LineageEvent
from stevie_trainer.rl.agent import AgentPolicy, continuation_overrides, load_model
from support.specs import pbt_population, template

First = tuple[PBTPopulationSpec, str, dict[str, Any]]


def pbt_spec(**overrides: Any) -> PBTPopulationSpec:
    return PBTPopulationSpec.model_validate(pbt_population(**overrides)["spec"])


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> First:
    """Interval 0 of member 0 (a fresh model), shared by the tests below."""
    spec = pbt_spec()
    out = str(tmp_path_factory.mktemp("pbt") / "m0-i0")
    params: dict[str, ParamValue] = {
        "learning_rate": 3e-4,
        "ent_coef": 0.01,
        "clip_range": 0.2,
        "gamma": 0.99,
    }
    return spec, out, train_interval(spec, 0, 0, params, None, out, log=quiet)


def test_a_fresh_interval_trains_one_interval_and_scores_on_validation(first: First) -> None:
    spec, out, result = first
    assert result["status"] == "succeeded"
    assert (result["timesteps_start"], result["timesteps"]) == (0, spec.perturbation_interval)
    assert result["fitness"] == pytest.approx(fitness(result["validation"], spec.fitness))
    assert result["checkpoint"] == out and result["init_checkpoint"] is None
    assert storage.exists(storage.join(out, "model.zip"))
    # The per-bar validation returns the fitness was scored on, for the finish's DSR.
    returns = decode_returns(Path(out, "validation_returns.npy").read_bytes())
    assert result["validation_returns"].endswith("validation_returns.npy")
    assert returns.size == result["validation"]["bars"]
    got = result["validation"]
    expected = sharpe_ratio(returns, got["bars_per_year"])
    assert (got["sharpe"] is None and np.isnan(expected)) or got["sharpe"] == pytest.approx(
        expected
    )
    timings = result["timings"]
    assert 0 < timings["train_seconds"] <= timings["total_seconds"]
    assert json.loads(Path(out, "result.json").read_text()) == result


def test_a_finished_interval_is_returned_without_training(first: First) -> None:
    spec, out, result = first
    model = Path(out, "model.zip")
    before = model.stat().st_mtime_ns
    again = train_interval(spec, 0, 0, {"learning_rate": 1e-3}, None, out, log=quiet)
    assert again == result and model.stat().st_mtime_ns == before


def test_continuing_keeps_weights_and_optimizer_and_applies_new_hyperparameters(
    first: First,
) -> None:
    spec, out, _ = first
    new = {"learning_rate": 1.234e-3, "ent_coef": 0.05, "clip_range": 0.33, "gamma": 0.95}
    run_spec = interval_spec(spec, 1, 1, new)
    data = storage.read_bytes(storage.join(out, "model.zip"))
    saved = load_model(run_spec, data)
    loaded = load_model(run_spec, data, overrides=continuation_overrides(run_spec))
    # Hyperparameters: the interval's, through SB3's rebuilt schedules.
    assert loaded.learning_rate == 1.234e-3 and loaded.lr_schedule(1.0) == 1.234e-3
    assert loaded.clip_range(1.0) == 0.33  # type: ignore[attr-defined]
    assert loaded.ent_coef == 0.05 and loaded.gamma == 0.95  # type: ignore[attr-defined]
    assert saved.learning_rate == 3e-4
    # Weights and Adam's moments: the checkpoint's, unchanged.
    for a, b in zip(saved.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    s_opt = saved.policy.optimizer.state_dict()["state"]
    l_opt = loaded.policy.optimizer.state_dict()["state"]
    assert s_opt and s_opt.keys() == l_opt.keys()
    for k in s_opt:
        assert torch.equal(s_opt[k]["exp_avg"], l_opt[k]["exp_avg"])
    assert loaded.num_timesteps == spec.perturbation_interval


def test_an_interval_from_another_members_checkpoint_continues_its_timesteps(
    first: First,
    tmp_path: Path,
) -> None:
    spec, out, _ = first
    new: dict[str, ParamValue] = {
        "learning_rate": 1e-3,
        "ent_coef": 0.02,
        "clip_range": 0.25,
        "gamma": 0.97,
    }
    result = train_interval(spec, 2, 1, new, out, str(tmp_path / "m2-i1"), log=quiet)
    p = spec.perturbation_interval
    assert (result["timesteps_start"], result["timesteps"]) == (p, 2 * p)
    assert result["init_checkpoint"] == out and result["hyperparameters"] == new
    trained = load_model(
        interval_spec(spec, 2, 1, new), (tmp_path / "m2-i1/model.zip").read_bytes()
    )
    assert trained.learning_rate == 1e-3
    assert member_seed(spec, 2, 1) != member_seed(spec, 0, 1) != member_seed(spec, 0, 0)


def test_dqn_continues_at_its_final_exploration_rate() -> None:
    doc = template(algorithm="DQN")
    del doc["ppo"]
    spec = TrainingRunSpec.model_validate(doc)
    kwargs = continuation_overrides(spec)
    assert kwargs["exploration_initial_eps"] == kwargs["exploration_final_eps"] == 0.05


def test_overhead_account() -> None:
    results = [
        {"timings": {"setup_seconds": 1, "train_seconds": 9, "eval_seconds": 0.5}},
        {"timings": {"setup_seconds": 1, "train_seconds": 9, "eval_seconds": 0.5}},
    ]
    account = overhead(results, {"a": 10.0, "b": 10.0})
    assert account["outside_training_share"] == pytest.approx(0.1)
    assert account["inside_intervals"]["setup_seconds"] == 2
    assert "outside_training_share" not in overhead(results, {})


@pytest.mark.slow
def test_finish_writes_summary_lineage_plots_and_the_best_members_test(
    first: First,
    tmp_path: Path,
) -> None:
    """A population whose member 1 copied member 0: the best checkpoint is tested once."""
    spec, out, result = first
    pop = new_population("tiny", spec, np.random.default_rng(0))
    for m in pop.members:
        m.status = "running"
    record_result(pop, 0, 0, result["fitness"], out)
    copy = train_interval(
        spec, 1, 0, pop.members[1].hyperparameters, None, str(tmp_path / "m1"), log=quiet
    )
    record_result(pop, 1, 0, copy["fitness"] - 1.0, str(tmp_path / "m1"))
    pop.events.append(
        LineageEvent(
            1, 1, 0, 1, out, pop.members[1].hyperparameters, {"learning_rate": 1e-3}, "test"
        )
    )
    doc = finish_population(spec, pop, str(tmp_path / "pop"), child_seconds={"x": 5.0}, log=quiet)
    assert doc["best"]["member"] == 0 and doc["best"]["fitness"] == result["fitness"]
    assert set(doc["best"]["test"]) == {"best member", "buy-and-hold", "expert", "random"}
    for name in ("pbt_summary.json", "lineage.json", "fitness.png", "hyperparameters.png",
                 "lineage.png", "best/model.zip", "best/equity.png", "best/spec.json",
                 "best/result.json"):  # fmt: skip
        assert (tmp_path / "pop" / name).stat().st_size > 0, name
    assert (tmp_path / "pop/best/model.zip").read_bytes() == Path(out, "model.zip").read_bytes()
    lineage = json.loads((tmp_path / "pop/lineage.json").read_text())
    assert lineage["exploits"][0]["copied_from"] == 0
    assert len(doc["intervals"]) == 2 and doc["overhead"]["member_wall_seconds"] == 5.0
    # 2 evaluations tried; the DSR (or why not) of the selected one, member 0 interval 0.
    luck = doc["overfitting"]
    assert luck["evaluations"] == 2 and luck["selected"] == {"member": 0, "interval": 0}
    assert (luck["deflated_sharpe"] is None) == (luck["evaluations_with_sharpe"] < 2)
    # The reported test figures are those of the copied model, evaluated here on its own.
    run_spec = interval_spec(spec, 0, 0, pop.members[0].hyperparameters)
    model = load_model(run_spec, (tmp_path / "pop/best/model.zip").read_bytes())
    prepared = prepare(run_spec)
    episode = run_policy(
        prepared.market, run_spec.env, prepared.splits.test, AgentPolicy(model), split_name="t"
    )
    reported = doc["best"]["test"]["best member"]
    assert reported["trades"] == len(episode.trade_returns)
    assert reported["total_return"] == pytest.approx(episode.equity[-1] - 1.0, rel=1e-9)
    assert reported == pytest.approx(episode.performance().to_dict(), rel=1e-9, nan_ok=True)
