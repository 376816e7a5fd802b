"""Tiny specs shared by tests: real data (bundled GOOGL dailies), budgets of seconds."""

from __future__ import annotations

import copy
from typing import Any

BUNDLED = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"

TEMPLATE: dict[str, Any] = {
    "data": {"uri": BUNDLED, "barsPerYear": 252},
    "env": {"episodeLength": 200},
    "ppo": {"nSteps": 64, "batchSize": 64, "nEpochs": 2},
    "policy": {"netArch": [16, 16]},
    "totalTimesteps": 1024,
    "nEnvs": 4,
    "evaluation": {"evalFreq": 512},
}


def template(**overrides: Any) -> dict[str, Any]:
    """A TrainingRun spec (camelCase document) trained in about a second."""
    return copy.deepcopy(TEMPLATE) | overrides


def pbt_population(name: str = "tiny-pbt", **overrides: Any) -> dict[str, Any]:
    """A PBTPopulation resource: 3 members x 3 intervals of 256 steps, 2 at a time."""
    spec: dict[str, Any] = {
        "template": template(),
        "populationSize": 3,
        "perturbationInterval": 256,
        "quantileFraction": 0.34,
        "stopping": {"maxIntervals": 3},
        "parallelism": 2,
    }
    spec.update(overrides)
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "PBTPopulation",
        "metadata": {"name": name},
        "spec": spec,
    }


def hpo_study(name: str = "tiny-hpo", **overrides: Any) -> dict[str, Any]:
    """An HPOStudy resource: 4 trials of the tiny template, 2 at a time, no pruning."""
    spec: dict[str, Any] = {
        "template": template(),
        "searchSpace": {
            "learning_rate": {"type": "float", "low": 1.0e-5, "high": 1.0e-2, "log": True},
            "gamma": {"type": "float", "low": 0.9, "high": 0.9999},
        },
        "sampler": "tpe",
        "pruner": "none",
        "maxTrials": 4,
        "parallelism": 2,
        "seedsPerTrial": 1,
        "significance": {"enabled": True, "seeds": 2},
    }
    spec.update(overrides)
    return {
        "apiVersion": "stevie.dev/v1alpha1",
        "kind": "HPOStudy",
        "metadata": {"name": name},
        "spec": spec,
    }
