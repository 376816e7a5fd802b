"""The best trial's seed spread in the HPOStudy status: from the finish Job's overfitting.json
(stevie_trainer.hpo.luck's ``seed_spread``), null fields left out with one seed, and
cleared once another trial becomes the best (a study resumed with a larger maxTrials)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stevie_operator.kinds.hpostudy import study as hpo_study
from support.hpo import DONE, World

THREE = {"trial": 1, "seeds": 3, "sharpes": [0.52, 0.8, 1.2], "mean": 0.84, "std": 0.3418,
         "min": 0.52, "max": 1.2}  # fmt: skip


def write_outputs(w: World, spread: dict[str, Any] | None) -> None:
    w.folder.mkdir(parents=True, exist_ok=True)
    (w.folder / "optimization_results.json").write_text("{}")
    (w.folder / "optimization_report.txt").write_text("report")
    luck: dict[str, Any] = {"trials": 2, "deflated_sharpe": None, "pbo": None, "notes": []}
    (w.folder / "overfitting.json").write_text(json.dumps(luck | {"seed_spread": spread}))


def test_the_best_trials_seed_spread_reaches_the_status_until_another_is_best(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, maxTrials=2)
    w.step()
    w.tell(0, 0.4)
    w.tell(1, 0.9)
    w.step()  # the finish Job
    write_outputs(w, THREE)
    w.jobs["hpo-finish-2"]["status"] = dict(DONE)
    plan = w.step()
    assert plan.phase == "Succeeded" and plan.status["bestTrial"] == 1
    assert plan.status["bestSeedSpread"] == {
        "trial": 1, "seeds": 3, "sharpeMean": 0.84, "sharpeStd": 0.3418,
        "sharpeMin": 0.52, "sharpeMax": 1.2,
    }  # fmt: skip

    # Resumed with a larger budget: kept while trial 1 is the best, gone once it is not.
    w.res["spec"]["maxTrials"] = 3
    w.res["metadata"]["generation"] = 2
    plan = w.step()
    assert plan.phase == "Running" and plan.status["bestSeedSpread"]["trial"] == 1
    w.tell(2, 1.5)
    plan = w.step()
    assert plan.status["bestTrial"] == 2 and "bestSeedSpread" not in plan.status


def test_one_seed_has_no_spread_and_an_older_trainer_none(tmp_path: Path) -> None:
    w = World(tmp_path)
    spec = w.study().spec
    one = {"trial": 0, "seeds": 1, "sharpes": [0.7], "mean": 0.7, "std": None, "min": None,
           "max": None}  # fmt: skip
    write_outputs(w, one)
    spread = hpo_study.read_outputs(w.folder.as_uri(), spec).seed_spread
    assert spread is not None
    assert spread.model_dump(by_alias=True, exclude_none=True) == {
        "trial": 0,
        "seeds": 1,
        "sharpeMean": 0.7,
    }  # fmt: skip: std, min and max null (no spread), never 0
    write_outputs(w, None)  # overfitting.json of a trainer without seed spreads
    assert hpo_study.read_outputs(w.folder.as_uri(), spec).seed_spread is None
