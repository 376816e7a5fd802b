"""The ``stevie`` command: one CLI with subcommands.

Heavy imports happen inside each subcommand, so ``stevie crds`` works in the operator image
(no torch) and every subcommand starts fast. User errors (bad YAML, bad data, missing files)
print one line ``stevie: error: ...`` and exit 1, never a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stevie_api.market import DataSpec, EnvSpec, ExpertSpec

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def cmd_crds(args: argparse.Namespace) -> int:
    from stevie_api.crd import write_crds

    for path in write_crds(Path(args.out)):
        print(path)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from stevie_api.loader import load_resources

    for file in args.files:
        for res in load_resources(Path(file)):
            print(f"{file}: {res.kind}/{res.metadata.name}: valid")
    return 0


def _specs_from_args(
    args: argparse.Namespace,
) -> tuple[DataSpec, EnvSpec, ExpertSpec, str | None]:
    """DataSpec, EnvSpec, ExpertSpec and a name, from ``-f FILE`` and/or flags."""
    from pydantic import ValidationError

    from stevie_api.loader import SpecError, load_resources, problems
    from stevie_api.market import DataSpec, EnvSpec, ExpertSpec
    from stevie_api.training import TrainingRunSpec

    name: str | None = None
    if args.file:
        template: TrainingRunSpec | None = None
        for res in load_resources(Path(args.file)):
            spec = getattr(res.spec, "template", res.spec)
            if isinstance(spec, TrainingRunSpec):
                template, name = spec, res.metadata.name
                break
        if template is None:
            raise SpecError(
                [f"{args.file}: no TrainingRun (or template) to take data and env from"]
            )
        data, env, expert = template.data, template.env, template.expert
        if args.data:
            data = data.model_copy(update={"uri": args.data})
    elif args.data:
        data, env, expert = DataSpec(uri=args.data), EnvSpec(), ExpertSpec()
    else:
        raise SpecError(["give the data: --data URI, or -f FILE.yaml with a TrainingRun"])
    flags = {"feeBps": args.fee_bps, "slippageBps": args.slippage_bps}
    updates = {key: value for key, value in flags.items() if value is not None}
    if updates:
        try:
            env = EnvSpec.model_validate(env.model_dump(by_alias=True) | updates)
        except ValidationError as err:
            prefix = "--fee-bps/--slippage-bps: spec.env."
            raise SpecError(problems(err, EnvSpec, prefix=prefix)) from None
    return data, env, expert, name


def cmd_backtest(args: argparse.Namespace) -> int:
    from stevie_trainer.evaluation.backtest import run_backtest, write_report

    data, env, expert, name = _specs_from_args(args)
    report = run_backtest(
        data,
        env,
        expert,
        policy=args.policy,
        split=args.split,
        seed=args.seed,
        name=name,
    )
    out = args.out or str(Path("runs") / "backtest" / f"{report.name}-{args.policy}-{args.split}")
    written = write_report(report, out)  # before printing: a bad --out fails with no table
    print(report.table())
    check = report.checks["buy_and_hold"]
    print(
        f"buy-and-hold check: {check['buy_and_hold_return']:+.4%} vs expected "
        f"{check['expected_return_with_costs']:+.4%} (close-to-close "
        f"{check['close_to_close_return']:+.4%}, costs {check['cost_rate']:.2%})"
    )
    for kind, uri in written.items():
        print(f"{kind}: {uri}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from stevie_operator.local.runner import run_file
    from stevie_operator.registry import KINDS

    return run_file(Path(args.file), Path(args.data_dir), KINDS)


def cmd_serve(args: argparse.Namespace) -> int:
    """The decision service of an Ensemble that ``stevie run`` finished (the trainer's
    ``ensemble-serve``, as the cluster's pods run it)."""
    from stevie_api.ensemble import Ensemble
    from stevie_api.loader import load_resources
    from stevie_operator.framework.config import OperatorConfig
    from stevie_operator.kinds.ensemble.children import ensemble_dir
    from stevie_operator.kinds.ensemble.controller import finished_version
    from stevie_trainer.__main__ import main as trainer_main
    from stevie_trainer.common import storage

    found = [r for r in load_resources(Path(args.file)) if isinstance(r, Ensemble)]
    if args.name:
        found = [r for r in found if r.metadata.name == args.name]
    if len(found) != 1:
        names = ", ".join(r.metadata.name for r in found) or "none"
        raise ValueError(f"{args.file}: name one Ensemble with --name (found: {names})")
    ens = found[0]
    namespace = ens.metadata.namespace or "default"
    config = OperatorConfig(storage_uri=Path(args.data_dir).resolve().as_uri(), local=True)
    folder = finished_version(ens, namespace, config)
    logs = storage.join(ensemble_dir(ens, namespace, config), "decisions", folder.rsplit("/", 1)[1])
    argv = ["ensemble-serve", "--ensemble", storage.join(folder, "ensemble.json")]
    argv += ["--host", args.host, "--port", str(args.port), "--log-uri", logs]
    print(f"Ensemble/{ens.metadata.name}: serving {folder} on http://{args.host}:{args.port}")
    return trainer_main(argv)


def cmd_plan(args: argparse.Namespace) -> int:
    """The objects the operator would create first for each resource in the file, as it
    builds them (:mod:`stevie_operator.preview`): YAML documents, or a JSON v1 List."""
    import json
    import textwrap

    import yaml

    from stevie_api.loader import load_resources
    from stevie_operator.framework.config import OperatorConfig
    from stevie_operator.preview import PLACEHOLDER_UID, preview

    found = preview(load_resources(Path(args.file)), OperatorConfig.from_env(), args.namespace)
    if args.output == "json":
        for p in found:
            for note in p.notes:
                print(f"{p.resource}: {note}", file=sys.stderr)
        items = [o for p in found for o in p.objects]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return 0
    header = (
        f"stevie plan {args.file}: what the operator creates first for each resource, as it "
        "builds them (operator settings from STEVIE_* in this environment). The "
        f"ownerReferences' uid {PLACEHOLDER_UID} is a placeholder: the API server assigns "
        "the resource's own."
    )
    print(textwrap.indent(textwrap.fill(header, 98), "# "))
    for p in found:
        print(f"# {p.resource} in namespace {p.namespace}: {len(p.objects)} object(s)")
        for note in p.notes:
            print(textwrap.indent(textwrap.fill(note, 94), "#   "))
        for obj in p.objects:
            print("---")
            print(yaml.safe_dump(obj, sort_keys=False, width=100), end="")
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from stevie_operator.app import main as operator_main

    return operator_main(args.kopf_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stevie",
        description="RL super-training of trading agents: TrainingRun, HPOStudy, "
        "PBTPopulation and Ensemble, on Kubernetes or locally.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("backtest", help="backtest a baseline policy on market data")
    p.add_argument("-f", "--file", help="YAML with a TrainingRun (its data/env/expert are used)")
    p.add_argument("--data", help="OHLCV CSV/Parquet: path, file://, s3:// or pkg:// URI")
    p.add_argument("--policy", default="expert", choices=["expert", "buy-and-hold", "random"])
    p.add_argument("--split", default="test", choices=["train", "validation", "test", "all"])
    p.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    p.add_argument("--fee-bps", type=float, help="override the fee (basis points per trade)")
    p.add_argument("--slippage-bps", type=float, help="override slippage (basis points)")
    p.add_argument("--out", help="output folder or URI (default runs/backtest/NAME-POLICY-SPLIT)")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("run", help="run a resource YAML locally, with no cluster")
    p.add_argument("file", help="YAML with the resource(s) to run")
    p.add_argument(
        "--data-dir", default="runs", help="artifact root (default: ./runs); reruns resume"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "serve", help="serve the decisions of an Ensemble that `stevie run` finished"
    )
    p.add_argument("file", help="YAML with the Ensemble (and its members)")
    p.add_argument("--name", help="which Ensemble, when the file has several")
    p.add_argument("--data-dir", default="runs", help="artifact root of `stevie run` (./runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (8080)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "operator",
        help="run the operator (kopf run -m stevie_operator.app; default --standalone -A)",
    )
    p.add_argument("kopf_args", nargs="*", help="options passed to kopf run, as given")
    p.set_defaults(func=cmd_operator)

    p = sub.add_parser(
        "plan", help="print the objects the operator would create for the resources in a file"
    )
    p.add_argument("file", help="YAML with the resource(s)")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml", help="(yaml)")
    p.add_argument("-n", "--namespace", help="namespace of resources that name none (default)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("validate", help="validate resource YAML files against the models")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("crds", help="generate the CustomResourceDefinitions from the models")
    p.add_argument("--out", default="crds", help="output folder (default: crds)")
    p.set_defaults(func=cmd_crds)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; everything after ``operator`` goes to kopf untouched (argparse's
    REMAINDER refuses a remainder that starts with an option such as ``--standalone``)."""
    command = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if command is not None and argv[command] == "operator":
        args = parser.parse_args([*argv[: command + 1]])
        args.kopf_args = list(argv[command + 1 :])
        return args
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, sys.argv[1:] if argv is None else list(argv))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print(
            "stevie: interrupted; checkpoints are kept: run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours. Python docs' recipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if args.debug:
            raise
        from stevie_trainer.common.errors import user_error_lines

        for line in user_error_lines(exc, prog="stevie"):
            print(line, file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
