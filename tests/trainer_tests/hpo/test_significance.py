"""Best vs default: Welch's t-test and a bootstrap CI; the re-training on tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.hpo.significance import (
    SEED_OFFSET,
    bootstrap_ci,
    compare,
    run_significance,
    welch,
)
from support.specs import template


def test_clear_improvement_is_significant() -> None:
    best, default = [1.0, 1.2, 1.1, 1.15], [0.2, 0.1, 0.3, 0.25]
    c = compare(best, default, confidence=0.95)
    expected = stats.ttest_ind(best, default, equal_var=False)
    assert c.p_value == pytest.approx(float(expected.pvalue))
    assert c.t_statistic == pytest.approx(float(expected.statistic))
    assert c.difference == pytest.approx(np.mean(best) - np.mean(default))
    assert 0 < c.ci_low <= c.difference <= c.ci_high
    assert c.significant
    status = c.to_status()
    assert status.significant and status.best_mean == pytest.approx(1.1125)
    assert "significant" in c.sentence() and json.dumps(c.to_dict(), allow_nan=False)


def test_noise_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    a, b = list(rng.normal(0, 1, 3)), list(rng.normal(0, 1, 3))
    c = compare(a, b)
    assert not c.significant and c.ci_low < 0 < c.ci_high


def test_worse_best_is_not_significant_and_minimize_flips_the_sign() -> None:
    worse = compare([0.1, 0.2, 0.15], [1.0, 1.1, 1.2])
    assert worse.p_value is not None and worse.p_value < 0.05 and not worse.significant
    drawdown = compare(
        [0.05, 0.06, 0.055],
        [0.2, 0.22, 0.21],
        metric="validation.max_drawdown",
        direction="minimize",
    )
    assert drawdown.significant and drawdown.ci_high < 0


def test_identical_values_have_no_p_value() -> None:
    c = compare([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert c.p_value is None and c.t_statistic is None and not c.significant
    assert (c.ci_low, c.ci_high) == (0.0, 0.0)
    assert welch([1.0], [2.0, 3.0]) == (None, None)


def test_bootstrap_is_deterministic_and_covers_the_difference() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 1.5]
    assert bootstrap_ci(a, b, seed=7) == bootstrap_ci(a, b, seed=7)
    low, high = bootstrap_ci(a, b, confidence=0.9)
    narrow_low, narrow_high = bootstrap_ci(a, b, confidence=0.5)
    assert low < narrow_low < np.mean(a) - np.mean(b) < narrow_high < high
    with pytest.raises(ValueError):
        compare([], [1.0])


def test_run_significance_retrains_both_configurations(tmp_path: Path) -> None:
    spec = HPOStudySpec.model_validate(
        {
            "template": template(),
            "searchSpace": {
                "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
            },
            "significance": {"seeds": 2},
        }
    )
    lines: list[str] = []
    c = run_significance(spec, {"learning_rate": 0.005}, str(tmp_path), log=lines.append)
    assert len(c.best) == len(c.default) == 2
    for label in ("best", "default"):
        for k in range(2):
            seed = json.loads((tmp_path / label / f"seed-{k}" / "result.json").read_text())
            assert seed["seed"] == SEED_OFFSET + k  # fresh seeds, not the search's
    saved = json.loads((tmp_path / "significance.json").read_text())
    assert saved["best_params"] == {"learning_rate": 0.005} and saved["best"] == c.best
    assert lines[-1] == c.sentence()
    # Resumable: a second call re-uses every finished seed.
    assert run_significance(spec, {"learning_rate": 0.005}, str(tmp_path), log=lines.append) == c
