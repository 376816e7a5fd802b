"""evaluation.walkForward: defaults, one-line messages for impossible settings, and no trace
of it in a single-split spec (so runs claimed before it existed are the same spec)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stevie_api.loader import problems
from stevie_api.training import TrainingRunSpec

DATA = {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"}


def spec(**fields: Any) -> TrainingRunSpec:
    return TrainingRunSpec.model_validate({"data": DATA, **fields})


def test_defaults_and_lcb_z() -> None:
    wf = spec(evaluation={"walkForward": {}}).evaluation.walk_forward
    assert wf is not None
    assert (wf.folds, wf.scheme, wf.score, wf.purge_bars, wf.embargo_bars) == (
        5, "anchored", "mean", None, 0,
    )  # fmt: skip
    assert wf.validation_bars is None and wf.train_bars is None and wf.lcb_z == 1.0
    lcb = spec(evaluation={"walkForward": {"score": "lcb", "z": 1.645}}).evaluation.walk_forward
    assert lcb is not None and lcb.lcb_z == 1.645


def test_a_single_split_spec_has_no_walk_forward_key() -> None:
    dumped = spec().model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["evaluation"] == {"evalFreq": 10_000}
    assert spec().evaluation.walk_forward is None


def test_a_walk_forward_spec_round_trips() -> None:
    """spec.json is re-read on resume and HPO copies the template with new hyperparameters."""
    s = spec(evaluation={"walkForward": {"folds": 3, "scheme": "rolling", "score": "lcb"}})
    again = TrainingRunSpec.model_validate(s.model_dump(by_alias=True, mode="json"))
    assert again == s
    assert s.with_hyperparameters({"learning_rate": 1e-3}).evaluation == s.evaluation


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"evaluation": {"walkForward": {"folds": 1}}}, "spec.evaluation.walkForward.folds: "),
        (
            {"evaluation": {"walkForward": {"z": 2.0}}},
            "spec.evaluation.walkForward: z applies to score lcb only (score is mean)",
        ),
        ({"evaluation": {"walkForward": {"scheme": "expanding"}}}, "walkForward.scheme: "),
        ({"evaluation": {"walkForward": {"validationBars": 1}}}, "walkForward.validationBars: "),
        ({"evaluation": {"walkForward": {"trainBars": 0}}}, "walkForward.trainBars: "),
        ({"evaluation": {"walkForward": {"purgeBars": -1}}}, "walkForward.purgeBars: "),
        ({"evaluation": {"walkForward": {"embargoBars": -2}}}, "walkForward.embargoBars: "),
        ({"evaluation": {"walkForward": {"score": "lcb", "z": 0}}}, "walkForward.z: "),
        (
            {"totalTimesteps": 3, "evaluation": {"walkForward": {"folds": 4}}},
            "it must be at least evaluation.walkForward.folds",
        ),
    ],
)
def test_impossible_settings_are_one_line_each(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(**fields)
    lines = problems(info.value, TrainingRunSpec, prefix="spec.")
    assert len(lines) == 1 and message in lines[0], lines


def test_a_population_refuses_a_walk_forward_template() -> None:
    """PBT members are single agents scored interval after interval on one split: a
    walkForward template is refused in one line, not silently scored on the single split."""
    from stevie_api.pbt import PBTPopulationSpec

    template = {
        "data": {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"},
        "evaluation": {"walkForward": {"folds": 3}},
    }
    with pytest.raises(ValueError, match="walkForward is not supported by a PBTPopulation"):
        PBTPopulationSpec.model_validate({"template": template})
    del template["evaluation"]
    PBTPopulationSpec.model_validate({"template": template})
