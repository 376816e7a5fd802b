"""overfitting: PSR, the expected best of N trials, DSR and PBO against the papers' worked
examples, brute-force simulation and hand-computed CSCV cases."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from stevie_trainer.evaluation.overfitting import (
    deflated_sharpe_of_returns,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    per_period_sharpe,
    per_period_variance,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
    sharpe_standard_error,
)

# ----------------------------------------------------------------------------- DSR, PSR

# Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", the numerical example: an
# annualised Sharpe of 2.5 over 1250 daily returns (250 a year), selected among N = 100
# trials whose annualised Sharpes have variance 1/2; skewness -3, kurtosis 10. The paper
# gives SR0 = 0.1132 (daily) and DSR = 0.9004.
PAPER = {"annual_sharpe": 2.5, "n_obs": 1250, "n_trials": 100, "annual_var": 0.5,
         "skew": -3.0, "kurtosis": 10.0, "per_year": 250}  # fmt: skip


def paper_dsr(n_trials: int) -> tuple[float, float]:
    p = PAPER
    result = deflated_sharpe_ratio(
        per_period_sharpe(p["annual_sharpe"], p["per_year"]),
        int(p["n_obs"]),
        n_trials=n_trials,
        trials_sr_variance=per_period_variance(p["annual_var"], p["per_year"]),
        skew=p["skew"],
        kurtosis=p["kurtosis"],
    )
    return result.sr0, result.dsr


def test_the_deflated_sharpe_ratio_papers_numerical_example() -> None:
    sr0, dsr = paper_dsr(100)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=5e-4)  # the same, a year
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # Fewer trials, a lower bar: about 46 trials keep the DSR at 0.95.
    assert paper_dsr(46)[1] == pytest.approx(0.9505, abs=5e-5)
    # Converting the variance like a Sharpe (/ sqrt(250), a common slip) is far off.
    wrong = deflated_sharpe_ratio(
        2.5 / math.sqrt(250), 1250, n_trials=100, trials_sr_variance=0.5 / math.sqrt(250),
        skew=-3, kurtosis=10,
    )  # fmt: skip
    assert wrong.dsr < 0.01


def test_the_probabilistic_sharpe_ratio_papers_example() -> None:
    """Bailey & Lopez de Prado (2012), "The Sharpe Ratio Efficient Frontier": 24 monthly
    returns, annualised Sharpe 1.585, skewness -2.448, kurtosis 10.164: PSR(0) = 0.9132
    (also pypbo's test value)."""
    psr = probabilistic_sharpe_ratio(
        per_period_sharpe(1.585, 12), 24, skew=-2.448, kurtosis=10.164, benchmark=0.0
    )
    assert psr == pytest.approx(0.9132, abs=5e-5)
    normal = probabilistic_sharpe_ratio(per_period_sharpe(1.585, 12), 24)
    assert normal > psr + 0.03  # negative skew and fat tails lower the confidence


def test_psr_closed_forms() -> None:
    assert probabilistic_sharpe_ratio(0.1, 500, benchmark=0.1) == 0.5
    z = 0.1 * math.sqrt(499) / math.sqrt(1 + 0.1**2 / 2)  # Lo (2002) for normal returns
    assert probabilistic_sharpe_ratio(0.1, 500) == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert sharpe_standard_error(0.1, 500) == pytest.approx(math.sqrt(1.005 / 499), rel=1e-12)


def test_the_sharpe_standard_error_matches_a_brute_force_simulation() -> None:
    """Skewed, fat-tailed returns (1 - Exp(1): skewness -2, kurtosis 9) with a true Sharpe
    of 0.2 per bar: the spread of the estimated Sharpe over 4000 series is the PSR's
    standard error (about 20% wider than the normal-returns error, so that one fails)."""
    rng = np.random.default_rng(1)
    n_obs, true_sr = 1000, 0.2
    returns = true_sr + (1.0 - rng.exponential(1.0, (4000, n_obs)))
    estimates = returns.mean(axis=1) / returns.std(axis=1, ddof=1)
    se = sharpe_standard_error(true_sr, n_obs, skew=-2.0, kurtosis=9.0)
    assert estimates.std(ddof=1) == pytest.approx(se, rel=0.05)
    assert estimates.std(ddof=1) > 1.15 * sharpe_standard_error(true_sr, n_obs)
    # Calibration: PSR against the true Sharpe is about uniform, so 10% of the series fall
    # outside (0.05, 0.95) (the normal-returns PSR puts ~17% there).
    psr = np.array([
        probabilistic_sharpe_ratio(s, n_obs, skew=-2.0, kurtosis=9.0, benchmark=true_sr)
        for s in estimates
    ])  # fmt: skip
    assert np.mean((psr < 0.05) | (psr > 0.95)) == pytest.approx(0.10, abs=0.02)


def test_the_expected_maximum_of_n_trials() -> None:
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5306, abs=5e-5)  # also pypbo's
    assert expected_max_sharpe(1, 0.3, trials_sr_mean=0.05) == 0.05  # one trial selects none
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))
    # Against the simulated best of N standard normals (the approximation is within ~2%).
    rng = np.random.default_rng(2)
    for n in (10, 100, 1000):
        best = rng.normal(size=(4000, n)).max(axis=1).mean()
        assert expected_max_sharpe(n, 1.0) == pytest.approx(best, rel=0.025)


