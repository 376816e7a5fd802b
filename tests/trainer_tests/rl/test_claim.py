"""``claim``: a run folder belongs to what it trains, compared normalised."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, create_model

from stevie_api.training import TrainingRunSpec
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.rl.train import RunConflictError, claim, spec_json
from support.specs import template

# The next model version adds a defaulted field; its pods resume runs the old one started.
NewTrainingRunSpec = create_model(
    "NewTrainingRunSpec", __base__=TrainingRunSpec, warm_start=(bool, Field(default=False))
)


def claimed(tmp_path: Path) -> RunStore:
    store = RunStore(str(tmp_path / "run"))
    claim(store, TrainingRunSpec.model_validate(template()))
    assert store.read_json("spec.json") == spec_json(TrainingRunSpec.model_validate(template()))
    return store


def test_a_newer_model_with_a_defaulted_field_resumes_the_run(tmp_path: Path) -> None:
    store = claimed(tmp_path)
    claim(store, NewTrainingRunSpec.model_validate(template()))  # no RunConflictError
    with pytest.raises(RunConflictError, match=r"differs in: spec.warmStart\)"):
        claim(store, NewTrainingRunSpec.model_validate(template(warmStart=True)))


def test_where_the_pod_runs_is_not_what_it_trains(tmp_path: Path) -> None:
    store = claimed(tmp_path)
    moved = template(image="registry.example/stevie:2", resources={"cpu": "2"},
                     nodeSelector={"pool": "big"}, activeDeadlineSeconds=60)  # fmt: skip
    claim(store, TrainingRunSpec.model_validate(moved))
    edited = template(seed=7, totalTimesteps=2048)
    with pytest.raises(RunConflictError, match=r"differs in: spec.seed, spec.totalTimesteps\)"):
        claim(store, TrainingRunSpec.model_validate(edited))
