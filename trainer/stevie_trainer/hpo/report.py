"""The outputs of an HPO study, in storage (any URI: folder or s3:// prefix).

* ``optimization_results.json``: every trial (number, name, state, params, values,
  intermediate values, duration, user attributes, the spread of its per-seed validation
  Sharpes), counts, best trial(s) and the best trial's seed spread, importances and pruning
  savings;
* ``best_hyperparameters.json``: the best trial's parameters and the full hyperparameters
  of the template with them (the Pareto front too, multi-objective);
* ``optimization_report.txt``: a human summary (best trials, the best trial's seed spread,
  parameter importances, pruning savings, best vs default significance when given, how
  much is luck: DSR and PBO);
* ``overfitting.json``: the best trial's Deflated Sharpe Ratio and the study's PBO
  (:mod:`stevie_trainer.hpo.luck`), when given;
* PNG plots: ``optimization_history.png``, ``param_importances.png`` and, with several
  objectives, ``pareto_front.png`` (matplotlib; skipped with a note where it is missing).

Torch-free. Pruning savings = timesteps a pruned trial did not train (its budget, totalTimesteps
x seedsPerTrial, minus what it trained) over the budget of every finished trial.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.common import storage
from stevie_trainer.hpo.seeds import read_trial_json, seed_spread, spread_line
from stevie_trainer.hpo.study import best_trials, trial_counts, trial_name, trial_spec

__all__ = [
    "best_hyperparameters",
    "param_importances",
    "plot_pngs",
    "pruning_savings",
    "report_text",
    "results_document",
    "trial_record",
    "write_report",
]

MIN_TRIALS_FOR_IMPORTANCE = 3


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trial_record(trial: FrozenTrial, study_name: str) -> dict[str, Any]:
    """One trial, JSON-safe; ``seed_spread`` from its trial.json
    (:func:`stevie_trainer.hpo.seeds.seed_spread`: null when it left none)."""
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "number": trial.number,
        "name": trial_name(study_name, trial.number),
        "state": trial.state.name,
        "params": dict(trial.params),
        "values": [_finite(v) for v in trial.values] if trial.values else None,
        "intermediate_values": {
            str(step): _finite(v) for step, v in sorted(trial.intermediate_values.items())
        },
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "datetime_complete": (
            trial.datetime_complete.isoformat() if trial.datetime_complete else None
        ),
        "duration_seconds": None if duration is None else round(duration, 3),
        "user_attrs": dict(trial.user_attrs),
        "seed_spread": seed_spread(read_trial_json(trial)),
    }


def pruning_savings(trials: list[FrozenTrial]) -> dict[str, Any]:
    """Share of the finished trials' timestep budget not spent because of pruning."""
    budget = spent = saved = 0
    pruned = 0
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        full = int(t.user_attrs.get("timesteps_budget", 0))
        done = int(t.user_attrs.get("timesteps_done", full))
        if t.state == TrialState.PRUNED:
            pruned += 1
            if "timesteps_done" not in t.user_attrs and t.intermediate_values:
                done = max(t.intermediate_values)  # steps are timesteps
            saved += max(0, full - done)
        budget += full
        spent += min(done, full)
    return {
        "pruned_trials": pruned,
        "budget_timesteps": budget,
        "spent_timesteps": spent,
        "saved_timesteps": saved,
        "saved_share": saved / budget if budget else 0.0,
    }


def _target(index: int) -> Callable[[FrozenTrial], float]:
    def value(trial: FrozenTrial) -> float:
        return float(trial.values[index])

    return value


