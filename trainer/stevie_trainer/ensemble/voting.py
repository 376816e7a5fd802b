"""How members' votes become one decision (pure numpy; no models, no I/O).

Members vote on target positions. Each member's action probabilities are laid on one grid
of levels (the sorted union of the members' position levels; a level a member cannot take
gets probability 0 from it), and its own vote is its most probable level.

Methods (``w`` are the members' weights, normalised to sum 1):

- ``majority``: one member, one vote (weights ignored); score = votes per level;
- ``performance_weighted``: score = the weight of the members voting for the level;
- ``confidence``: each member's vote counts its weight times its probability of that vote;
- ``boltzmann_addition``: score = sum of w x probability, over members (Wiering & van
  Hasselt 2008, "Ensemble algorithms in reinforcement learning": BA);
- ``boltzmann_multiplication``: score = product of probability ^ w, over members (BM).

The scores, normalised, are the ensemble's distribution over levels; the decision is its
most probable level; **confidence** is that probability; **consensus** is the weight share
of the members whose own vote is the decision.

Ties (scores within 1e-12 of the best) break deterministically: first the level the
account already holds (no trade), then the level nearest to flat, then the lower level.
A member's own vote breaks ties among its levels the same way.

Weights. Static: a member's fixed weight, else its validation metric clipped at 0 (a member
that lost money on validation gets no say), normalised; when no member has a positive
metric, equal weights. Dynamic (``reweightWindow`` W): the weight at decision bar t is each
member's Sharpe over bars t-W..t-1 of its *shadow* positions (its own vote at each earlier
bar, from a flat account, held over the next bar), clipped at 0 and normalised; with no
positive one, the static weights. Only closes up to bar t-1 enter (a test changes bar t and
later and checks the weights do not move).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "METHODS",
    "Decision",
    "Method",
    "combine",
    "dynamic_weights",
    "flat_votes",
    "grid_of",
    "on_grid",
    "shadow_returns",
    "static_weights",
    "tie_break",
]

Method = Literal[
    "majority",
    "performance_weighted",
    "confidence",
    "boltzmann_addition",
    "boltzmann_multiplication",
]
METHODS: tuple[Method, ...] = (
    "majority",
    "performance_weighted",
    "confidence",
    "boltzmann_addition",
    "boltzmann_multiplication",
)
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
TIE = 1e-12
_FLOOR = 1e-12  # probabilities are floored here before a logarithm


@dataclass(frozen=True)
class Decision:
    """One decision of the ensemble at one bar."""

    level: float  # the target position chosen
    confidence: float  # the ensemble's probability of it
    consensus: float  # weight share of the members whose own vote it is
    votes: tuple[float, ...]  # each member's own vote (a level)
    weights: tuple[float, ...]  # each member's weight in this decision
    distribution: tuple[float, ...]  # the ensemble's probability per grid level


def grid_of(levels: Sequence[Sequence[float] | F64]) -> F64:
    """The sorted union of the members' position levels."""
    return np.unique(np.concatenate([np.asarray(x, dtype=np.float64) for x in levels]))


def on_grid(probs: F64, levels: Sequence[float] | F64, grid: F64) -> F64:
    """A member's probabilities over its own ``levels`` ([..., A]) laid on ``grid``."""
    idx = np.searchsorted(grid, np.asarray(levels, dtype=np.float64))
    out = np.zeros((*probs.shape[:-1], len(grid)))
    out[..., idx] = probs
    return out


def tie_break(scores: F64, grid: F64, current: float) -> int:
    """The index of the best score; ties as the module docstring says."""
    best = float(np.max(scores))
    tied = np.flatnonzero(scores >= best - TIE * max(1.0, abs(best)))
    if len(tied) == 1:
        return int(tied[0])
    held = tied[grid[tied] == current]
    if len(held):
        return int(held[0])
    nearest = np.abs(grid[tied])
    return int(tied[np.flatnonzero(nearest == nearest.min())[0]])


