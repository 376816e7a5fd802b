"""How much a trial's value depends on its seeds: the spread of its per-seed validation Sharpes.

A trial trains ``seedsPerTrial`` seeds and its value is their mean
(:mod:`stevie_trainer.hpo.trial`); ``trial.json`` keeps each seed's validation metrics
(``seeds[].validation``: of its best model; with walk-forward, the aggregate over folds the
objective reads). :func:`seed_spread` gives the seeds' annualised validation Sharpes, their
mean and, with at least 2 seeds, the std (ddof 1), min and max; with one seed there is no
spread, so those are null (never 0). Seeds the pruner stopped are left out: their Sharpe is
that of a partly trained model. Torch-free.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from stevie_trainer.common import storage

__all__ = ["TRIAL_FILE", "read_trial_json", "seed_sharpes", "seed_spread", "spread_line"]

TRIAL_FILE = "trial.json"


def read_trial_json(trial: FrozenTrial) -> dict[str, Any] | None:
    """The trial's ``trial.json`` (in its ``out`` folder), or None when it left none."""
    out = trial.user_attrs.get("out")
    if not out:
        return None
    try:
        doc = json.loads(storage.read_text(storage.join(str(out), TRIAL_FILE)))
    except (storage.StorageError, ValueError, OSError):
        return None
    return doc if isinstance(doc, dict) else None


def seed_sharpes(doc: dict[str, Any] | None) -> list[float]:
    """The finished seeds' annualised validation Sharpes, in seed order."""
    sharpes = []
    for seed in (doc or {}).get("seeds") or []:
        if not isinstance(seed, dict) or seed.get("pruned"):
            continue
        value = (seed.get("validation") or {}).get("sharpe")
        if isinstance(value, int | float) and math.isfinite(value):
            sharpes.append(float(value))
    return sharpes


def seed_spread(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"seeds", "sharpes", "mean", "std", "min", "max"}`` of the trial's finished seeds
    (std, min and max null below 2 seeds); None when no seed has a validation Sharpe."""
    sharpes = seed_sharpes(doc)
    if not sharpes:
        return None
    several = len(sharpes) >= 2
    return {
        "seeds": len(sharpes),
        "sharpes": sharpes,
        "mean": float(np.mean(sharpes)),
        "std": float(np.std(sharpes, ddof=1)) if several else None,
        "min": min(sharpes) if several else None,
        "max": max(sharpes) if several else None,
    }


def spread_line(number: int, spread: dict[str, Any] | None) -> str:
    """The report's line, e.g. "best trial 7: validation Sharpe 0.84 mean over 3 seeds,
    std 0.31, range 0.52..1.20"."""
    if spread is None:
        return f"best trial {number}: no seed left a validation Sharpe (trial.json missing?)"
    n, mean = spread["seeds"], spread["mean"]
    if spread["std"] is None:
        return f"best trial {number}: validation Sharpe {mean:.2f} from 1 seed (no spread)"
    return (
        f"best trial {number}: validation Sharpe {mean:.2f} mean over {n} seeds, std "
        f"{spread['std']:.2f}, range {spread['min']:.2f}..{spread['max']:.2f}"
    )
