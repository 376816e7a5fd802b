"""``python -m stevie_trainer hpo-finish``: what a study does once every trial is finished.

The study's finish Job runs it, on a cluster and in ``stevie run`` alike:

1. if spec.significance.enabled: the best configuration against the default one over fresh
   seeds, under ``<out>/significance/`` (``significance.json`` there);
2. how much is luck: the best trial's Deflated Sharpe Ratio and the study's PBO from the
   trials' stored validation returns (pooled over the folds for walk-forward), and the
   spread of the best trial's per-seed validation Sharpes (:mod:`stevie_trainer.hpo.luck`);
3. the report in ``<out>``: optimization_results.json, best_hyperparameters.json,
   optimization_report.txt, overfitting.json and the plots.

Resumable and idempotent, since a pod may be retried and the operator may run it again
after a study resumed with a larger maxTrials: ``significance.json`` is reused when it was
computed for the same best parameters, seeds and confidence (and :func:`run_significance`
itself reuses finished seeds); when the best trial changed, the previous best configuration's
seeds are deleted first (a seed folder refuses another configuration). The report is cheap
and always rewritten. Torch is imported only when significance has to train.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore

__all__ = ["PARAMS_FILE", "SIGNIFICANCE_DIR", "finish_study", "significance_for"]

SIGNIFICANCE_DIR = "significance"
PARAMS_FILE = "best_params.json"  # the configuration significance/best/ was trained with


def _matches(done: dict[str, Any], params: dict[str, Any], spec: HPOStudySpec) -> bool:
    best = done.get("best")
    return (
        done.get("best_params") == params
        and isinstance(best, list)
        and len(best) == spec.significance.seeds
        and done.get("confidence") == spec.significance.confidence
    )


def significance_for(
    spec: HPOStudySpec, params: dict[str, Any], out: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """significance.json under ``out`` for the best ``params``: reused, or (re)computed."""
    store = RunStore(out)
    done = store.read_json("significance.json")
    if done is not None and _matches(done, params, spec):
        log(f"significance: reusing {store.uri('significance.json')}: {done.get('sentence')}")
        return done
    previous = store.read_json(PARAMS_FILE)
    if previous is not None and previous != params:
        stale = storage.list_uris(store.uri("best"))
        log(f"significance: the best trial changed; deleting {len(stale)} stale files")
        for uri in stale:
            storage.delete(uri)
    store.write_json(PARAMS_FILE, params)
    from stevie_trainer.hpo.significance import run_significance

    comparison = run_significance(spec, params, out, log=log)
    return comparison.to_dict() | {"best_params": params}


def finish_study(
    spec: HPOStudySpec,
    study_name: str,
    storage_location: str,
    out: str,
    *,
    log: Callable[[str], None] = print,
    optuna_name: str | None = None,
) -> dict[str, str]:
    """Significance (if enabled), then the report; returns the report's URIs by file name.
    ``optuna_name``: the study's name in the storage when it is not ``study_name`` (which
    names the trials in the report)."""
    from stevie_trainer.hpo.report import write_report
    from stevie_trainer.hpo.study import best_trials, open_study

    study = open_study(spec, optuna_name or study_name, storage_location, create=False)
    ranked = best_trials(study)
    if not ranked:
        raise ValueError(f"study {study_name!r} has no completed trial: nothing to report")
    best = ranked[0]
    log(f"best trial {best.number}: {dict(best.params)}")
    significance = None
    if spec.significance.enabled:
        folder = storage.join(out, SIGNIFICANCE_DIR)
        significance = significance_for(spec, dict(best.params), folder, log)
    from stevie_trainer.hpo.luck import overfitting_document
    from stevie_trainer.hpo.seeds import spread_line

    luck = overfitting_document(study, spec)
    log(spread_line(best.number, luck["seed_spread"]))
    for note in luck["notes"]:
        log(f"overfitting: {note}")
    uris = write_report(study, spec, out, study_name, significance=significance, overfitting=luck)
    log(f"report: {uris['optimization_report.txt']}")
    return uris