def test_return_moments_and_the_dsr_of_returns() -> None:
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 20_000) * 0.01 + 0.0002
    m = return_moments(r)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
    assert m.skew == pytest.approx(stats.skew(r), rel=1e-9)
    assert m.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False), rel=1e-9)
    assert m.n_obs == 20_000
    d = deflated_sharpe_of_returns(r, n_trials=20, trials_sr_variance=1e-4)
    sr0 = expected_max_sharpe(20, 1e-4)
    assert d.sr0 == sr0
    assert d.dsr == pytest.approx(
        probabilistic_sharpe_ratio(
            m.sharpe, m.n_obs, skew=m.skew, kurtosis=m.kurtosis, benchmark=sr0
        )
    )
    one = deflated_sharpe_of_returns(r, n_trials=1, trials_sr_variance=1e-4)
    assert one.dsr == pytest.approx(
        probabilistic_sharpe_ratio(m.sharpe, m.n_obs, skew=m.skew, kurtosis=m.kurtosis)
    )
    assert 0.05 < d.dsr < one.dsr < 0.999 and d.to_dict()["n_trials"] == 20
    line = d.describe(periods_per_year=252)
    assert "\n" not in line and line.startswith(f"DSR {d.dsr:.3f}") and "/year" in line


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: probabilistic_sharpe_ratio(0.1, 1), "n_obs >= 2"),
        (lambda: probabilistic_sharpe_ratio(0.5, 100, skew=3.0, kurtosis=3.0), "inconsistent"),
        (lambda: expected_max_sharpe(0, 0.1), "n_trials"),
        (lambda: expected_max_sharpe(10, -0.1), "trials_sr_variance"),
        (lambda: return_moments([1.0, 1.0, 1.0]), "constant"),
        (lambda: return_moments([0.1, math.nan, 0.2]), "non-finite"),
        (lambda: per_period_sharpe(1.0, 0), "periods_per_year"),
    ],
)
def test_dsr_input_errors_are_one_line(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- PBO


def test_pbo_of_a_hand_computed_two_block_case() -> None:
    """S = 2 blocks of 2 rows, metric mean. Block means: A (4, 1), B (3, 4), C (2, 2),
    D (1, 3). IS = block 0: A is best, OOS it ranks 1 of 4, w = 1/5, logit log(1/4).
    IS = block 1: B is best, OOS it ranks 3 of 4, w = 3/5, logit log(3/2). PBO = 1/2."""
    m = np.array([[4, 3, 2, 1], [4, 3, 2, 1], [1, 4, 2, 3], [1, 4, 2, 3]], dtype=float)
    res = probability_of_backtest_overfitting(m, submatrices=2, metric="mean")
    assert res.n_combinations == 2
    np.testing.assert_allclose(res.logits, [math.log(1 / 4), math.log(3 / 2)])
    assert res.best.tolist() == [0, 1] and res.pbo == 0.5
    np.testing.assert_allclose(res.is_performance, [4, 4])
    np.testing.assert_allclose(res.oos_performance, [1, 3])
    assert math.isnan(res.degradation_slope)  # the IS scores do not vary: no regression
    # A tie out of sample takes the average rank: C and D tie at 2 -> C ranks 2.5 of 4.
    tie = np.array([[1, 2, 4, 3], [1, 2, 4, 3], [3, 1, 2, 2], [3, 1, 2, 2]], dtype=float)
    res = probability_of_backtest_overfitting(tie, submatrices=2, metric="mean")
    assert res.best.tolist() == [2, 0]
    np.testing.assert_allclose(res.logits, [math.log(2.5 / 2.5), math.log(1 / 4)])
    assert res.pbo == 1.0


def test_pbo_scores_match_a_direct_computation_on_the_rows() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(0.001, 0.01, (163, 6)) + 50.0 * (rng.random(6) - 0.5) * 1e-3
    res = probability_of_backtest_overfitting(m, submatrices=8)
    blocks = np.split(m[3:], 8)  # the 3 oldest rows are dropped (163 = 8 x 20 + 3)
    for row, in_sample in enumerate(combinations(range(8), 4)):
        rows = np.concatenate([blocks[b] for b in in_sample])
        sharpe = rows.mean(axis=0) / rows.std(axis=0, ddof=1)
        assert res.best[row] == np.argmax(sharpe)
        assert res.is_performance[row] == pytest.approx(sharpe.max(), rel=1e-9)
        rest = np.concatenate([blocks[b] for b in range(8) if b not in in_sample])
        oos = rest.mean(axis=0) / rest.std(axis=0, ddof=1)
        assert res.oos_performance[row] == pytest.approx(oos[res.best[row]], rel=1e-9)
        rank = stats.rankdata(oos)[res.best[row]]
        assert res.logits[row] == pytest.approx(math.log(rank / (7 - rank)), rel=1e-9)


def test_a_configuration_that_wins_every_period_is_never_overfit() -> None:
    rng = np.random.default_rng(5)
    m = rng.normal(0.0, 0.01, (640, 10))
    m[:, 7] = m.max(axis=1) + 0.001  # the best return of every period
    res = probability_of_backtest_overfitting(m, metric="mean")
    assert res.pbo == 0.0 and (res.best == 7).all()
    np.testing.assert_allclose(res.logits, math.log(10))  # rank 10 of 10: w = 10/11
    # By Sharpe: a strong edge (0.5 std a period) in one column of noise.
    m = rng.normal(0.0, 0.01, (640, 10))
    m[:, 2] += 0.005
    res = probability_of_backtest_overfitting(m)
    assert res.pbo < 0.01 and (res.best == 2).mean() > 0.99 and res.prob_oos_loss == 0.0


@pytest.mark.parametrize("n", [4, 5])
def test_noise_configurations_give_the_exact_chance_pbo(n: int) -> None:
    """With exchangeable noise columns the IS best's OOS rank is uniform on 1..N, so the
    expected PBO is floor((N + 1) / 2) / N: 0.5 for N = 4, 0.6 for N = 5 (rank 3, the
    median, has logit 0 and counts as overfit). Over 1000 seeds the mean's standard error
    is ~0.009: a rank off by one (0.4 for N = 5) or a constant 0.5 cannot pass."""
    values = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(0.0, 0.01, (160, n)), submatrices=8
        ).pbo
        for seed in range(1000)
    ]
    assert np.mean(values) == pytest.approx(((n + 1) // 2) / n, abs=0.04)


def test_configurations_tuned_to_half_the_history_are_overfit() -> None:
    """Each configuration earns +mu in a random half of the 16 blocks and -mu in the other:
    the IS best is the one whose good blocks fell in sample, so OOS it holds the bad ones."""
    rng = np.random.default_rng(6)
    s, rows, n = 16, 40, 30
    m = rng.normal(0.0, 0.01, (s * rows, n))
    for j in range(n):
        sign = np.where(rng.permutation(s) < s // 2, 1.0, -1.0)
        m[:, j] += np.repeat(sign, rows) * 0.003
    res = probability_of_backtest_overfitting(m, submatrices=s)
    assert res.n_combinations == math.comb(16, 8)
    assert res.pbo > 0.9 and res.degradation_slope < 0 and res.prob_oos_loss > 0.9
    assert "PBO" in res.describe() and res.to_dict()["pbo"] == res.pbo


def test_too_many_combinations_are_sampled_in_complementary_pairs() -> None:
    rng = np.random.default_rng(7)
    m = rng.normal(0.0, 0.01, (400, 8))
    res = probability_of_backtest_overfitting(m, submatrices=20, max_combinations=500, seed=3)
    assert res.n_combinations == 500  # of C(20, 10) = 184756
    again = probability_of_backtest_overfitting(m, submatrices=20, max_combinations=500, seed=3)
    np.testing.assert_array_equal(res.logits, again.logits)
    other = probability_of_backtest_overfitting(m, submatrices=20, max_combinations=500, seed=4)
    assert not np.array_equal(res.logits, other.logits)
    # Rows 2k and 2k + 1 are complements: each one's in-sample half is the other's
    # out-of-sample half, where its own best scores at least what the other's best does.
    assert np.all(res.is_performance[0::2] >= res.oos_performance[1::2] - 1e-12)
    assert np.all(res.is_performance[1::2] >= res.oos_performance[0::2] - 1e-12)
    assert np.any(res.is_performance[0::2] == res.oos_performance[1::2])  # the same best


def test_flat_configurations_have_finite_logits() -> None:
    rng = np.random.default_rng(8)
    m = rng.normal(0.0, 0.01, (320, 4))
    m[:, 1] = 0.0  # never trades: Sharpe 0
    res = probability_of_backtest_overfitting(m, submatrices=8)
    assert np.isfinite(res.logits).all() and np.isfinite(res.oos_performance).all()
    m[:, 1] = 0.001  # a constant gain: an infinite Sharpe, first in and out of sample
    res = probability_of_backtest_overfitting(m, submatrices=8)
    assert (res.best == 1).all() and res.pbo == 0.0 and math.isnan(res.degradation_slope)


@pytest.mark.parametrize(
    ("matrix", "kwargs", "match"),
    [
        (np.zeros(100), {}, "T x N"),
        (np.zeros((100, 1)), {}, "at least 2 configurations"),
        (np.zeros((100, 3)), {"submatrices": 5}, "even number"),
        (np.zeros((31, 3)), {"submatrices": 16}, "too few"),
        (np.full((64, 3), np.nan), {}, "non-finite"),
        (np.zeros((64, 3)), {"metric": "sortino"}, "unknown PBO metric"),
    ],
)
def test_pbo_input_errors_are_one_line(
    matrix: np.ndarray, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match) as info:
        probability_of_backtest_overfitting(matrix, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
