"""fastmath: the vectorisable log against math.log, and the load-pinning helper."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from stevie_trainer.env.fastmath import loaded, log
from stevie_trainer.env.kernel import BUST


@numba.njit(error_model="numpy")
def log_all(x: np.ndarray) -> np.ndarray:
    # A loop like the sim kernel's reward pass, so the vectorised code is what gets tested.
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = log(x[i])
    return out


def ulps(x: np.ndarray) -> np.ndarray:
    """|log(x) - math.log(x)| in units in the last place of math.log(x)."""
    ref = np.array([math.log(v) for v in x.tolist()])
    got: np.ndarray = log_all(x)
    err: np.ndarray = np.abs(got - ref) / np.spacing(np.abs(ref))
    return err


def test_log_is_within_one_ulp_of_math_log_on_a_million_points() -> None:
    rng = np.random.default_rng(0)
    k = 250_000
    points = np.concatenate(
        [
            rng.uniform(0.0, 4.0, k) + 5e-324,  # equity ratios e1 / e0 (0, 4]
            np.exp(rng.uniform(-14.0, 1.4, k)),  # the same, log-uniform
            1.0 + rng.uniform(-1e-8, 1e-8, k),  # tiny moves, where log(x) ~ x - 1
            2.0 ** rng.uniform(-1022.0, 1023.99, k),  # the whole normal range
        ]
    )
    assert ulps(points).max() <= 1.0


def test_log_exact_and_edge_values() -> None:
    exact = np.array([1.0, 2.0, 0.5, 1024.0, 2.0**-1022, np.nextafter(1.0, 2.0)])
    assert ulps(exact).max() <= 1.0
    assert log_all(np.array([1.0]))[0] == 0.0 and math.copysign(1.0, log(1.0)) == 1.0
    # BUST-clamped equity over any plausible starting equity; subnormals and the largest double
    edges = np.array([BUST, BUST / 3.7, BUST / 1e6, 5e-324, 1e-310, np.finfo(np.float64).max])
    assert ulps(edges).max() <= 1.0
    special = log_all(np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan]))
    np.testing.assert_array_equal(special, [-np.inf, -np.inf, np.nan, np.inf, np.nan, np.nan])


@pytest.mark.parametrize("x", [1.0, 3.7, 1e-6])
def test_log_scalar_calls_agree_with_the_loop(x: float) -> None:
    assert log(x) == log_all(np.array([x]))[0]


@numba.njit(error_model="numpy")
def pick(flags: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = loaded(a[i]) if flags[i] else loaded(b[i])
    return out


def test_loaded_passes_values_through() -> None:
    a = np.array([1.5, np.nan, -0.0, np.inf])
    b = np.array([2.5, 3.0, 7.0, -1.0])
    np.testing.assert_array_equal(
        pick(np.array([True, True, False, True]), a, b), [1.5, np.nan, 7.0, np.inf]
    )
