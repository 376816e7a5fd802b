"""Trainer commands of an HPO study (what its Jobs or local processes run)::

    python -m stevie_trainer trial --study-spec FILE [--storage URL_OR_PATH] \
        --trial-number N --out URI      # one asked trial (resumes the seeds it finished)
    python -m stevie_trainer significance ...   # re-train best and default configurations
    python -m stevie_trainer hpo-report ...     # optimization_results.json, report, plots
    python -m stevie_trainer hpo-finish ...     # both, resumably: the finish Job

``--storage`` defaults to the environment variable STEVIE_HPO_STORAGE, so an RDB URL from a
Secret stays out of the arguments (they show in ``kubectl describe`` and ``ps``).
``--optuna-study`` is the study's name in that storage when it is not the study's own name:
the operator keys a study in an RDB by the object (``<namespace>.<name>.<uid>``), while
trials and their folders keep the resource's name (``<name>-t3``).
"""

from __future__ import annotations

import argparse
import json
import os

from stevie_trainer.hpo import STORAGE_ENV

__all__ = ["add_commands"]

_HELPS = {
    "trial": "run (or resume) one asked trial of an HPO study",
    "significance": "re-train the best and the default configuration over several seeds",
    "hpo-report": "write optimization_results.json, the report and plots of a study",
    "hpo-finish": "significance (if enabled), then the report: a finished study's last step",
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trial``, ``significance``, ``hpo-report`` and ``hpo-finish``."""
    for command, text in _HELPS.items():
        p = sub.add_parser(command, help=text)
        p.add_argument("--study-spec", required=True, help="HPOStudy (or its spec) JSON/YAML")
        p.add_argument("--study-name", help="study name (default: the resource's name)")
        p.add_argument(
            "--optuna-study",
            help="the study's name in the Optuna storage (default: the study name)",
        )
        p.add_argument(
            "--storage",
            default=os.environ.get(STORAGE_ENV),
            help="Optuna storage: JournalStorage file path, or an RDB URL "
            f"(default: ${STORAGE_ENV})",
        )
        p.add_argument("--out", required=True, help="output folder or URI")
        if command == "trial":
            p.add_argument("--trial-number", type=int, required=True, help="trial number")
        if command == "hpo-report":
            p.add_argument("--significance", help="significance.json to include")
        p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stevie_trainer.common import storage
    from stevie_trainer.hpo.study import load_study_spec, open_study

    spec, name = load_study_spec(storage.read_text(args.study_spec), args.study_spec)
    study_name = args.study_name or name
    if not study_name:
        raise ValueError("--study-name is needed when --study-spec is a bare spec")
    if not args.storage:
        raise ValueError(f"--storage (or ${STORAGE_ENV}) is needed")
    in_storage = args.optuna_study or study_name
    if args.command == "trial":
        from stevie_trainer.hpo.trial import run_trial

        trial = run_trial(
            spec, study_name, args.storage, args.trial_number, args.out, optuna_name=in_storage
        )
        print(json.dumps({"event": "trial", "number": trial.number, "state": trial.state.name}))
        if trial.state.name in ("COMPLETE", "PRUNED"):
            return 0
        from stevie_api import exit_codes

        return exit_codes.TRIAL_FAILED  # recorded as FAIL: a retry would find it failed
    if args.command == "hpo-finish":
        from stevie_trainer.hpo.finish import finish_study

        finish_study(
            spec,
            study_name,
            args.storage,
            args.out,
            log=lambda m: print(m, flush=True),
            optuna_name=in_storage,
        )
        return 0
    study = open_study(spec, in_storage, args.storage, create=False)
    if args.command == "significance":
        from stevie_trainer.hpo.significance import run_significance
        from stevie_trainer.hpo.study import best_trials

        ranked = best_trials(study)
        if not ranked:
            raise ValueError(f"study {study_name!r} has no completed trial to compare")
        run_significance(spec, dict(ranked[0].params), args.out)
        return 0
    from stevie_trainer.hpo.report import write_report

    significance = json.loads(storage.read_text(args.significance)) if args.significance else None
    uris = write_report(study, spec, args.out, study_name, significance=significance)
    print(storage.read_text(uris["optimization_report.txt"]), end="")
    return 0
