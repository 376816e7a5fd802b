"""``python -m stevie_trainer train --spec spec.json --out URI``: what a TrainingRun's pod runs.

Running it again with the same ``--out`` resumes from the latest checkpoint; a finished run
says so and exits 0 at once.
"""

from __future__ import annotations

import argparse
import json

from pydantic import ValidationError

from stevie_api.training import TrainingRunSpec

__all__ = ["add_commands", "parse_spec"]


def parse_spec(args: argparse.Namespace) -> TrainingRunSpec:
    """The TrainingRun spec of ``--spec`` (a file or URI) or ``--spec-json``."""
    from stevie_trainer.common import storage

    text = args.spec_json if args.spec_json is not None else storage.read_text(args.spec)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        from stevie_api.loader import SpecError

        raise SpecError([f"spec is not valid JSON: {err}"]) from None
    if isinstance(doc, dict) and "spec" in doc and "kind" in doc:
        doc = doc["spec"]  # a whole TrainingRun resource is fine too
    try:
        return TrainingRunSpec.model_validate(doc, by_alias=True, by_name=False)
    except ValidationError as err:
        # The loader knows every kind (it imports them all): only a bad spec needs it.
        from stevie_api.loader import SpecError, problems

        raise SpecError(problems(err, TrainingRunSpec, prefix="spec.")) from None


def _train(args: argparse.Namespace) -> int:
    spec = parse_spec(args)
    from stevie_trainer.common import termination
    from stevie_trainer.rl.train import train

    result = train(spec, args.out, name=args.name)
    # In a pod, the status's metrics also go where the API server keeps them (the operator
    # reads them when it cannot read result.json); elsewhere, nothing is written.
    termination.write(termination.training_summary(result))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train``."""
    p = sub.add_parser("train", help="train (or resume) one TrainingRun")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--spec", help="TrainingRun spec JSON file or URI")
    src.add_argument("--spec-json", help="TrainingRun spec as a JSON string")
    p.add_argument("--out", required=True, help="artifact folder or URI of this run")
    p.add_argument("--name", help="name shown in reports (default: the data's)")
    p.set_defaults(func=_train)
