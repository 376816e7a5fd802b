"""How much of a backtest result is luck: PSR, the expected best of N trials, DSR and PBO.

* :func:`probabilistic_sharpe_ratio` (Bailey & Lopez de Prado 2012, "The Sharpe Ratio
  Efficient Frontier"): the probability that the true Sharpe exceeds a benchmark, given the
  estimate, the track record's length and the skewness and kurtosis of its returns;
* :func:`expected_max_sharpe` (the "False Strategy" theorem): the Sharpe the best of N
  independent trials reaches by luck alone, from the variance of the trials' Sharpes;
* :func:`deflated_sharpe_ratio` (Bailey & Lopez de Prado 2014, "The Deflated Sharpe Ratio"):
  the PSR against that expected maximum, i.e. corrected for the number of trials;
* :func:`probability_of_backtest_overfitting` (Bailey, Borwein, Lopez de Prado & Zhu 2017,
  "The Probability of Backtest Overfitting"): by combinatorially symmetric cross-validation
  (CSCV), how often the in-sample best configuration ranks in the bottom half out of sample.

Units: every Sharpe here is PER PERIOD (per bar), ``mean(r) / std(r, ddof=1)`` of per-bar
returns, never annualised, and ``n_obs`` counts returns. The project's reports state Sharpe
annualised by ``bars_per_year`` (``SR_year = SR_bar * sqrt(bars_per_year)``): convert with
:func:`per_period_sharpe` (``SR_year / sqrt(bpy)``) and a variance of annualised Sharpes with
:func:`per_period_variance` (``V_year / bpy``: a variance scales with the square). PSR and DSR
are probabilities (no unit); SR0 comes back per period (multiply by ``sqrt(bpy)`` to quote
it a year). Kurtosis is the raw kurtosis (3 for a normal distribution), not the excess.

Invalid input raises :class:`ValueError` with a one-line message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

__all__ = [
    "EULER_GAMMA",
    "BacktestOverfitting",
    "DeflatedSharpe",
    "ReturnMoments",
    "deflated_sharpe_of_returns",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "per_period_sharpe",
    "per_period_variance",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "return_moments",
    "sharpe_standard_error",
]

EULER_GAMMA = 0.5772156649015329
F64 = npt.NDArray[np.float64]

# ----------------------------------------------------------------------------- Sharpe


@dataclass(frozen=True)
class ReturnMoments:
    """Per-period Sharpe, number of returns, skewness and raw kurtosis of a return series."""

    sharpe: float
    n_obs: int
    skew: float
    kurtosis: float


def return_moments(returns: npt.ArrayLike) -> ReturnMoments:
    """The moments PSR and DSR need, from per-bar returns.

    Sharpe uses the sample std (ddof=1) like :mod:`~stevie_trainer.evaluation.performance`;
    skewness and kurtosis are the population moments (``m3 / m2**1.5``, ``m4 / m2**2``), as
    in the papers' code (scipy's defaults).
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.size < 3:
        raise ValueError(f"return_moments needs a 1-D series of >= 3 returns, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("return_moments: the returns contain non-finite values")
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0.0:
        raise ValueError("return_moments: the returns are constant (zero variance)")
    sharpe = float(r.mean()) / float(np.std(r, ddof=1))
    skew = float(np.mean(d**3)) / m2**1.5
    kurtosis = float(np.mean(d**4)) / m2**2
    return ReturnMoments(sharpe=sharpe, n_obs=int(r.size), skew=skew, kurtosis=kurtosis)


def per_period_sharpe(annual_sharpe: float, periods_per_year: float) -> float:
    """An annualised Sharpe as the per-period Sharpe PSR and DSR take: ``SR / sqrt(ppy)``."""
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    return float(annual_sharpe) / math.sqrt(periods_per_year)


def per_period_variance(annual_variance: float, periods_per_year: float) -> float:
    """A variance of annualised Sharpes, per period: ``V / ppy`` (not ``/ sqrt(ppy)``)."""
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    return float(annual_variance) / periods_per_year


def sharpe_standard_error(
    sharpe: float, n_obs: int, *, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Standard error of a per-period Sharpe estimate with non-normal returns:
    ``sqrt((1 - skew SR + (kurtosis - 1) / 4 SR^2) / (n_obs - 1))`` (the PSR paper; normal
    returns give Lo's ``sqrt((1 + SR^2 / 2) / (n_obs - 1))``)."""
    if n_obs < 2:
        raise ValueError(f"a Sharpe standard error needs n_obs >= 2, got {n_obs}")
    spread = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not spread > 0:
        raise ValueError(
            f"skew {skew:g} and kurtosis {kurtosis:g} are inconsistent "
            "(kurtosis is raw, >= 1 + skew^2; pass 3, not 0, for normal returns)"
        )
    return math.sqrt(spread / (n_obs - 1))


def probabilistic_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    *,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    benchmark: float = 0.0,
) -> float:
    """PSR: the probability that the true per-period Sharpe exceeds ``benchmark`` (also per
    period), ``Z((SR - SR*) / se(SR))`` with the non-normal standard error above."""
    se = sharpe_standard_error(sharpe, n_obs, skew=skew, kurtosis=kurtosis)
    return float(ndtr((sharpe - benchmark) / se))


def expected_max_sharpe(
    n_trials: int, trials_sr_variance: float, *, trials_sr_mean: float = 0.0
) -> float:
    """The expected maximum Sharpe of ``n_trials`` independent trials whose Sharpes have
    this variance (and mean, 0 by default: no skill), by luck alone:

        E[max] ~ mean + sqrt(V) ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))), g = Euler's gamma.

    One trial selects nothing: the mean. Per period in, per period out.
    """
    if n_trials < 1 or int(n_trials) != n_trials:
        raise ValueError(f"n_trials must be a whole number >= 1, got {n_trials}")
    if not trials_sr_variance >= 0:
        raise ValueError(f"trials_sr_variance must be >= 0, got {trials_sr_variance}")
    if n_trials == 1:
        return float(trials_sr_mean)
    n = float(n_trials)
    z = (1.0 - EULER_GAMMA) * ndtri(1.0 - 1.0 / n) + EULER_GAMMA * ndtri(1.0 - 1.0 / (n * math.e))
    return float(trials_sr_mean + math.sqrt(trials_sr_variance) * z)


# ----------------------------------------------------------------------------- DSR


@dataclass(frozen=True)
class DeflatedSharpe:
    """The DSR of a selected strategy, with everything it was computed from (per period)."""

    dsr: float  # P(true Sharpe > sr0)
    sr0: float  # the expected maximum Sharpe of n_trials by luck
    sharpe: float
    n_obs: int
    skew: float
    kurtosis: float
    n_trials: int
    trials_sr_variance: float

    def describe(self, periods_per_year: float | None = None) -> str:
        """One line; with ``periods_per_year``, the Sharpes annualised."""
        scale, unit = (1.0, "/bar") if periods_per_year is None else (
            math.sqrt(periods_per_year), "/year")  # fmt: skip
        return (
            f"DSR {self.dsr:.3f}: P(true Sharpe > {self.sr0 * scale:.3f}{unit}, the best of "
            f"{self.n_trials} trials by luck) for Sharpe {self.sharpe * scale:.3f}{unit} over "
            f"{self.n_obs} bars (skew {self.skew:.2f}, kurtosis {self.kurtosis:.2f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dsr": self.dsr,
            "sr0": self.sr0,
            "sharpe": self.sharpe,
            "n_obs": self.n_obs,
            "skew": self.skew,
            "kurtosis": self.kurtosis,
            "n_trials": self.n_trials,
            "trials_sr_variance": self.trials_sr_variance,
        }


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    *,
    n_trials: int,
    trials_sr_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> DeflatedSharpe:
    """DSR of the strategy selected among ``n_trials``: its PSR with the benchmark SR0 =
    :func:`expected_max_sharpe` (all per period; see the module docstring for units)."""
    sr0 = expected_max_sharpe(n_trials, trials_sr_variance)
    dsr = probabilistic_sharpe_ratio(sharpe, n_obs, skew=skew, kurtosis=kurtosis, benchmark=sr0)
    return DeflatedSharpe(
        dsr=dsr,
        sr0=sr0,
        sharpe=float(sharpe),
        n_obs=int(n_obs),
        skew=float(skew),
        kurtosis=float(kurtosis),
        n_trials=int(n_trials),
        trials_sr_variance=float(trials_sr_variance),
    )


def deflated_sharpe_of_returns(
    returns: npt.ArrayLike, *, n_trials: int, trials_sr_variance: float
) -> DeflatedSharpe:
    """DSR of the selected strategy's per-bar returns (Sharpe, skew, kurtosis measured)."""
    m = return_moments(returns)
    return deflated_sharpe_ratio(
        m.sharpe,
        m.n_obs,
        n_trials=n_trials,
        trials_sr_variance=trials_sr_variance,
        skew=m.skew,
        kurtosis=m.kurtosis,
    )


# ----------------------------------------------------------------------------- PBO


@dataclass(frozen=True)
class BacktestOverfitting:
    """PBO by CSCV: one entry per combination of submatrices (``n_combinations``)."""

    pbo: float  # share of combinations whose logit is <= 0
    logits: F64  # lambda = log(w / (1 - w)), w the OOS relative rank of the IS best
    best: npt.NDArray[np.int64]  # the IS best configuration (column) of each combination
    is_performance: F64  # its in-sample performance
    oos_performance: F64  # its out-of-sample performance
    degradation_slope: float  # OLS slope of OOS on IS performance of the IS best (nan: none)
    prob_oos_loss: float  # share of combinations where the IS best loses OOS (< 0)
    n_combinations: int
    submatrices: int
    metric: str

    def describe(self) -> str:
        return (
            f"PBO {self.pbo:.2f}: the in-sample best ranks in the bottom half out of sample in "
            f"{self.pbo:.0%} of {self.n_combinations} splits ({self.submatrices} submatrices, "
            f"{self.metric}); it loses out of sample in {self.prob_oos_loss:.0%}"
        )

    def to_dict(self) -> dict[str, Any]:
        slope = self.degradation_slope
        return {
            "pbo": self.pbo,
            "degradation_slope": slope if math.isfinite(slope) else None,
            "prob_oos_loss": self.prob_oos_loss,
            "n_combinations": self.n_combinations,
            "submatrices": self.submatrices,
            "metric": self.metric,
            "logit_median": float(np.median(self.logits)),
        }


def _check_matrix(performance: npt.ArrayLike, submatrices: int) -> F64:
    m = np.asarray(performance, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"PBO needs a T x N matrix (periods x configurations), got {m.shape}")
    if m.shape[1] < 2:
        raise ValueError(f"PBO needs at least 2 configurations (columns), got {m.shape[1]}")
    if submatrices < 2 or submatrices % 2:
        raise ValueError(f"PBO needs an even number >= 2 of submatrices, got {submatrices}")
    if m.shape[0] < 2 * submatrices:
        raise ValueError(
            f"PBO: {m.shape[0]} periods are too few for {submatrices} submatrices "
            f"of >= 2 periods each (need >= {2 * submatrices})"
        )
    if not np.all(np.isfinite(m)):
        raise ValueError("PBO: the performance matrix contains non-finite values")
    return m


def _combinations(s: int, cap: int, seed: int) -> npt.NDArray[np.bool_]:
    """In-sample membership [C, s] of every half of the s submatrices, or of ``cap`` of them
    drawn with ``seed`` (in complementary pairs: CSCV stays symmetric)."""
    half = s // 2
    total = math.comb(s, half)
    if total <= cap:
        picks = list(combinations(range(s), half))
    else:
        rng = np.random.default_rng(seed)
        chosen: set[tuple[int, ...]] = set()
        while len(chosen) < max(1, cap // 2):  # halves holding block 0: one per pair
            rest = rng.choice(np.arange(1, s), size=half - 1, replace=False)
            chosen.add((0, *sorted(int(b) for b in rest)))
        picks = [c for p in sorted(chosen) for c in (p, tuple(sorted(set(range(s)) - set(p))))]
    member = np.zeros((len(picks), s), dtype=bool)
    for row, pick in enumerate(picks):
        member[row, list(pick)] = True
    return member


def _halves_performance(m: F64, member: npt.NDArray[np.bool_], metric: str) -> tuple[F64, F64]:
    """The metric of every column on the in-sample half and on its complement, [C, N] each,
    from per-submatrix sums (no copy of the data per combination)."""
    s = member.shape[1]
    rows = m.shape[0] // s
    x = m[m.shape[0] - s * rows :].reshape(s, rows, m.shape[1])  # oldest remainder dropped
    shift = x[0, 0]  # a constant column is exactly 0 after the shift: its std is exactly 0
    d = x - shift
    sums, squares = d.sum(axis=1), (d * d).sum(axis=1)  # [s, N]
    n = rows * (s // 2)

    def perf(mask: npt.NDArray[np.bool_]) -> F64:
        w = mask.astype(np.float64)
        mean_d = (w @ sums) / n
        mean: F64 = mean_d + shift
        if metric == "mean":
            return mean
        var = np.maximum((w @ squares - n * mean_d * mean_d) / (n - 1), 0.0)
        std = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(std > 0, mean / std, np.sign(mean) * np.inf)
        return np.where((std == 0) & (mean == 0), 0.0, sharpe)

    return perf(member), perf(~member)


def _slope(x: F64, y: F64) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    dx = x[ok] - x[ok].mean()
    sxx = float(dx @ dx)
    return float(dx @ (y[ok] - y[ok].mean())) / sxx if sxx > 0 else math.nan


def probability_of_backtest_overfitting(
    performance: npt.ArrayLike,
    *,
    submatrices: int = 16,
    metric: Literal["sharpe", "mean"] = "sharpe",
    max_combinations: int = 20_000,
    seed: int = 0,
) -> BacktestOverfitting:
    """PBO of choosing the best of N configurations, from their per-period performance.

    ``performance`` is T x N: row t is every configuration's return (or other per-period
    score) in period t. CSCV cuts the rows into ``submatrices`` (S, even) chronological
    blocks of T // S rows (the oldest T mod S rows are dropped), and for every choice of
    S/2 blocks as in-sample (C(S, S/2) of them; above ``max_combinations`` a seeded random
    subset in complementary pairs, so the same seed gives the same answer) finds the
    in-sample best n* by ``metric`` (ties: the first column), its relative rank
    w = rank / (N + 1) among the out-of-sample scores (ties: average rank) and the logit
    log(w / (1 - w)). PBO is the share of logits <= 0: n* at or below the OOS median.
    About 0.5 (exactly floor((N+1)/2) / N) for configurations that differ only by noise.
    """
    m = _check_matrix(performance, submatrices)
    if metric not in ("sharpe", "mean"):
        raise ValueError(f"unknown PBO metric {metric!r}; choose sharpe or mean")
    if max_combinations < 2:
        raise ValueError(f"max_combinations must be >= 2, got {max_combinations}")
    member = _combinations(submatrices, max_combinations, seed)
    is_perf, oos_perf = _halves_performance(m, member, metric)
    best = np.argmax(is_perf, axis=1)
    pick = np.arange(best.size)
    oos_best = oos_perf[pick, best]
    below = np.sum(oos_perf < oos_best[:, None], axis=1)
    ties = np.sum(oos_perf == oos_best[:, None], axis=1)  # includes n* itself
    w = (below + (ties + 1) / 2.0) / (m.shape[1] + 1)
    logits = np.log(w / (1.0 - w))
    return BacktestOverfitting(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        best=best.astype(np.int64),
        is_performance=is_perf[pick, best],
        oos_performance=oos_best,
        degradation_slope=_slope(is_perf[pick, best], oos_best),
        prob_oos_loss=float(np.mean(oos_best < 0.0)),
        n_combinations=int(best.size),
        submatrices=submatrices,
        metric=metric,
    )
