"""``python -m stevie_trainer COMMAND ...``: what trainer pods (and ``stevie run``'s local
processes) run. Each subpackage adds its own commands: ``train`` (:mod:`.rl.cli`), ``trial``,
``significance``, ``hpo-report``, ``hpo-finish`` (:mod:`.hpo.cli`), ``pbt-interval`` and
``pbt-finish`` (:mod:`.pbt.cli`), ``ensemble-backtest`` (:mod:`.ensemble.cli`) and
``ensemble-serve`` (:mod:`.serving.cli`).

Exit codes (:mod:`stevie_api.exit_codes`, which the operator's Job podFailurePolicy reads):
0 when the work is complete; 1 a crash or a transient failure (retried); 2 a usage error;
3 bad input (spec, data, storage URI: not retried); 4 a conflicting run under the same
``--out`` (not retried); 130 interrupted. Each error prints one ``stevie-trainer: error:
...`` line per problem on stderr (never a traceback unless ``--debug``). Running a command
again with the same ``--out`` resumes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from stevie_trainer.ensemble import cli as ensemble_cli
from stevie_trainer.hpo import cli as hpo_cli
from stevie_trainer.pbt import cli as pbt_cli
from stevie_trainer.rl import cli as rl_cli
from stevie_trainer.serving import cli as serving_cli

__all__ = ["build_parser", "main", "warm_up"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every trainer command."""
    parser = argparse.ArgumentParser(prog="python -m stevie_trainer")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (rl_cli, hpo_cli, pbt_cli, ensemble_cli, serving_cli):
        commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from stevie_trainer.env.jitcache import seed_cache

    seed_cache()  # the image's compiled kernels, before any command loads one
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.func
    try:
        return run(args)
    except KeyboardInterrupt:
        print(
            "stevie-trainer: interrupted (run again with the same --out to resume)", file=sys.stderr
        )
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from stevie_trainer.common.errors import exit_code, user_error_lines

        for line in user_error_lines(exc, prog="stevie-trainer"):
            print(line, file=sys.stderr)
        return exit_code(exc)


def warm_up(argv: Sequence[str]) -> bool:
    """Prepare this process to fork children that run ``main(argv)``: do once what each would
    do first (a command opts in with a ``warm_up`` default). False when the command has none:
    then a fresh process is as fast as a fork."""
    args = build_parser().parse_args(argv)
    hook: Callable[[argparse.Namespace], None] | None = getattr(args, "warm_up", None)
    if hook is None:
        return False
    hook(args)
    return True


if __name__ == "__main__":
    sys.exit(main())
