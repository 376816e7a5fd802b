"""``stevie_trainer hpo-finish``: significance then report, resumable (the operator's finish Job).

The significance re-training is replaced by a stand-in that records its calls and writes
significance.json as the real one does: what is tested here is when it runs, not training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.__main__ import main
from stevie_trainer.common.artifacts import RunStore
from stevie_trainer.hpo import significance
from stevie_trainer.hpo.finish import finish_study
from stevie_trainer.hpo.significance import Comparison, compare
from stevie_trainer.hpo.study import ask_trials, open_study

SPEC: dict[str, Any] = {
    "template": {
        "data": {"uri": "prices.csv"},
        "ppo": {"nSteps": 64},
        "nEnvs": 4,
        "totalTimesteps": 1000,
        "evaluation": {"evalFreq": 250},
    },
    "searchSpace": {"gamma": {"type": "float", "low": 0.9, "high": 0.9999}},
    "pruner": "none",
    "significance": {"seeds": 2},
}


def study_with(tmp_path: Path, values: list[float], **spec: Any) -> tuple[HPOStudySpec, str]:
    """A journal with one completed trial per value."""
    parsed = HPOStudySpec.model_validate({**SPEC, **spec})
    journal = str(tmp_path / "optuna.journal")
    study = open_study(parsed, "demo", journal)
    for value in values:
        (asked,) = ask_trials(study, parsed, 1, "demo")
        study.tell(asked.number, value)
    return parsed, journal


class FakeSignificance:
    """Stands in for run_significance: writes best/seed-k/ and significance.json."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.seeds = ([1.0, 1.2], [0.1, 0.2])  # (best, default) per seed: a clear win

    def __call__(
        self, spec: HPOStudySpec, params: dict[str, Any], out: str, *, log: Any = None
    ) -> Comparison:
        self.calls.append(params)
        store = RunStore(out)
        store.write_json("best/seed-0/result.json", {"params": params})
        comparison = compare(*self.seeds, confidence=spec.significance.confidence)
        store.write_json("significance.json", comparison.to_dict() | {"best_params": params})
        return comparison


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSignificance:
    stand_in = FakeSignificance()
    monkeypatch.setattr(significance, "run_significance", stand_in)
    return stand_in


@pytest.mark.parametrize(
    ("best", "default", "verdict"),
    [
        ([1.0, 1.2], [0.1, 0.2], "significant"),
        ([0.5, 0.6], [0.55, 0.5], "not significant"),  # better on average, within the noise
        ([0.1, 0.2], [1.0, 1.2], "not significant"),  # clearly worse is not a win either
    ],
)
def test_finish_runs_significance_once_then_reuses_it(
    tmp_path: Path, fake: FakeSignificance, best: list[float], default: list[float], verdict: str
) -> None:
    fake.seeds = (best, default)
    spec, journal = study_with(tmp_path, [0.2, 0.8])
    out = tmp_path / "study"
    uris = finish_study(spec, "demo", journal, str(out), log=lambda _: None)
    assert len(fake.calls) == 1 and set(fake.calls[0]) == {"gamma"}
    results = json.loads(Path(uris["optimization_results.json"]).read_text())
    assert results["significance"]["best_params"] == fake.calls[0]
    assert results["significance"]["significant"] is (verdict == "significant")
    report = (out / "optimization_report.txt").read_text()
    sentence = results["significance"]["sentence"]
    assert sentence.endswith(f"Welch p = {results['significance']['p_value']:.3g}: {verdict}")
    assert sentence in report
    assert (out / "significance" / "significance.json").is_file()
    # A retried pod (or a second run): the report again, no re-training.
    finish_study(spec, "demo", journal, str(out), log=lambda _: None)
    assert len(fake.calls) == 1


def test_a_new_best_trial_retrains_from_scratch(tmp_path: Path, fake: FakeSignificance) -> None:
    spec, journal = study_with(tmp_path, [0.5])
    out = tmp_path / "study"
    finish_study(spec, "demo", journal, str(out), log=lambda _: None)
    seed = out / "significance" / "best" / "seed-0" / "result.json"
    first = json.loads(seed.read_text())["params"]
    study_with(tmp_path, [0.9])  # the study resumed with more trials: a new best
    messages: list[str] = []
    finish_study(spec, "demo", journal, str(out), log=messages.append)
    assert len(fake.calls) == 2 and fake.calls[1] != first
    assert any("best trial changed" in m for m in messages)
    assert json.loads(seed.read_text())["params"] == fake.calls[1]


def test_hpo_finish_command_without_significance(tmp_path: Path, fake: FakeSignificance) -> None:
    _, journal = study_with(tmp_path, [0.3], significance={"enabled": False})
    spec_file = tmp_path / "study.json"
    spec = {**SPEC, "significance": {"enabled": False}}
    doc = {"apiVersion": "stevie.dev/v1alpha1", "kind": "HPOStudy", "metadata": {"name": "demo"}}
    spec_file.write_text(json.dumps({**doc, "spec": spec}))
    out = tmp_path / "out"
    args = ["hpo-finish", "--study-spec", str(spec_file), "--storage", journal, "--out", str(out)]
    assert main(args) == 0
    assert fake.calls == []
    assert (out / "optimization_report.txt").is_file()
    assert not (out / "significance").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    _, nothing = study_with(empty, [])
    assert main([*args[:4], nothing, "--out", str(out)]) == 1  # no completed trial
