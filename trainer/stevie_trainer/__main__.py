"""``python -m stevie_trainer train --spec spec.json --out URI``: what a trainer pod runs.

HPO (issue 5): ``trial --study-spec FILE --storage URL_OR_PATH --trial-number N --out URI``
runs one asked trial of a study; ``significance`` re-trains the best and the default
configuration; ``hpo-report`` writes the study's outputs; ``hpo-finish`` does both, resumably
(the operator's finish Job). ``--storage`` defaults to the
environment variable STEVIE_HPO_STORAGE (an RDB URL from a Secret stays out of the args).

Exit 0 when the run is complete (result.json written), 1 on bad input or a failed run, with
one ``stevie-trainer: error: ...`` line per problem on stderr (never a traceback unless
``--debug``). Running it again with the same ``--out`` resumes from the latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from stevie_api.loader import problems
from stevie_api.training import TrainingRunSpec
from stevie_trainer.pbt.cli import COMMANDS as PBT_COMMANDS
from stevie_trainer.pbt.cli import add_pbt_commands, run_pbt_command


def parse_spec(args: argparse.Namespace) -> TrainingRunSpec:
    from stevie_trainer.common import storage

    text = args.spec_json if args.spec_json is not None else storage.read_text(args.spec)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"spec is not valid JSON: {err}") from None
    if isinstance(doc, dict) and "spec" in doc and "kind" in doc:
        doc = doc["spec"]  # a whole TrainingRun resource is fine too
    try:
        return TrainingRunSpec.model_validate(doc, by_alias=True, by_name=False)
    except ValidationError as err:
        raise ValueError("\n".join(problems(err, TrainingRunSpec, prefix="spec."))) from None


def add_hpo_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    helps = {
        "trial": "run (or resume) one asked trial of an HPO study",
        "significance": "re-train the best and the default configuration over several seeds",
        "hpo-report": "write optimization_results.json, the report and plots of a study",
        "hpo-finish": "significance (if enabled), then the report: a finished study's last step",
    }
    for command, text in helps.items():
        p = sub.add_parser(command, help=text)
        p.add_argument("--study-spec", required=True, help="HPOStudy (or its spec) JSON/YAML")
        p.add_argument("--study-name", help="study name (default: the resource's name)")
        p.add_argument(
            "--storage",
            default=os.environ.get("STEVIE_HPO_STORAGE"),
            help="Optuna storage: JournalStorage file path, or an RDB URL "
            "(default: $STEVIE_HPO_STORAGE)",
        )
        p.add_argument("--out", required=True, help="output folder or URI")
        if command == "trial":
            p.add_argument("--trial-number", type=int, required=True, help="trial number")
        if command == "hpo-report":
            p.add_argument("--significance", help="significance.json to include")


def run_hpo_command(args: argparse.Namespace) -> int:
    from stevie_trainer.common import storage
    from stevie_trainer.hpo.study import load_study_spec, open_study

    spec, name = load_study_spec(storage.read_text(args.study_spec), args.study_spec)
    study_name = args.study_name or name
    if not study_name:
        raise ValueError("--study-name is needed when --study-spec is a bare spec")
    if not args.storage:
        raise ValueError("--storage (or $STEVIE_HPO_STORAGE) is needed")
    if args.command == "trial":
        from stevie_trainer.hpo.trial import run_trial

        trial = run_trial(spec, study_name, args.storage, args.trial_number, args.out)
        print(json.dumps({"event": "trial", "number": trial.number, "state": trial.state.name}))
        return 0 if trial.state.name in ("COMPLETE", "PRUNED") else 1
    if args.command == "hpo-finish":
        from stevie_trainer.hpo.finish import finish_study

        finish_study(spec, study_name, args.storage, args.out, log=lambda m: print(m, flush=True))
        return 0
    study = open_study(spec, study_name, args.storage, create=False)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stevie_trainer")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train (or resume) one TrainingRun")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--spec", help="TrainingRun spec JSON file or URI")
    src.add_argument("--spec-json", help="TrainingRun spec as a JSON string")
    p.add_argument("--out", required=True, help="artifact folder or URI of this run")
    p.add_argument("--name", help="name shown in reports (default: the data's)")
    add_hpo_commands(sub)
    add_pbt_commands(sub)
    args = parser.parse_args(argv)
    try:
        if args.command in PBT_COMMANDS:
            return run_pbt_command(args)
        if args.command != "train":
            return run_hpo_command(args)
        spec = parse_spec(args)
        from stevie_trainer.rl.train import train

        train(spec, args.out, name=args.name)
        return 0
    except KeyboardInterrupt:
        print(
            "stevie-trainer: interrupted (run again with the same --out to resume)", file=sys.stderr
        )
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from stevie_trainer.common.errors import user_error_lines

        for line in user_error_lines(exc, prog="stevie-trainer"):
            print(line, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
