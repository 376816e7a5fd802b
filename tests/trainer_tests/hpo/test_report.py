"""HPO outputs from synthetic studies: results JSON, best params, report, plots, savings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.hpo.report import (
    best_hyperparameters,
    param_importances,
    pruning_savings,
    report_text,
    results_document,
    write_report,
)
from stevie_trainer.hpo.significance import compare
from stevie_trainer.hpo.study import open_study

PNG = b"\x89PNG\r\n\x1a\n"
DISTS = {
    "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
    "gamma": FloatDistribution(0.9, 0.9999),
    "batch_size": CategoricalDistribution([32, 64, 128]),
}


def spec_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "template": {
            "data": {"uri": "prices.csv"},
            "ppo": {"nSteps": 64},
            "nEnvs": 4,
            "totalTimesteps": 1000,
            "evaluation": {"evalFreq": 250},
        },
        "searchSpace": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "gamma": {"type": "float", "low": 0.9, "high": 0.9999},
            "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        },
        "seedsPerTrial": 2,
    }
    doc.update(overrides)
    return doc


def add(
    study: optuna.Study,
    k: int,
    values: list[float] | None,
    state: TrialState = TrialState.COMPLETE,
    done: int = 2000,
    **attrs: Any,
) -> None:
    params = {"learning_rate": 1e-4 * (k + 1), "gamma": 0.9 + 0.01 * k, "batch_size": 32}
    steps = {s: (values[0] if values else -1.0) for s in range(250, done + 1, 250)}
    study.add_trial(
        create_trial(
            params=params,
            distributions=DISTS,
            values=values,
            state=state,
            intermediate_values=steps,
            user_attrs={"timesteps_budget": 2000, "timesteps_done": done, **attrs},
        )
    )


def single_study(tmp_path: Path, n: int = 8) -> tuple[optuna.Study, HPOStudySpec]:
    spec = HPOStudySpec.model_validate(spec_doc())
    study = open_study(spec, "demo", str(tmp_path / "optuna.journal"))
    for k in range(n):
        add(study, k, [0.1 * k])  # learning_rate and gamma drive the value
    add(study, n, None, TrialState.PRUNED, done=500)
    add(study, n + 1, None, TrialState.FAIL, done=0, error="ValueError: boom")
    return study, spec


def test_results_document_has_every_trial(tmp_path: Path) -> None:
    study, spec = single_study(tmp_path)
    doc = results_document(study, spec, "demo")
    json.dumps(doc, allow_nan=False)
    assert [t["state"] for t in doc["trials"]][-2:] == ["PRUNED", "FAIL"]
    first = doc["trials"][0]
    assert first["name"] == "demo-t0" and first["values"] == [0.0]
    assert first["intermediate_values"]["250"] == 0.0
    assert first["duration_seconds"] is not None
    assert doc["counts"] == {"running": 0, "completed": 8, "pruned": 1, "failed": 1}
    assert doc["best_trial"] == 7 and doc["pareto_front"] is None
    assert doc["pruning"]["saved_timesteps"] == 1500
    assert set(doc["importances"]["validation.sharpe"]) == set(DISTS)


def test_pruning_savings_share(tmp_path: Path) -> None:
    study, _ = single_study(tmp_path, n=3)
    savings = pruning_savings(study.get_trials())
    # 3 complete x 2000 + 1 pruned at 500 of 2000; failed trials do not count.
    assert savings == {
        "pruned_trials": 1,
        "budget_timesteps": 8000,
        "spent_timesteps": 6500,
        "saved_timesteps": 1500,
        "saved_share": 1500 / 8000,
    }
    assert pruning_savings([])["saved_share"] == 0.0


def test_importances_need_enough_trials(tmp_path: Path) -> None:
    study, spec = single_study(tmp_path, n=2)
    assert "at least 3" in param_importances(study, spec)["note"]
    study, spec = single_study(tmp_path / "more", n=8)
    found = param_importances(study, spec)["validation.sharpe"]
    assert sum(found.values()) == pytest.approx(1.0)


def test_best_hyperparameters_merge_the_template(tmp_path: Path) -> None:
    study, spec = single_study(tmp_path)
    best = best_hyperparameters(study, spec, "demo")
    assert best["best_trial"] == 7 and best["name"] == "demo-t7"
    assert best["hyperparameters"]["learning_rate"] == pytest.approx(8e-4)
    assert best["hyperparameters"]["n_steps"] == 64  # from the template
    assert best["training_run_patch"]["ppo"]["nSteps"] == 64
    empty = open_study(spec, "none", str(tmp_path / "empty.journal"))
    assert best_hyperparameters(empty, spec, "none")["best_trial"] is None


def test_report_text_and_plots_written(tmp_path: Path) -> None:
    study, spec = single_study(tmp_path)
    sig = compare([1.0, 1.2, 1.1], [0.2, 0.1, 0.3]).to_dict()
    out = tmp_path / "out"
    uris = write_report(study, spec, str(out), "demo", significance=sig)
    assert set(uris) == {
        "optimization_results.json",
        "best_hyperparameters.json",
        "optimization_report.txt",
        "optimization_history.png",
        "param_importances.png",
    }
    for name in ("optimization_history.png", "param_importances.png"):
        assert (out / name).read_bytes()[:8] == PNG
    text = (out / "optimization_report.txt").read_text()
    assert "HPO study demo: 10 trials (completed 8, pruned 1, failed 1, running 0)" in text
    assert "#7    demo-t7: 0.7" in text
    assert "Parameter importances:" in text and "learning_rate" in text
    assert "1 trial(s) pruned; 16,500 of 18,000 budgeted timesteps trained: 8.3%" in text
    assert "failed #9: ValueError: boom" in text
    assert "significant" in text and "validation split" in text
    results = json.loads((out / "optimization_results.json").read_text())
    assert results["significance"]["significant"] is True


def test_multi_objective_report_has_a_pareto_front(tmp_path: Path) -> None:
    spec = HPOStudySpec.model_validate(
        spec_doc(
            sampler="nsga2",
            pruner="none",
            objectives=[
                {"metric": "validation.sharpe", "direction": "maximize"},
                {"metric": "validation.max_drawdown", "direction": "minimize"},
            ],
        )
    )
    study = open_study(spec, "mo", str(tmp_path / "j"))
    for k, values in enumerate([[1.0, 0.3], [2.0, 0.5], [0.5, 0.1], [0.4, 0.4]]):
        add(study, k, values)
    doc = results_document(study, spec, "mo")
    assert doc["pareto_front"] == [1, 0, 2]
    assert set(doc["importances"]) == {"validation.sharpe", "validation.max_drawdown"}
    text = report_text(doc)
    assert "Pareto front (3 trials):" in text
    out = tmp_path / "out"
    write_report(study, spec, str(out), "mo")
    assert (out / "pareto_front.png").read_bytes()[:8] == PNG
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert [p["number"] for p in best["pareto_front"]] == [1, 0, 2]


def test_report_with_no_completed_trial(tmp_path: Path) -> None:
    spec = HPOStudySpec.model_validate(spec_doc())
    study = open_study(spec, "e", str(tmp_path / "j"))
    add(study, 0, None, TrialState.FAIL, done=0, error="boom")
    uris = write_report(study, spec, str(tmp_path / "out"), "e")
    assert "optimization_history.png" not in uris
    text = Path(uris["optimization_report.txt"]).read_text()
    assert "Best trials: none completed" in text and "plots skipped" in text


def test_report_goes_to_s3(tmp_path: Path, s3_server: Any) -> None:
    study, spec = single_study(tmp_path, n=3)
    uris = write_report(study, spec, s3_server.uri("studies/demo"), "demo")
    keys = {o["Key"] for o in s3_server.client.list_objects_v2(Bucket="stevie-test")["Contents"]}
    assert "studies/demo/optimization_report.txt" in keys
    assert (
        uris["optimization_results.json"]
        == "s3://stevie-test/studies/demo/optimization_results.json"
    )
