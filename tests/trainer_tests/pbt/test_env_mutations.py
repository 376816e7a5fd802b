"""PBT over the cost-aware acting rules: env.noTradeBand, env.minHoldBars and
env.turnoverPenalty validate as mutations, are sampled and perturbed within their priors,
and a member's interval trains and is scored under its own values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from stevie_api.common import ParamSpec, ParamValue
from stevie_api.pbt import PBTPopulationSpec
from stevie_trainer.pbt.evolution import explore, new_population
from stevie_trainer.pbt.member import interval_spec, train_interval
from support.specs import pbt_population

MUTATIONS: dict[str, Any] = {
    "env.noTradeBand": {"type": "float", "low": 0.0, "high": 0.5},
    "env.minHoldBars": {"type": "int", "low": 0, "high": 24},
    "env.turnoverPenalty": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True},
}


def population_spec(mutations: dict[str, Any], **overrides: Any) -> PBTPopulationSpec:
    doc = pbt_population(hyperparamMutations=mutations, **overrides)["spec"]
    return PBTPopulationSpec.model_validate(doc)


def within(prior: ParamSpec, value: ParamValue) -> bool:
    assert prior.low is not None and prior.high is not None
    ok = prior.low <= float(value) <= prior.high
    return ok and (isinstance(value, int) if prior.type == "int" else True)


def test_a_population_samples_and_perturbs_the_env_rules() -> None:
    spec = population_spec(MUTATIONS, populationSize=8)
    priors = spec.hyperparam_mutations
    rng = np.random.default_rng(0)
    pop = new_population("p", spec, rng)
    firsts = [m.hyperparameters for m in pop.members]
    assert all(set(h) == set(MUTATIONS) for h in firsts)
    assert all(within(priors[k], h[k]) for h in firsts for k in h)
    assert len({h["env.noTradeBand"] for h in firsts}) == 8
    moved = 0
    for h in firsts:
        new, ops = explore(h, priors, rng, 0.25, [0.8, 1.2])
        assert set(ops) == set(MUTATIONS) and all(within(priors[k], new[k]) for k in new)
        moved += sum(new[k] != h[k] for k in MUTATIONS)
        run = interval_spec(spec, 0, 1, new)
        env = run.env
        assert (env.no_trade_band, env.min_hold_bars, env.turnover_penalty) == (
            new["env.noTradeBand"],
            new["env.minHoldBars"],
            new["env.turnoverPenalty"],
        )
    assert moved > 16


def test_other_env_fields_are_refused_as_mutations() -> None:
    with pytest.raises(ValidationError, match="nor a searchable env field"):
        population_spec({"env.slippageBps": {"type": "float", "low": 0, "high": 10}})


def test_an_interval_trains_and_is_scored_under_its_own_rules(tmp_path: Path) -> None:
    """A hold longer than the validation split and a band wider than any order: the
    validation pass enters at most once, so it has at most one round trip."""
    spec = population_spec(MUTATIONS)
    base: dict[str, ParamValue] = {"learning_rate": 3e-4, "env.turnoverPenalty": 1e-3}
    held: dict[str, ParamValue] = base | {"env.minHoldBars": 100_000, "env.noTradeBand": 5.0}
    free: dict[str, ParamValue] = base | {"env.minHoldBars": 0, "env.noTradeBand": 0.0}
    results = {
        name: train_interval(spec, 0, 0, params, None, str(tmp_path / name), log=lambda _: None)
        for name, params in (("held", held), ("free", free))
    }
    assert results["held"]["hyperparameters"] == held
    assert results["held"]["validation"]["trades"] <= 1
    assert results["free"]["validation"]["trades"] > 1
