"""The selection score of a walk-forward run: its folds' validation metrics made one.

Every model selection downstream (HPO's objective, a TrainingRun's status) reads one
validation block; with walk-forward there is one per fold. :func:`aggregate` makes them one
whose ``sharpe`` is :func:`selection_score` over the folds, so the rest of the system needs
no change to select on K windows instead of one.

Why a lower bound over folds, not the PSR (:mod:`~stevie_trainer.evaluation.overfitting`):
the PSR bounds one window's sampling noise from its bars, in probability units; what
walk-forward measures is how the agent's Sharpe varies from one period (regime) to the next,
and a ``mean - z x standard error`` of the fold Sharpes stays a Sharpe, the unit HPO ranks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from stevie_api.techniques import WalkForwardSpec

__all__ = ["aggregate", "fold_std", "selection_score"]


def fold_std(values: list[float]) -> float | None:
    """Sample standard deviation (ddof 1) of the fold values; None for one fold."""
    if len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def selection_score(sharpes: list[float], wf: WalkForwardSpec) -> float:
    """The run's score from its folds' validation Sharpes: their mean, or for score lcb
    ``mean - z x std / sqrt(K)`` (std over folds, ddof 1). One fold (an HPO trial's running
    value in its first fold) has no spread: the score is its Sharpe."""
    if not sharpes:
        raise ValueError("a selection score needs at least one fold")
    mean = math.fsum(sharpes) / len(sharpes)
    std = fold_std(sharpes)
    if wf.score == "mean" or std is None:
        return mean
    return mean - wf.lcb_z * std / math.sqrt(len(sharpes))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def aggregate(
    validations: Sequence[Mapping[str, Any] | None], wf: WalkForwardSpec
) -> dict[str, Any]:
    """The run's validation block from its folds' (best-model) validation metrics.

    ``sharpe`` is :func:`selection_score` of the fold Sharpes, an undefined one (a fold
    whose agent never traded) counting as 0, as HPO counts an undefined objective;
    ``sharpe_mean`` and ``sharpe_std`` (over folds) beside it. Every other metric is its mean
    over the folds where it is defined (None where it is nowhere)."""
    keys: list[str] = []
    for v in validations:
        keys += [k for k in (v or {}) if k not in keys]
    out: dict[str, Any] = {}
    for key in keys:
        values = [x for v in validations if (x := _number((v or {}).get(key))) is not None]
        out[key] = math.fsum(values) / len(values) if values else None
    sharpes = [_number((v or {}).get("sharpe")) or 0.0 for v in validations]
    out["sharpe"] = selection_score(sharpes, wf)
    out["sharpe_mean"] = math.fsum(sharpes) / len(sharpes)
    out["sharpe_std"] = fold_std(sharpes)
    return out
