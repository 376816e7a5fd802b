"""Voting, weights and ties (pure): every method on hand-made probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from stevie_trainer.ensemble.voting import (
    METHODS,
    combine,
    dynamic_weights,
    grid_of,
    on_grid,
    shadow_returns,
    static_weights,
    tie_break,
)

GRID = np.array([-1.0, 0.0, 1.0])
# Three members over short/flat/long: two lean long a little, one is sure of short.
PROBS = np.array(
    [
        [0.30, 0.30, 0.40],
        [0.25, 0.35, 0.40],
        [0.90, 0.05, 0.05],
    ]
)


def test_majority_counts_votes_and_ignores_weights() -> None:
    d = combine(PROBS, np.array([0.0, 0.0, 1.0]), GRID, "majority")
    assert d.level == 1.0 and d.votes == (1.0, 1.0, -1.0)
    assert d.confidence == pytest.approx(2 / 3) and d.consensus == pytest.approx(2 / 3)


def test_performance_weighted_follows_the_weight_of_the_voters() -> None:
    d = combine(PROBS, np.array([0.2, 0.2, 0.6]), GRID, "performance_weighted")
    assert d.level == -1.0 and d.consensus == pytest.approx(0.6)
    assert d.weights == pytest.approx((0.2, 0.2, 0.6))


def test_confidence_weighs_each_vote_by_its_probability() -> None:
    # Equal weights: long gets 0.4 + 0.4, short 0.9: short wins on conviction.
    d = combine(PROBS, np.ones(3), GRID, "confidence")
    assert d.level == -1.0
    assert d.confidence == pytest.approx(0.9 / 1.7)
    assert d.consensus == pytest.approx(1 / 3)


def test_boltzmann_addition_averages_the_distributions() -> None:
    d = combine(PROBS, np.ones(3), GRID, "boltzmann_addition")
    mean = PROBS.mean(axis=0)
    assert d.distribution == pytest.approx(tuple(mean))
    assert d.level == -1.0 and d.confidence == pytest.approx(mean[0])


def test_boltzmann_multiplication_multiplies_them() -> None:
    d = combine(PROBS, np.ones(3), GRID, "boltzmann_multiplication")
    product = PROBS.prod(axis=0) ** (1 / 3)
    assert d.distribution == pytest.approx(tuple(product / product.sum()))
    assert d.level == -1.0  # geometric mean: 0.41 for short against 0.20 for long


def test_members_on_different_grids_vote_on_one() -> None:
    grid = grid_of([[-1.0, 0.0, 1.0], [0.0, 0.5, 1.0]])
    assert grid.tolist() == [-1.0, 0.0, 0.5, 1.0]
    laid = on_grid(np.array([0.2, 0.3, 0.5]), [0.0, 0.5, 1.0], grid)
    assert laid.tolist() == [0.0, 0.2, 0.3, 0.5]


@pytest.mark.parametrize("method", METHODS)
def test_ties_prefer_holding_then_flat_then_the_lower_level(method: str) -> None:
    even = np.array([[0.5, 0.0, 0.5], [0.5, 0.0, 0.5]])
    assert combine(even, np.ones(2), GRID, method, current=1.0).level == 1.0  # type: ignore[arg-type]
    assert combine(even, np.ones(2), GRID, method, current=0.0).level == -1.0  # type: ignore[arg-type]
    assert tie_break(np.array([0.4, 0.2, 0.4]), GRID, current=0.0) == 0
    assert tie_break(np.array([0.3, 0.3, 0.3]), GRID, current=1.0) == 2
    assert tie_break(np.array([0.3, 0.3, 0.3]), GRID, current=0.5) == 1


def test_every_decision_carries_its_parts() -> None:
    for method in METHODS:
        d = combine(PROBS, np.array([1.0, 2.0, 1.0]), GRID, method)
        assert d.level in GRID and len(d.votes) == 3 and len(d.weights) == 3
        assert sum(d.distribution) == pytest.approx(1.0)
        assert 0.0 < d.confidence <= 1.0 and 0.0 <= d.consensus <= 1.0


def test_static_weights_clip_losers_and_fall_back_to_equal() -> None:
    assert static_weights([1.0, 3.0, -2.0], [None] * 3).tolist() == [0.25, 0.75, 0.0]
    assert static_weights([-1.0, None, -0.5], [None] * 3).tolist() == pytest.approx([1 / 3] * 3)
    assert static_weights([1.0, 1.0], [None, 3.0]).tolist() == [0.25, 0.75]  # fixed weight


def test_dynamic_weights_use_only_bars_before_t() -> None:
    """Change bar t and every later bar: the weights at t do not move."""
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    # Members that are right more often than not, so that every weight is positive.
    ahead = np.sign(np.diff(close, append=close[-1]))
    wrong = rng.random((3, 300)) < np.array([[0.3], [0.35], [0.4]])
    votes = np.where(wrong, -ahead, ahead)
    t, window = 200, 40
    base = dynamic_weights(shadow_returns(votes, close), t, window, np.full(3, 1 / 3))
    future = close.copy()
    future[t:] *= np.exp(rng.normal(0, 0.1, 300 - t))
    other_votes = votes.copy()
    other_votes[:, t:] = -other_votes[:, t:]
    again = dynamic_weights(shadow_returns(other_votes, future), t, window, np.full(3, 1 / 3))
    np.testing.assert_array_equal(base, again)
    assert (base > 0).all()
    # ... while bar t - 1 does count.
    moved = close.copy()
    moved[t - 1] *= 1.05
    changed = dynamic_weights(shadow_returns(votes, moved), t, window, np.full(3, 1 / 3))
    assert not np.array_equal(base, changed)


def test_dynamic_weights_favour_the_member_that_earned_recently() -> None:
    close = np.cumprod(np.full(100, 1.01)) * 100  # a steady rally
    votes = np.array([np.ones(100), -np.ones(100), np.zeros(100)])
    close[::3] *= 0.999  # some variance, so a Sharpe is defined
    w = dynamic_weights(shadow_returns(votes, close), 90, 30, np.full(3, 1 / 3))
    assert w.tolist() == [1.0, 0.0, 0.0]
    flat = dynamic_weights(shadow_returns(np.zeros((3, 100)), close), 90, 30, np.full(3, 1 / 3))
    assert flat.tolist() == pytest.approx([1 / 3] * 3)  # nobody earned: the static weights