def param_importances(study: optuna.Study, spec: HPOStudySpec) -> dict[str, Any]:
    """Importances per objective (``optuna.importance``), or a note why there are none."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return {
            "note": f"{len(done)} completed trial(s): importances need at least "
            f"{MIN_TRIALS_FOR_IMPORTANCE}"
        }
    out: dict[str, Any] = {}
    for i, objective in enumerate(spec.objectives):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(study, target=_target(i))
            out[objective.metric] = {k: float(v) for k, v in found.items()}
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            out[objective.metric] = {}
            out.setdefault("note", f"importances unavailable: {err}")
    return out


def results_document(study: optuna.Study, spec: HPOStudySpec, study_name: str) -> dict[str, Any]:
    """The content of optimization_results.json."""
    trials = study.get_trials(deepcopy=False)
    ranked = best_trials(study)
    records = [trial_record(t, study_name) for t in trials]
    spreads = {r["number"]: r["seed_spread"] for r in records}
    return {
        "study": study_name,
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "objectives": [o.to_dict() for o in spec.objectives],
        "search_space": {k: v.to_dict() for k, v in spec.search_space.items()},
        "budget": {
            "total_timesteps_per_seed": spec.template.total_timesteps,
            "seeds_per_trial": spec.seeds_per_trial,
            "max_trials": spec.max_trials,
            "parallelism": spec.parallelism,
        },
        "counts": trial_counts(study).model_dump(),
        "best_trial": ranked[0].number if ranked else None,
        "best_seed_spread": spreads.get(ranked[0].number) if ranked else None,
        "pareto_front": [t.number for t in ranked] if len(spec.objectives) > 1 else None,
        "pruning": pruning_savings(trials),
        "importances": param_importances(study, spec),
        "selection_note": "objectives are measured on the validation split; the test split "
        "is never used to select hyperparameters",
        "trials": records,
    }


def best_hyperparameters(
    study: optuna.Study, spec: HPOStudySpec, study_name: str
) -> dict[str, Any]:
    """The content of best_hyperparameters.json."""
    ranked = best_trials(study)
    if not ranked:
        return {"study": study_name, "best_trial": None, "note": "no completed trial"}
    best = ranked[0]
    run_spec, adjusted = trial_spec(spec, dict(best.params))
    field = "ppo" if run_spec.algorithm == "PPO" else "dqn"
    doc: dict[str, Any] = {
        "study": study_name,
        "best_trial": best.number,
        "name": trial_name(study_name, best.number),
        "objectives": [o.metric for o in spec.objectives],
        "values": list(best.values),
        "params": dict(best.params),
        "adjusted_params": adjusted or None,
        "algorithm": run_spec.algorithm,
        # Every hyperparameter, by SB3 name; and the block to paste into a TrainingRun.
        "hyperparameters": run_spec.hyperparameters.to_sb3_kwargs(),
        "training_run_patch": {field: run_spec.hyperparameters.to_dict()},
    }
    if len(spec.objectives) > 1:
        doc["pareto_front"] = [
            {"number": t.number, "values": list(t.values), "params": dict(t.params)} for t in ranked
        ]
    return doc


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def report_text(results: dict[str, Any], significance: dict[str, Any] | None = None) -> str:
    """optimization_report.txt from results_document() (and a Comparison.to_dict())."""
    c, b = results["counts"], results["budget"]
    metrics = [f"{o['direction']} {o['metric']}" for o in results["objectives"]]
    lines = [
        f"HPO study {results['study']}: {sum(c.values())} trials (completed {c['completed']}, "
        f"pruned {c['pruned']}, failed {c['failed']}, running {c['running']})",
        f"sampler {results['sampler']}, pruner {results['pruner']}; objectives: "
        + ", ".join(metrics),
        f"budget per trial: {b['total_timesteps_per_seed']:,} timesteps x "
        f"{b['seeds_per_trial']} seed(s); a trial's value is the mean over its seeds",
        results["selection_note"],
        "",
    ]
    by_number = {t["number"]: t for t in results["trials"]}
    multi = results["pareto_front"] is not None
    done = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    if multi:
        ranked = [by_number[n] for n in results["pareto_front"]]
        lines.append(f"Pareto front ({len(ranked)} trials):")
    else:
        sign = -1 if results["objectives"][0]["direction"] == "maximize" else 1
        ranked = sorted(done, key=lambda t: (sign * t["values"][0], t["number"]))[:5]
        lines.append("Best trials:" if ranked else "Best trials: none completed")
    for t in ranked:
        values = ", ".join(_fmt(v) for v in t["values"])
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items())
        lines.append(f"  #{t['number']:<4} {t['name']}: {values}   {params}")
    if results.get("best_trial") is not None:
        lines.append("  " + spread_line(results["best_trial"], results.get("best_seed_spread")))
    lines.append("")
    imp = results["importances"]
    lines.append("Parameter importances:")
    if imp.get("note"):
        lines.append(f"  ({imp['note']})")
    for metric, values in imp.items():
        if metric == "note" or not values:
            continue
        lines.append(f"  {metric}:")
        lines += [f"    {k:<24} {v:6.1%}" for k, v in values.items()]
    p = results["pruning"]
    lines += [
        "",
        f"Pruning: {p['pruned_trials']} trial(s) pruned; {p['spent_timesteps']:,} of "
        f"{p['budget_timesteps']:,} budgeted timesteps trained: {p['saved_share']:.1%} of "
        "the compute saved",
    ]
    failed = [t for t in results["trials"] if t["state"] == "FAIL"]
    for t in failed:
        lines.append(f"  failed #{t['number']}: {t['user_attrs'].get('error', 'no message')}")
    if significance is not None:
        lines += ["", "Significance (best vs default, fresh seeds, validation):"]
        lines.append("  " + str(significance.get("sentence") or json.dumps(significance)))
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plot_pngs(
    study: optuna.Study, spec: HPOStudySpec, importances: dict[str, Any]
) -> tuple[dict[str, bytes], list[str]]:
    """PNG plots by file name, and notes on plots that could not be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as ovm
    except ImportError:
        return {}, ["plots skipped: matplotlib is not installed"]
    pngs: dict[str, bytes] = {}
    notes: list[str] = []
    metrics = [o.metric for o in spec.objectives]
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return {}, ["plots skipped: no completed trial"]
    # rc_context: optuna's plots switch to the ggplot style; keep that from leaking out.
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's ExperimentalWarning
        if len(metrics) == 1:  # with no target, the best-value line is drawn too
            ax = ovm.plot_optimization_history(study, target_name=metrics[0])
        else:
            ax = ovm.plot_optimization_history(study, target=_target(0), target_name=metrics[0])
        pngs["optimization_history.png"] = _png(ax.get_figure())
        if len(metrics) in (2, 3):
            ax = ovm.plot_pareto_front(study, target_names=metrics)
            pngs["pareto_front.png"] = _png(ax.get_figure())
        elif len(metrics) > 3:
            notes.append("pareto_front.png skipped: more than 3 objectives")
        drawn = {m: v for m, v in importances.items() if m != "note" and v}
        if drawn:
            fig, axes = plt.subplots(1, len(drawn), figsize=(5.5 * len(drawn), 3.5), squeeze=False)
            for axis, (metric, values) in zip(axes[0], drawn.items(), strict=True):
                names = list(values)[::-1]
                axis.barh(names, [values[n] for n in names], color="#1f77b4")
                axis.set_xlabel("importance (share)")
                axis.set_title(f"Hyperparameter importance: {metric}")
            pngs["param_importances.png"] = _png(fig)
        else:
            notes.append("param_importances.png skipped: " + str(importances.get("note", "none")))
    return pngs, notes


