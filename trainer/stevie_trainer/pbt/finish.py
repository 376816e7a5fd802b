"""The end of a PBT population: ``python -m stevie_trainer pbt-finish``.

Reads the population state the controller kept (``population.json``) and every interval's
result.json, then writes under the population's folder::

    pbt_summary.json   best member (its hyperparameter schedule, validation and TEST metrics
                       beside buy-and-hold, the expert and random), fitness history per member,
                       every interval's result, the overhead account, and ``overfitting``:
                       the Deflated Sharpe Ratio of the best (member, interval) among every
                       evaluation tried (:mod:`stevie_trainer.pbt.luck`; logged too)
    lineage.json       every exploit: who copied whom, when, with which hyperparameters
    fitness.png, hyperparameters.png, lineage.png
    best/model.zip, best/equity.png

The best member is chosen on VALIDATION fitness only; the test split is touched once, here,
by that one model (and the baselines), as in a TrainingRun. With several markets
(``template.data.markets``) the best member's ``test`` is pooled over the markets and
``test_markets`` holds each market's report (plots ``best/equity-<k>.png``), as a
multi-market TrainingRun reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stevie_api.pbt import PBTPopulationSpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.pbt.luck import overfitting_section, overfitting_text
from stevie_trainer.pbt.member import MODEL_NAME, interval_spec
from stevie_trainer.pbt.plots import fitness_png, lineage_png, schedules_png
from stevie_trainer.pbt.state import Population, summary
from stevie_trainer.rl.agent import load_model

__all__ = ["SUMMARY_NAME", "finish_population", "interval_results", "overhead"]

SUMMARY_NAME = "pbt_summary.json"


def interval_results(population: Population) -> list[dict[str, Any]]:
    """result.json of every completed interval, in (member, interval) order."""
    found = []
    for m in population.members:
        for i, folder in enumerate(m.checkpoint_history):
            if folder is None:
                continue
            doc = RunStore(folder).read_json("result.json")
            if doc is not None:
                found.append(doc | {"member": m.index, "interval": i})
    return found


def overhead(results: list[dict[str, Any]], child_seconds: dict[str, float]) -> dict[str, Any]:
    """Where member wall time went. ``child_seconds``: wall time of each interval's process or
    Job as the controller saw it (launch to exit), by child name; the training share is the
    SB3 ``learn`` time the intervals reported themselves."""
    train = sum(float(r["timings"]["train_seconds"]) for r in results)
    inside = {
        key: round(sum(float(r["timings"].get(key, 0.0)) for r in results), 2)
        for key in ("setup_seconds", "train_seconds", "eval_seconds", "save_seconds")
    }
    wall = sum(child_seconds.values())
    account: dict[str, Any] = {"intervals": len(results), "inside_intervals": inside}
    if wall > 0:
        account |= {
            "member_wall_seconds": round(wall, 2),
            "training_seconds": round(train, 2),
            "outside_training_share": round(1.0 - train / wall, 4),
        }
    return account


def finish_population(
    spec: PBTPopulationSpec,
    population: Population,
    out: str,
    *,
    child_seconds: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write the population's outputs under ``out``; returns pbt_summary.json's content."""
    say = log or (lambda message: print(message, flush=True))
    store = RunStore(out)
    doc = summary(population)
    results = interval_results(population)
    lineage = [e.to_dict() for e in population.events]
    store.write_json("lineage.json", {"name": population.name, "exploits": lineage})
    title = f"PBT {population.name}"
    p = spec.perturbation_interval
    plots = {
        "fitness": store.write_bytes(
            "fitness.png", fitness_png(population, p, title=f"{title}: validation fitness")
        ),
        "hyperparameters": store.write_bytes(
            "hyperparameters.png",
            schedules_png(
                population, spec.hyperparam_mutations, p, title=f"{title}: hyperparameters"
            ),
        ),
    }
    best = doc["best"]
    where = (best["member"], best["interval"]) if best else None
    plots["lineage"] = store.write_bytes(
        "lineage.png", lineage_png(population, where, title=f"{title}: lineage")
    )
    luck = overfitting_section(population, results, best, spec.fitness)
    if best is not None:
        best |= _test_best(spec, best, out, say)
    say("\n".join(overfitting_text(luck)))
    doc |= {
        "finished_at": iso_now(),
        "perturbation_interval": p,
        "fitness_weights": spec.fitness.as_dict(),
        "intervals": [_interval_row(r) for r in results],
        "lineage": lineage,
        "overhead": overhead(results, child_seconds or {}),
        "overfitting": luck,
        "plots": plots,
    }
    store.write_json(SUMMARY_NAME, doc)
    return doc


def _interval_row(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("member", "interval", "fitness", "hyperparameters", "init_checkpoint", "timesteps")
    row = {k: result.get(k) for k in keys}
    row["validation"] = result.get("validation")
    row["timings"] = result.get("timings")
    return row


def _test_best(
    spec: PBTPopulationSpec, best: dict[str, Any], out: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """The best checkpoint on the test split beside the baselines; its model under best/."""
    from stevie_trainer.env.prepare import prepare
    from stevie_trainer.rl.train import (
        result_table,
        spec_json,
        test_backtest,
        test_markets,
        versions,
    )

    member, interval = int(best["member"]), int(best["interval"])
    run_spec = interval_spec(spec, member, interval, best["hyperparameters"])
    data = storage.read_bytes(storage.join(best["checkpoint"], MODEL_NAME))
    best_store = RunStore(storage.join(out, "best"))
    model_uri = best_store.write_bytes(MODEL_NAME, data)
    prepared = prepare(run_spec)
    model = load_model(run_spec, data)
    markets: dict[str, Any] = {}
    if prepared.parts:  # several markets: each market's report, and the pooled one
        test, markets = test_markets(prepared, model, best_store, "best member")
    else:
        test = test_backtest(prepared, model, best_store, name="best member")
    validation = RunStore(best["checkpoint"]).read_json("result.json") or {}
    per_market = {"validation_markets": validation.get("validation_markets")} if markets else {}
    # best/ is a complete model folder (model.zip, spec.json, result.json), like a
    # TrainingRun's: what an Ensemble member reads.
    best_store.write_json("spec.json", spec_json(run_spec))
    best_store.write_json(
        "result.json",
        {
            "status": "succeeded",
            "source": f"PBT member {member} after interval {interval + 1}",
            "validation": validation.get("validation"),
            **per_market,
            "timesteps": validation.get("timesteps"),
        },
    )
    table = result_table(
        {
            **test,
            "validation": validation.get("validation"),
            "best_timesteps": validation.get("timesteps"),
        }
    )
    say(f"best member {member} after interval {interval + 1} (fitness {best['fitness']:.4f})")
    say(table)
    return {
        "validation": validation.get("validation"),
        "timesteps": validation.get("timesteps"),
        "model": model_uri,
        "versions": versions(),
        "table": table,
        **test,
        **(per_market | {"test_markets": markets} if markets else {}),
    }
