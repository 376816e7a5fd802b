"""The Deflated Sharpe Ratio of a PBT population's selected evaluation (stevie_trainer.pbt.luck)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from stevie_api.pbt import FitnessWeights, PBTPopulationSpec
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.evaluation.overfitting import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    return_moments,
)
from stevie_trainer.pbt.evolution import new_population, record_result
from stevie_trainer.pbt.finish import interval_results
from stevie_trainer.pbt.luck import (
    RETURNS_FILE,
    decode_returns,
    encode_returns,
    overfitting_section,
    overfitting_text,
)
from stevie_trainer.pbt.state import LineageEvent, Population, summary
from support.specs import pbt_population

BPY = 252.0
BARS = 120


def spec() -> PBTPopulationSpec:
    return PBTPopulationSpec.model_validate(pbt_population()["spec"])


def finished(
    tmp: Path,
    sharpes: Mapping[tuple[int, int], float | None],
    *,
    returns_of: frozenset[tuple[int, int]] = frozenset(),
) -> tuple[Population, dict[tuple[int, int], npt.NDArray[np.float64]]]:
    """A population whose (member, interval) evaluations have these annualised validation
    Sharpes (fitness = Sharpe, so the best fitness is the best Sharpe); the evaluations in
    ``returns_of`` stored their per-bar returns."""
    pop = new_population("p", spec(), np.random.default_rng(0))
    rng = np.random.default_rng(7)
    stored = {}
    for (m, i), sr in sorted(sharpes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        folder = tmp / f"m{m}" / f"i{i}"
        store = RunStore(str(folder))
        validation = {"sharpe": sr, "bars": BARS, "bars_per_year": BPY, "total_return": 0.01}
        store.write_json("result.json", {"status": "succeeded", "validation": validation})
        if (m, i) in returns_of:
            r = rng.standard_t(4, BARS) * 0.01 + 0.002
            store.write_bytes(RETURNS_FILE, encode_returns(r))
            stored[(m, i)] = r
        pop.members[m].status = "running"
        assert record_result(pop, m, i, -5.0 if sr is None else sr, str(folder))
    return pop, stored


def by_hand(
    sharpes: list[float], best: float, n: int, skew: float = 0.0, kurt: float = 3.0
) -> DeflatedSharpe:
    per_bar = [s / math.sqrt(BPY) for s in sharpes]
    return deflated_sharpe_ratio(
        best / math.sqrt(BPY), BARS, n_trials=n, trials_sr_variance=float(np.var(per_bar, ddof=1)),
        skew=skew, kurtosis=kurt,
    )  # fmt: skip


GRID = {(m, i): 0.3 * m - 0.2 * i + 0.1 * ((m * 3 + i) % 4) for m in range(3) for i in range(3)}


def test_every_member_interval_counts_and_the_value_is_the_papers(tmp_path: Path) -> None:
    pop, stored = finished(tmp_path, GRID, returns_of=frozenset({(2, 0)}))
    # An exploit: member 0 copied member 2 before its interval 1 -- its intervals still count.
    pop.events.append(LineageEvent(1, 0, 2, 1, str(tmp_path / "m2/i0"), {}, {}, "test"))
    best = summary(pop)["best"]
    assert (best["member"], best["interval"]) == max(GRID, key=lambda k: (GRID[k], -k[0], -k[1]))
    doc = overfitting_section(pop, interval_results(pop), best, spec().fitness)
    assert doc["evaluations"] == doc["evaluations_with_sharpe"] == 9  # 3 members x 3 intervals
    m = return_moments(stored[(2, 0)])
    expected = by_hand(list(GRID.values()), GRID[(2, 0)], 9, m.skew, m.kurtosis)
    dsr = doc["deflated_sharpe"]
    assert dsr["dsr"] == pytest.approx(expected.dsr, rel=1e-12)
    assert dsr["sr0"] == pytest.approx(expected.sr0, rel=1e-12)
    assert (dsr["n_trials"], dsr["n_obs"], dsr["member"], dsr["interval"]) == (9, BARS, 2, 0)
    assert dsr["kurtosis"] == pytest.approx(m.kurtosis) and dsr["kurtosis"] != 3.0
    assert doc["selected"] == {"member": 2, "interval": 0}
    notes = " ".join(doc["notes"])
    assert "exploited copies included" in notes and "stored validation_returns.npy" in notes
    assert "not by Sharpe" in notes  # the default fitness is a composite
    text = "\n".join(overfitting_text(doc))
    assert "9 evaluation(s)" in text and f"DSR {expected.dsr:.3f}" in text


def test_without_stored_returns_normal_moments_are_assumed_and_said(tmp_path: Path) -> None:
    pop, _ = finished(tmp_path, GRID)
    weights = FitnessWeights(sharpe=1, mean_profit=0, win_rate=0, stability=0)
    doc = overfitting_section(pop, interval_results(pop), summary(pop)["best"], weights)
    expected = by_hand(list(GRID.values()), GRID[(2, 0)], 9)
    assert doc["deflated_sharpe"]["dsr"] == pytest.approx(expected.dsr, rel=1e-12)
    assert doc["deflated_sharpe"]["skew"] == 0.0 and doc["deflated_sharpe"]["kurtosis"] == 3.0
    notes = " ".join(doc["notes"])
    assert "normal returns assumed" in notes and "weighs the validation Sharpe alone" in notes


def test_one_evaluation_gives_null_with_the_reason(tmp_path: Path) -> None:
    pop, _ = finished(tmp_path, {(0, 0): 1.2})
    doc = overfitting_section(pop, interval_results(pop), summary(pop)["best"])
    assert doc["deflated_sharpe"] is None and doc["evaluations"] == 1
    assert "needs at least 2" in doc["notes"][0]


def test_evaluations_without_a_sharpe_count_but_do_not_make_up_one(tmp_path: Path) -> None:
    grid: dict[tuple[int, int], float | None] = {(0, 0): 0.5, (1, 0): None, (2, 0): -0.1}
    pop, _ = finished(tmp_path, grid)
    doc = overfitting_section(pop, interval_results(pop), summary(pop)["best"])
    assert (doc["evaluations"], doc["evaluations_with_sharpe"]) == (3, 2)
    expected = by_hand([0.5, -0.1], 0.5, 3)
    assert doc["deflated_sharpe"]["dsr"] == pytest.approx(expected.dsr, rel=1e-12)
    # The selected evaluation itself without a Sharpe (a policy that never traded): null.
    pop.members[1].fitness_history[0] = 9.0
    doc = overfitting_section(pop, interval_results(pop), summary(pop)["best"])
    assert doc["deflated_sharpe"] is None
    assert (
        doc["notes"][0]
        == "DSR not computed: the selected member 1 interval 0 has no validation Sharpe"
    )


def test_no_best_and_corrupt_returns(tmp_path: Path) -> None:
    pop, _ = finished(tmp_path, {(0, 0): 0.5, (1, 0): 0.1})
    assert (
        overfitting_section(pop, [], None)["notes"][0] == "DSR not computed: no selected evaluation"
    )
    (tmp_path / "m0/i0" / RETURNS_FILE).write_bytes(b"not a npy")
    doc = overfitting_section(pop, interval_results(pop), summary(pop)["best"])
    assert doc["deflated_sharpe"]["kurtosis"] == 3.0 and "normal returns assumed" in doc["notes"][0]


def test_returns_round_trip() -> None:
    r = np.array([0.01, -0.02, 0.0])
    assert np.array_equal(decode_returns(encode_returns(r)), r)
