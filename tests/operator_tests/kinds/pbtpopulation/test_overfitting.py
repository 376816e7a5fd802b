"""status.overfitting of a PBTPopulation: pbt_summary.json's ``overfitting`` section."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stevie_api.pbt import PBTPopulationSpec, PBTPopulationStatus
from stevie_operator.kinds.pbtpopulation.control import overfitting_status, population_status
from stevie_trainer.pbt.evolution import new_population, record_result
from stevie_trainer.pbt.luck import overfitting_section
from stevie_trainer.pbt.state import Population, summary
from support.specs import pbt_population


def finished(sharpes: list[float], size: int = 0) -> tuple[Population, list[dict[str, Any]]]:
    """One interval for each of the first members (of ``size``), fitness = validation Sharpe;
    the results as read by finish."""
    spec = PBTPopulationSpec.model_validate(
        pbt_population(populationSize=max(size, len(sharpes)))["spec"]
    )
    pop = new_population("p", spec, np.random.default_rng(0))
    results = []
    for m, sr in enumerate(sharpes):
        pop.members[m].status = "running"
        record_result(pop, m, 0, sr, f"/nowhere/m{m}/i0")
        validation = {"sharpe": sr, "bars": 200, "bars_per_year": 252}
        results.append({"member": m, "interval": 0, "validation": validation})
    return pop, results


def test_the_finish_section_becomes_the_status_field() -> None:
    pop, results = finished([1.5, 0.2, -0.4, 0.7])
    doc = summary(pop)
    doc["overfitting"] = overfitting_section(pop, results, doc["best"])
    dsr = doc["overfitting"]["deflated_sharpe"]["dsr"]
    status = population_status(pop, doc)
    assert status.overfitting is not None
    assert status.overfitting.deflated_sharpe == pytest.approx(dsr) and 0 < dsr < 1
    assert status.overfitting.trials == 4
    assert status.overfitting.note is not None
    assert "DSR of member 0 interval 0 among 4 evaluations" in status.overfitting.note
    assert "normal returns assumed" in status.overfitting.note  # nothing stored at /nowhere
    # As the resource shows it (camelCase), and it validates back.
    shown = status.model_dump(mode="json", by_alias=True, exclude_none=True)["overfitting"]
    assert set(shown) == {"deflatedSharpe", "trials", "note"}
    assert (
        PBTPopulationStatus.model_validate({"overfitting": shown}).overfitting == status.overfitting
    )


def test_a_null_dsr_keeps_the_reason_and_an_old_summary_has_none() -> None:
    pop, results = finished([1.5], size=2)  # one evaluation only
    doc = summary(pop)
    doc["overfitting"] = overfitting_section(pop, results, doc["best"])
    got = population_status(pop, doc).overfitting
    assert got is not None and got.deflated_sharpe is None and got.trials == 1
    assert got.note is not None and "needs at least 2" in got.note
    assert population_status(pop, summary(pop)).overfitting is None  # an older finish
    assert population_status(pop, None).overfitting is None  # still running


@pytest.mark.parametrize(
    "section",
    [
        {"deflated_sharpe": {"dsr": 1.7}, "evaluations": -3, "notes": "text"},
        {"deflated_sharpe": "0.5", "evaluations": True, "notes": [1, None]},
    ],
)
def test_garbage_is_dropped_not_trusted(section: dict[str, Any]) -> None:
    got = overfitting_status(section)
    assert got is not None
    assert (got.deflated_sharpe, got.trials, got.note) == (None, None, None)
    assert overfitting_status("nonsense") is None
