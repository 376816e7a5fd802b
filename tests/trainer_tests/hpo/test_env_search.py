"""HPO over the cost-aware acting rules: env.noTradeBand, env.minHoldBars, env.turnoverPenalty
validate as search-space keys, are sampled by Optuna and land in each trial's env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.hpo.study import ask_trials, open_study, tell_trial, trial_spec
from support.specs import template

SPACE: dict[str, Any] = {
    "env.noTradeBand": {"type": "float", "low": 0.0, "high": 0.5},
    "env.minHoldBars": {"type": "int", "low": 0, "high": 24},
    "env.turnoverPenalty": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


def study_spec(space: dict[str, Any], **overrides: Any) -> HPOStudySpec:
    doc = {"template": template(), "searchSpace": space, "maxTrials": 8, **overrides}
    return HPOStudySpec.model_validate(doc)


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes"])
def test_a_study_samples_the_env_rules_into_each_trials_env(sampler: str, tmp_path: Path) -> None:
    spec = study_spec(SPACE, sampler=sampler, startupTrials=2)
    study = open_study(spec, "s", str(tmp_path / "j.journal"))
    seen = set()
    for _ in range(4):
        for asked in ask_trials(study, spec, 2, "s"):
            p = asked.params
            assert set(p) == set(SPACE)
            assert 0.0 <= p["env.noTradeBand"] <= 0.5
            assert isinstance(p["env.minHoldBars"], int) and 0 <= p["env.minHoldBars"] <= 24
            assert 1e-4 <= p["env.turnoverPenalty"] <= 1e-2
            run, _ = trial_spec(spec, p)
            env = run.env
            got = (env.no_trade_band, env.min_hold_bars, env.turnover_penalty)
            assert got == (p["env.noTradeBand"], p["env.minHoldBars"], p["env.turnoverPenalty"])
            assert run.ppo.learning_rate == p["learning_rate"]
            assert run.env.fee_bps == spec.template.env.fee_bps  # the rest of env is the template's
            seen.add(got)
            tell_trial(study, asked.number, [-p["env.turnoverPenalty"]])
    assert len(seen) == 8  # distinct points, not a constant


def test_an_env_path_in_a_categorical_space_is_checked_like_its_field() -> None:
    spec = study_spec({"env.minHoldBars": {"type": "categorical", "choices": [0, 4, 12]}})
    run, _ = trial_spec(spec, {"env.minHoldBars": 12})
    assert run.env.min_hold_bars == 12 and run.ppo == spec.template.ppo


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"env.feeBps": {"type": "float", "low": 0, "high": 20}}, "nor a searchable env field"),
        ({"env.window": {"type": "int", "low": 8, "high": 64}}, "env.noTradeBand"),
        ({"env.minHoldBars": {"type": "float", "low": 0, "high": 5}}, "is an integer"),
        ({"env.noTradeBand": {"type": "float", "low": -0.1, "high": 0.5}}, "greater than or equal"),
        ({"env.turnoverPenalty": {"type": "categorical", "choices": [0.0, -1.0]}}, "-1.0"),
    ],
)
def test_other_env_fields_and_invalid_values_are_refused(
    space: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValidationError) as err:
        study_spec(space)
    assert needle in str(err.value)
