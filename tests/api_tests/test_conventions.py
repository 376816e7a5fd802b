"""Conventions every model follows: described camelCase fields, alias round trips,
metav1 conditions, and the helpers on specs (hyperparameter overrides, priors, splits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from stevie_api import (
    API_VERSION,
    Condition,
    Ensemble,
    HPOStudy,
    PBTPopulation,
    SplitSpec,
    TrainingRun,
    TrainingRunSpec,
)
from stevie_api.algorithms import DQNHyperparameters, PPOHyperparameters
from stevie_api.common import ObjectMeta, ParamSpec, StatusBase, StevieModel
from stevie_api.training import TrainingRunStatus

DATA = {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"}


def all_models() -> list[type[BaseModel]]:
    """Every model reachable from the four kinds."""
    seen: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.append(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in getattr(annotation, "__args__", ()):
            visit(arg)

    for kind in (TrainingRun, HPOStudy, PBTPopulation, Ensemble):
        visit(kind)
    return seen


def test_every_field_is_described_and_camel_cased() -> None:
    models = all_models()
    assert len(models) > 30
    for model in models:
        assert issubclass(model, StevieModel), model
        for name, field in model.model_fields.items():
            assert field.description and field.description.strip(), f"{model.__name__}.{name}"
            assert field.alias is not None and "_" not in field.alias, f"{model.__name__}.{name}"


def test_round_trip_by_alias() -> None:
    spec = TrainingRunSpec.model_validate({"data": DATA})
    run = TrainingRun(metadata=ObjectMeta(name="rt"), spec=spec)
    run.status = TrainingRunStatus(phase="Running")
    run.status.set_condition("Ready", "False", "Training", "step 10", observed_generation=1)
    dumped = run.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["apiVersion"] == API_VERSION and dumped["kind"] == "TrainingRun"
    assert "totalTimesteps" in dumped["spec"] and "total_timesteps" not in dumped["spec"]
    assert dumped["status"]["conditions"][0]["lastTransitionTime"].endswith("Z")
    again = TrainingRun.model_validate(dumped)
    assert again == run
    assert again.to_dict() == dumped


def test_conditions_follow_metav1() -> None:
    assert set(Condition.model_json_schema(by_alias=True)["properties"]) == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }
    status = StatusBase()
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1 = datetime(2024, 1, 2, tzinfo=UTC)
    assert status.set_condition("Ready", "False", "Pending", now=t0)
    assert not status.set_condition("Ready", "False", "StillPending", "msg", now=t1)
    cond = status.get_condition("Ready")
    assert cond is not None and cond.last_transition_time == t0 and cond.reason == "StillPending"
    assert status.set_condition("Ready", "True", "Done", now=t1)
    assert status.get_condition("Ready") == Condition(
        type="Ready", status="True", reason="Done", last_transition_time=t1
    )
    assert len(status.conditions) == 1
    with pytest.raises(ValidationError, match="CamelCase"):
        Condition(type="Ready", status="True", reason="not camel")


def test_with_hyperparameters_validates() -> None:
    spec = TrainingRunSpec.model_validate({"data": DATA})
    tuned = spec.with_hyperparameters({"learning_rate": 1e-3, "n_steps": 1024})
    assert tuned.ppo.learning_rate == 1e-3 and tuned.ppo.n_steps == 1024
    assert spec.ppo.learning_rate == 3e-4
    with pytest.raises(ValidationError):
        spec.with_hyperparameters({"gamma": 2.0})
    with pytest.raises(ValidationError):
        spec.with_hyperparameters({"nope": 1})
    dqn = TrainingRunSpec.model_validate({"data": DATA, "algorithm": "DQN"})
    assert isinstance(dqn.hyperparameters, DQNHyperparameters)
    assert isinstance(spec.hyperparameters, PPOHyperparameters)


def test_param_spec_helpers() -> None:
    prior = ParamSpec(type="float", low=0.1, high=0.4)
    assert prior.contains(0.2) and not prior.contains(0.5) and not prior.contains("a")
    assert ParamSpec(type="int", low=1, high=4).candidate_values() == [1, 4]
    cat = ParamSpec(type="categorical", choices=[32, 0.5, "a", True])
    assert cat.choices == [32, 0.5, "a", True]
    assert [type(c) for c in cat.choices or []] == [int, float, str, bool]


def test_split_boundaries() -> None:
    split = SplitSpec(validation_start="2017-01-01", test_start="2018-01-01T00:00:00+00:00")
    assert split.by_date
    assert split.boundaries() == (
        datetime(2017, 1, 1, tzinfo=UTC),
        datetime(2018, 1, 1, tzinfo=UTC),
    )
    assert SplitSpec().boundaries() is None