def write_report(
    study: optuna.Study,
    spec: HPOStudySpec,
    out: str,
    study_name: str,
    *,
    significance: dict[str, Any] | None = None,
    overfitting: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write every output under ``out``; returns their URIs by file name. ``overfitting``:
    :func:`stevie_trainer.hpo.luck.overfitting_document`, also written as overfitting.json."""
    results = results_document(study, spec, study_name)
    pngs, notes = plot_pngs(study, spec, results["importances"])
    results["plot_notes"] = notes
    if significance is not None:
        results["significance"] = significance
    if overfitting is not None:
        results["overfitting"] = overfitting
    uris: dict[str, str] = {}

    def put_text(name: str, text: str) -> None:
        uris[name] = storage.join(out, name)
        storage.write_text(uris[name], text)

    put_text("optimization_results.json", json.dumps(results, indent=2, allow_nan=False) + "\n")
    best = best_hyperparameters(study, spec, study_name)
    put_text("best_hyperparameters.json", json.dumps(best, indent=2, allow_nan=False) + "\n")
    text = report_text(results, significance)
    if overfitting is not None:
        from stevie_trainer.hpo.luck import OVERFITTING_FILE, overfitting_text

        text += "\n" + "\n".join(overfitting_text(overfitting)) + "\n"
        put_text(OVERFITTING_FILE, json.dumps(overfitting, indent=2, allow_nan=False) + "\n")
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    put_text("optimization_report.txt", text)
    for name, data in pngs.items():
        uris[name] = storage.join(out, name)
        storage.write_bytes(uris[name], data)
    return uris
