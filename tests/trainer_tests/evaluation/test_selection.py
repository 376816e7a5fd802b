"""selection: the walk-forward score (mean or mean - z std / sqrt(K)) and the aggregate
validation block, against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from stevie_api.techniques import WalkForwardSpec
from stevie_trainer.evaluation.selection import aggregate, fold_std, selection_score

MEAN = WalkForwardSpec()
LCB = WalkForwardSpec(score="lcb")


def test_the_mean_and_the_lower_bound_by_hand() -> None:
    sharpes = [1.0, 2.0, 3.0, 6.0]  # mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14 / 3
    assert selection_score(sharpes, MEAN) == pytest.approx(3.0)
    std = math.sqrt(14 / 3)
    assert fold_std(sharpes) == pytest.approx(std)
    assert selection_score(sharpes, LCB) == pytest.approx(3.0 - std / 2)  # z 1, sqrt(4) = 2
    z2 = WalkForwardSpec(score="lcb", z=2.0)
    assert selection_score(sharpes, z2) == pytest.approx(3.0 - std)
    # Equal folds: no spread, the bound is the mean; one fold: its own value.
    assert selection_score([0.7, 0.7, 0.7], LCB) == pytest.approx(0.7)
    assert selection_score([-0.4], LCB) == -0.4 and fold_std([-0.4]) is None
    with pytest.raises(ValueError, match="at least one fold"):
        selection_score([], MEAN)


def test_the_lower_bound_prefers_the_consistent_agent() -> None:
    steady, lucky = [0.5, 0.6, 0.4], [2.5, -1.0, 0.0]  # same mean 0.5
    assert selection_score(steady, MEAN) == pytest.approx(selection_score(lucky, MEAN))
    assert selection_score(steady, LCB) > selection_score(lucky, LCB)


def test_aggregate_means_every_metric_and_scores_sharpe() -> None:
    keys = ("sharpe", "total_return", "max_drawdown", "trades", "cost_share")
    rows = [(1.0, 0.10, -0.2, 4, None), (None, -0.05, -0.1, 0, 0.5), (2.0, 0.25, -0.3, 8, 0.3)]
    folds = [dict(zip(keys, row, strict=True)) for row in rows]
    block = aggregate(folds, LCB)
    # An undefined Sharpe (the agent never traded) counts as 0, as HPO counts it.
    values = [1.0, 0.0, 2.0]
    assert block["sharpe_mean"] == pytest.approx(1.0)
    assert block["sharpe_std"] == pytest.approx(1.0)
    assert block["sharpe"] == pytest.approx(1.0 - 1.0 / math.sqrt(3))
    assert block["sharpe"] == pytest.approx(selection_score(values, LCB))
    assert block["total_return"] == pytest.approx(0.10)
    assert block["max_drawdown"] == pytest.approx(-0.2)
    assert block["trades"] == pytest.approx(4.0)
    assert block["cost_share"] == pytest.approx(0.4)  # over the folds where it is defined
    assert aggregate(folds, MEAN)["sharpe"] == pytest.approx(1.0)
    # A fold with no evaluation at all still counts (as Sharpe 0), and nothing is invented.
    assert aggregate([None, {"sharpe": 3.0}], MEAN) == {
        "sharpe": 1.5,
        "sharpe_mean": 1.5,
        "sharpe_std": pytest.approx(math.sqrt(4.5)),
    }
