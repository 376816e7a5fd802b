"""Spec comparison on the normalised form, and which edits a running resource takes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, create_model

from stevie_api.algorithms import PPOHyperparameters
from stevie_api.changes import MUTABLE, changed_paths, effective, normalized, refused
from stevie_api.hpo import HPOStudySpec
from stevie_api.kinds import KINDS
from stevie_api.pbt import PBTPopulationSpec
from stevie_api.training import TrainingRunSpec
from support.specs import hpo_study, pbt_population, template

# The next model version: PPOHyperparameters gains a knob with a default, and the spec a
# top-level field with a default (a nested model, as most additions are).
NewPPO = create_model(
    "NewPPO", __base__=PPOHyperparameters, target_entropy=(float, Field(default=0.5))
)
NewTrainingRunSpec = create_model(
    "NewTrainingRunSpec",
    __base__=TrainingRunSpec,
    ppo=(NewPPO, Field(default_factory=NewPPO)),
    warm_start=(bool, Field(default=False)),
)


def old_stored() -> dict[str, Any]:
    """spec.json as the current model writes it: every default spelled out."""
    spec = TrainingRunSpec.model_validate(template())
    return spec.model_dump(by_alias=True, exclude_none=True, mode="json")


def test_an_added_defaulted_field_is_no_change() -> None:
    new = NewTrainingRunSpec.model_validate(template())
    assert "targetEntropy" in new.model_dump(by_alias=True)["ppo"]  # the field is real
    assert changed_paths(old_stored(), new, NewTrainingRunSpec) == []
    assert normalized(old_stored(), NewTrainingRunSpec) == normalized(new, NewTrainingRunSpec)
    # ... and setting it is a change, named by its path.
    ppo = template()["ppo"] | {"targetEntropy": 0.1}
    tuned = NewTrainingRunSpec.model_validate(template(ppo=ppo))
    assert changed_paths(old_stored(), tuned, NewTrainingRunSpec) == ["spec.ppo.targetEntropy"]


def test_defaults_written_explicitly_are_no_change_and_real_changes_are_named() -> None:
    base = template()
    explicit = template(device="cpu", seed=0)  # the defaults the API server would write
    assert changed_paths(base, explicit, TrainingRunSpec) == []
    edited = template(totalTimesteps=4096, ppo={**base["ppo"], "learningRate": 1e-4})
    assert changed_paths(base, edited, TrainingRunSpec) == [
        "spec.ppo.learningRate",
        "spec.totalTimesteps",
    ]


def test_a_stored_spec_that_no_longer_validates_differs_as_a_whole() -> None:
    stored = old_stored() | {"removedKnob": 1}
    assert changed_paths(stored, TrainingRunSpec.model_validate(template()), TrainingRunSpec) == [
        "spec"
    ]


def test_mutable_fields_per_kind() -> None:
    assert set(MUTABLE) == set(KINDS)
    old = HPOStudySpec.model_validate(hpo_study()["spec"])
    budget = hpo_study(maxTrials=40, parallelism=3, maxFailedTrials=5)["spec"]
    assert refused("HPOStudy", old, HPOStudySpec.model_validate(budget), HPOStudySpec) == []
    search = hpo_study(sampler="random", template=template(seed=3))["spec"]
    paths = refused("HPOStudy", old, HPOStudySpec.model_validate(search), HPOStudySpec)
    assert paths == ["spec.sampler", "spec.template.seed"]
    pbt = pbt_population()["spec"]
    wider = PBTPopulationSpec.model_validate(pbt | {"parallelism": 3})
    assert refused("PBTPopulation", pbt, wider, PBTPopulationSpec) == []
    assert refused("TrainingRun", template(), template(activeDeadlineSeconds=60),
                   TrainingRunSpec) == []  # fmt: skip


@pytest.mark.parametrize("kind", ["PBTPopulation", "HPOStudy"])
def test_effective_keeps_the_applied_spec_with_the_mutable_fields_of_the_edit(kind: str) -> None:
    model: Any = PBTPopulationSpec if kind == "PBTPopulation" else HPOStudySpec
    doc = (pbt_population() if kind == "PBTPopulation" else hpo_study())["spec"]
    edit = model.model_validate(doc | {"parallelism": 4, "template": template(seed=9)})
    spec = effective(kind, doc, edit)
    assert spec.parallelism == 4 and spec.template.seed == 0
