"""Is the best configuration really better than the default? Best vs default over K seeds.

After the search, both configurations are re-trained over ``significance.seeds`` fresh seeds
(template seed + 1000 + k: not the seeds the search selected on, so the best trial's luck is
not counted twice) and compared on the study's first objective, on validation:

* Welch's t-test (unequal variances, ``scipy.stats.ttest_ind(equal_var=False)``), two-sided;
* a percentile bootstrap confidence interval of the difference of means (best - default),
  each group resampled with replacement on its own.

"Significant" means the improvement is in the objective's direction, the p-value is below
1 - confidence and the interval excludes 0. With 3 seeds the test has little power: a
non-significant result is common and honest.

:func:`compare` is pure (numpy/scipy); :func:`run_significance` trains (imports torch).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from stevie_api.hpo import HPOStudySpec, SignificanceStatus

__all__ = ["SEED_OFFSET", "Comparison", "bootstrap_ci", "compare", "run_significance", "welch"]

SEED_OFFSET = 1000


@dataclass(frozen=True)
class Comparison:
    """Best vs default on one metric."""

    metric: str
    direction: Literal["maximize", "minimize"]
    best: list[float]
    default: list[float]
    best_mean: float
    default_mean: float
    difference: float  # best_mean - default_mean
    t_statistic: float | None
    p_value: float | None
    ci_low: float
    ci_high: float
    confidence: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        doc = {k: _json_number(v) for k, v in asdict(self).items()}
        return doc | {"sentence": self.sentence()}

    def to_status(self) -> SignificanceStatus:
        """The HPOStudy status' significance block."""
        return SignificanceStatus(
            best_mean=self.best_mean,
            default_mean=self.default_mean,
            p_value=self.p_value,
            ci_low=self.ci_low,
            ci_high=self.ci_high,
            significant=self.significant,
        )

    def sentence(self) -> str:
        """One line for reports and `stevie run`."""
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        verdict = "significant" if self.significant else "not significant"
        return (
            f"best vs default on {self.metric} over {len(self.best)} seeds each: "
            f"{self.best_mean:.3f} vs {self.default_mean:.3f}, difference "
            f"{self.difference:+.3f}, {self.confidence:.0%} bootstrap CI "
            f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}], Welch p = {p}: {verdict}"
        )


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def welch(best: list[float], default: list[float]) -> tuple[float | None, float | None]:
    """Welch's two-sided t-test: (t, p), None when undefined (e.g. no variance at all)."""
    from scipy import stats

    if len(best) < 2 or len(default) < 2:
        return None, None
    if np.ptp(best) == 0 and np.ptp(default) == 0:
        return None, None  # no variance at all: the test is undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(best, default, equal_var=False)
    t, p = float(result.statistic), float(result.pvalue)
    return (t if math.isfinite(t) else None), (p if math.isfinite(p) else None)


def bootstrap_ci(
    best: list[float],
    default: list[float],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(best) - mean(default)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(best, dtype=float), np.asarray(default, dtype=float)
    means_a = rng.choice(a, size=(n_resamples, a.size), replace=True).mean(axis=1)
    means_b = rng.choice(b, size=(n_resamples, b.size), replace=True).mean(axis=1)
    diffs = means_a - means_b
    alpha = 1.0 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def compare(
    best: list[float],
    default: list[float],
    *,
    metric: str = "validation.sharpe",
    direction: Literal["maximize", "minimize"] = "maximize",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Welch's t-test and a bootstrap CI of best - default (see the module docstring)."""
    if not best or not default:
        raise ValueError("compare needs at least one value per configuration")
    best_mean, default_mean = float(np.mean(best)), float(np.mean(default))
    t, p = welch(best, default)
    low, high = bootstrap_ci(best, default, confidence, n_resamples, seed)
    diff = best_mean - default_mean
    better = diff > 0 if direction == "maximize" else diff < 0
    excludes_zero = low > 0 if direction == "maximize" else high < 0
    significant = bool(better and excludes_zero and p is not None and p < 1 - confidence)
    return Comparison(
        metric=metric,
        direction=direction,
        best=[float(v) for v in best],
        default=[float(v) for v in default],
        best_mean=best_mean,
        default_mean=default_mean,
        difference=diff,
        t_statistic=t,
        p_value=p,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        significant=significant,
    )


def run_significance(
    spec: HPOStudySpec, best_params: dict[str, Any], out: str, *, log: Any = None
) -> Comparison:
    """Re-train the default (the template as is) and the best configuration over
    ``spec.significance.seeds`` fresh seeds under ``<out>/{default,best}/seed-<k>/``, compare
    them on the first objective and write ``<out>/significance.json``. Resumable: finished
    seeds are reused."""
    from stevie_trainer.common import storage
    from stevie_trainer.common.artifacts import RunStore
    from stevie_trainer.hpo.study import seed_spec, trial_spec
    from stevie_trainer.hpo.trial import train_seed

    say = log or (lambda message: print(message, flush=True))
    objective = spec.objectives[0]
    values: dict[str, list[float]] = {}
    for label, params in (("default", {}), ("best", best_params)):
        run_spec, _ = trial_spec(spec, params)
        values[label] = []
        for k in range(spec.significance.seeds):
            seed_out = storage.join(out, label, f"seed-{k}")
            result = train_seed(seed_spec(run_spec, k, SEED_OFFSET), seed_out, log=say)
            values[label].append(result.value(objective.metric))
            say(f"significance: {label} seed {k}: {objective.metric} {values[label][-1]:.3f}")
    comparison = compare(
        values["best"],
        values["default"],
        metric=objective.metric,
        direction=objective.direction,
        confidence=spec.significance.confidence,
        seed=spec.template.seed,
    )
    RunStore(out).write_json(
        "significance.json", comparison.to_dict() | {"best_params": best_params}
    )
    say(comparison.sentence())
    return comparison