def flat_votes(probs: F64, levels: F64) -> I64:
    """Each row's own vote from a flat account: ``tie_break(p, levels, 0.0)`` for every row
    of ``probs`` at once (best probability; ties to flat, then the nearest to flat, then the
    lower level; levels are sorted, so the first minimum is the lower one)."""
    best = probs.max(axis=1, keepdims=True)
    tied = probs >= best - TIE * np.maximum(1.0, np.abs(best))
    key = np.where(tied, np.abs(levels)[None, :], np.inf)
    return np.asarray(key.argmin(axis=1), dtype=np.int64)


def static_weights(metrics: Sequence[float | None], fixed: Sequence[float | None]) -> F64:
    """Weights from validation metrics (clipped at 0) unless fixed; see the module doc."""
    raw = np.array(
        [
            f if f is not None else max(m if m is not None else 0.0, 0.0)
            for m, f in zip(metrics, fixed, strict=True)
        ],
        dtype=np.float64,
    )
    if not np.isfinite(raw).all() or raw.sum() <= 0.0:
        return np.full(len(raw), 1.0 / len(raw))
    return np.asarray(raw / raw.sum(), dtype=np.float64)


def combine(
    probs: F64,
    weights: F64,
    grid: F64,
    method: Method,
    current: float = 0.0,
) -> Decision:
    """Decide from the members' probabilities on ``grid`` ([M, K]) and weights ([M])."""
    m = probs.shape[0]
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(m, 1.0 / m)
    own = np.array([tie_break(np.where(p > 0, p, -1.0), grid, current) for p in probs])
    onehot = np.zeros_like(probs)
    onehot[np.arange(m), own] = 1.0
    if method == "majority":
        scores = onehot.sum(axis=0)
        w = np.full(m, 1.0 / m)
    elif method == "performance_weighted":
        scores = w @ onehot
    elif method == "confidence":
        scores = (w * probs[np.arange(m), own]) @ onehot
    elif method == "boltzmann_addition":
        scores = w @ probs
    elif method == "boltzmann_multiplication":
        log = w @ np.log(np.maximum(probs, _FLOOR))
        scores = np.exp(log - log.max())
    else:
        raise ValueError(f"unknown voting method {method!r}; choose one of {', '.join(METHODS)}")
    total = scores.sum()
    dist = scores / total if total > 0 else np.full(len(grid), 1.0 / len(grid))
    k = tie_break(dist, grid, current)
    return Decision(
        level=float(grid[k]),
        confidence=float(dist[k]),
        consensus=float(w[own == k].sum()),
        votes=tuple(float(grid[j]) for j in own),
        weights=tuple(float(x) for x in w),
        distribution=tuple(float(x) for x in dist),
    )


def shadow_returns(votes: F64, close: F64) -> F64:
    """Returns of each member's shadow position: the vote at bar s (row [M, T] of levels,
    decided at close s) earns level x (close[s+1] / close[s] - 1) over bar s+1; column s of
    the result is the return realised on bar s (0 for the first bar)."""
    out = np.zeros_like(votes, dtype=np.float64)
    bar = close[1:] / close[:-1] - 1.0
    out[:, 1:] = votes[:, :-1] * bar[None, :]
    return out


def dynamic_weights(returns: F64, t: int, window: int, fallback: F64) -> F64:
    """Weights at decision bar ``t`` from shadow ``returns`` ([M, T]) of bars t-window..t-1."""
    lo = max(t - window, 1)
    recent = returns[:, lo:t]
    if recent.shape[1] < 2:
        return fallback
    mean = recent.mean(axis=1)
    std = recent.std(axis=1, ddof=1)
    score = np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)
    score = np.maximum(score, 0.0)
    if score.sum() <= 0:
        return fallback
    return np.asarray(score / score.sum(), dtype=np.float64)
