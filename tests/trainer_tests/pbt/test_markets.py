"""A PBT population over several markets (template.data.markets): a member's interval trains
on every market and is scored on the pooled validation; the finish tests the best member
per market and pooled, with a DSR over the joined per-bar validation returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stevie_api.common import ParamValue
from stevie_api.pbt import PBTPopulationSpec
from stevie_trainer.env.multivec import MultiMarketVecEnv
from stevie_trainer.evaluation.performance import returns_from_equity
from stevie_trainer.evaluation.pooled import as_performance, pool_metrics
from stevie_trainer.pbt.evolution import new_population, record_result
from stevie_trainer.pbt.finish import finish_population
from stevie_trainer.pbt.fitness import fitness
from stevie_trainer.pbt.luck import decode_returns
from stevie_trainer.pbt.member import interval_spec, prepared_data, train_interval
from stevie_trainer.rl import session as rl_session
from stevie_trainer.rl.agent import load_model, validation_episode, validation_performance
from support.data import BUNDLED_DAILY, BUNDLED_HOURLY
from support.specs import pbt_population, template

# One bars-per-year for both, so the pooled validation Sharpe has a per-bar value (DSR).
MARKETS = [
    {"uri": BUNDLED_DAILY, "symbol": "GOOGL", "barsPerYear": 252},
    {"uri": BUNDLED_HOURLY, "symbol": "EURUSD", "barsPerYear": 252},
]
NAMES = ["GOOGL", "EURUSD"]
PARAMS: dict[str, ParamValue] = {
    "learning_rate": 3e-4,
    "ent_coef": 0.01,
    "clip_range": 0.2,
    "gamma": 0.99,
}
First = tuple[PBTPopulationSpec, str, dict[str, Any], list[Any]]


def quiet(_: str) -> None:
    pass


def multi_pbt(**overrides: Any) -> PBTPopulationSpec:
    run = template(data={"markets": MARKETS, "split": {"trainFraction": 0.6}}, nEnvs=4)
    doc = pbt_population(template=run, populationSize=2, stopping={"maxIntervals": 2})
    return PBTPopulationSpec.model_validate(doc["spec"] | overrides)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> First:
    """Interval 0 of member 0 of a 2-market population, with the training envs it built."""
    spec = multi_pbt()
    out = str(tmp_path_factory.mktemp("pbt-markets") / "m0-i0")
    envs: list[Any] = []
    real = rl_session.training_env

    def spy(prepared: Any) -> Any:
        envs.append(real(prepared))
        return envs[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rl_session, "training_env", spy)
        result = train_interval(spec, 0, 0, PARAMS, None, out, log=quiet)
    return spec, out, result, envs


def test_an_interval_trains_on_every_market_and_scores_the_pooled_validation(
    first: First,
) -> None:
    spec, out, result, envs = first
    assert result["status"] == "succeeded"
    assert (result["timesteps_start"], result["timesteps"]) == (0, spec.perturbation_interval)
    # Trained in the multi-market vec env: every market has its block of environments.
    assert len(envs) == 1 and isinstance(envs[0], MultiMarketVecEnv)
    assert sorted(set(envs[0].market_of_env.tolist())) == [0, 1]
    # Scored on the pooled validation, each market's block beside it.
    per_market = result["validation_markets"]
    assert list(per_market) == NAMES
    pooled = as_performance(pool_metrics(per_market)).to_dict()
    assert result["validation"] == pooled
    assert result["fitness"] == pytest.approx(fitness(pooled, spec.fitness))
    # The pooling a multi-market TrainingRun's model selection reads, of the saved model.
    prepared = prepared_data(spec)
    run_spec = interval_spec(spec, 0, 0, PARAMS)
    model = load_model(run_spec, Path(out, "model.zip").read_bytes())
    perf, markets = validation_performance(prepared, model)
    assert markets == per_market
    assert perf.to_dict() == pytest.approx(result["validation"], nan_ok=True)
    # The per-bar returns: the markets' series joined in the spec's order.
    returns = decode_returns(Path(out, "validation_returns.npy").read_bytes())
    bars = [per_market[name]["bars"] for name in NAMES]
    assert returns.size == sum(bars) == result["validation"]["bars"]
    expected = np.concatenate(
        [returns_from_equity(validation_episode(p, model).equity) for p in prepared.parts]
    )
    np.testing.assert_array_equal(returns, expected)
    assert json.loads(Path(out, "result.json").read_text()) == result


def test_a_two_market_population_reports_each_markets_and_the_pooled_test_and_a_dsr(
    first: First, tmp_path: Path
) -> None:
    """2 members x 2 intervals (member 1's second interval continues member 0's checkpoint),
    through the finish."""
    spec, out0, result0, _ = first
    pop = new_population("tiny-markets", spec, np.random.default_rng(0))
    folders = {(0, 0): out0}
    plan = [(1, 0, None), (0, 1, out0), (1, 1, out0)]
    results = {(0, 0): result0}
    for member, interval, init in plan:
        folder = str(tmp_path / f"m{member}-i{interval}")
        params = pop.members[member].hyperparameters
        results[member, interval] = train_interval(
            spec, member, interval, params, init, folder, log=quiet
        )
        folders[member, interval] = folder
    for member, interval in sorted(results, key=lambda k: (k[1], k[0])):
        pop.members[member].status = "running"
        assert record_result(
            pop, member, interval, results[member, interval]["fitness"], folders[member, interval]
        )
    doc = finish_population(spec, pop, str(tmp_path / "pop"), log=quiet)
    best = doc["best"]
    top = max(results.values(), key=lambda r: r["fitness"])
    assert best["fitness"] == top["fitness"]
    # Each market's test report, and the pooled one (each policy's metrics pooled).
    per_market = best["test_markets"]
    assert list(per_market) == NAMES
    policies = {"best member", "buy-and-hold", "expert", "random"}
    assert set(best["test"]) == policies
    for policy in policies:
        assert set(per_market[NAMES[0]]["test"][policy]) == set(best["test"][policy])
        pooled = pool_metrics({n: per_market[n]["test"][policy] for n in NAMES})
        assert best["test"][policy] == pooled
    assert best["test"]["best member"]["bars"] == sum(
        per_market[n]["test"]["best member"]["bars"] for n in NAMES
    )
    assert list(best["validation_markets"]) == NAMES
    for k in range(2):
        assert (tmp_path / "pop" / "best" / f"equity-{k}.png").stat().st_size > 0
    best_result = json.loads((tmp_path / "pop/best/result.json").read_text())
    assert list(best_result["validation_markets"]) == NAMES
    # The DSR of the selected evaluation, over the joined per-bar validation returns.
    luck = doc["overfitting"]
    assert luck["evaluations"] == 4
    assert luck["selected"] == {"member": best["member"], "interval": best["interval"]}
    assert luck["evaluations_with_sharpe"] >= 2, luck
    dsr = luck["deflated_sharpe"]
    assert dsr is not None and 0 <= dsr["dsr"] <= 1
    assert dsr["n_obs"] == top["validation"]["bars"]
    assert any("stored validation_returns.npy" in note for note in luck["notes"])


def test_markets_of_different_rates_get_no_dsr_and_the_note_says_why(tmp_path: Path) -> None:
    """A pooled validation over markets of different bars per year has no bars per year,
    hence no per-bar Sharpe: no DSR, and not "no validation Sharpe" either."""
    from stevie_trainer.common.artifacts import RunStore
    from stevie_trainer.pbt.finish import interval_results
    from stevie_trainer.pbt.luck import overfitting_section
    from stevie_trainer.pbt.state import summary

    spec = multi_pbt()
    pop = new_population("rates", spec, np.random.default_rng(0))
    for m, sharpe in enumerate([0.4, 0.9]):
        folder = str(tmp_path / f"m{m}")
        validation = {"sharpe": sharpe, "bars": 300, "bars_per_year": None}
        RunStore(folder).write_json(
            "result.json", {"status": "succeeded", "validation": validation}
        )
        pop.members[m].status = "running"
        assert record_result(pop, m, 0, sharpe, folder)
    doc = overfitting_section(pop, interval_results(pop), summary(pop)["best"])
    assert doc["deflated_sharpe"] is None and doc["selected"] == {"member": 1, "interval": 0}
    assert "pooled over markets of different bars per year" in doc["notes"][0]
