"""A study's fingerprint (search space and objectives) compared normalised."""

from __future__ import annotations

import copy
import json
from typing import Any

import optuna
import pytest

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.hpo.study import StudyConflictError, open_study
from support.specs import hpo_study


def spec(**overrides: Any) -> HPOStudySpec:
    return HPOStudySpec.model_validate(hpo_study(**overrides)["spec"])


def test_an_older_fingerprint_with_or_without_defaults_is_the_same_search() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = open_study(spec(), "s", storage)
    # What an older version wrote: defaults spelled out ("log": false) and without a field
    # added since (none is missing today: drop one of the defaults to stand for it).
    older = {
        "searchSpace": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "gamma": {"type": "float", "low": 0.9, "high": 0.9999, "log": False},
        },
        "objectives": [{"metric": "validation.sharpe"}],
    }
    study.set_user_attr("stevie_fingerprint", json.dumps(older))
    open_study(spec(maxTrials=99), "s", storage)  # no StudyConflictError


def test_another_search_space_is_refused_naming_the_parameter() -> None:
    storage = optuna.storages.InMemoryStorage()
    open_study(spec(), "s", storage)
    space = copy.deepcopy(hpo_study()["spec"]["searchSpace"])
    space["gamma"]["low"] = 0.5
    with pytest.raises(StudyConflictError, match=r"differs in: spec.searchSpace.gamma.low\)"):
        open_study(spec(searchSpace=space), "s", storage)
