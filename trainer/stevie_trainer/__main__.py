"""``python -m stevie_trainer train --spec spec.json --out URI``: what a trainer pod runs.

Exit 0 when the run is complete (result.json written), 1 on bad input or a failed run, with
one ``stevie-trainer: error: ...`` line per problem on stderr (never a traceback unless
``--debug``). Running it again with the same ``--out`` resumes from the latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from stevie_api.loader import problems
from stevie_api.training import TrainingRunSpec


def parse_spec(args: argparse.Namespace) -> TrainingRunSpec:
    from stevie_trainer import storage

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
    args = parser.parse_args(argv)
    try:
        spec = parse_spec(args)
        from stevie_trainer.train import train

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
        from stevie_trainer.errors import user_error_lines

        for line in user_error_lines(exc, prog="stevie-trainer"):
            print(line, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
