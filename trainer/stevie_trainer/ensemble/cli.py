"""Trainer command of an Ensemble (what its backtest Job runs)::

    python -m stevie_trainer ensemble-backtest --ensemble-spec F \
        --members-json '[{"name": "ppo", "source": "TrainingRun", "uri": "s3://.../ppo"}]' \
        --out URI

``--ensemble-spec`` is an Ensemble resource (or its spec) as JSON or YAML, a path or URI.
``--members-json`` lists each member's reference as the operator resolved it from the
members' statuses (a JSON list, or a path/URI of a file holding one): one entry per spec
member, named as the spec names it (its ``name``, else the referenced resource's name, else
``member-<index>`` for a uri). The spec's member order is kept: the first member's costs and
rules are every run's (not its no-trade band and minimum hold: the ensemble has its own, each
member alone keeps its own). Running it again with the same inputs returns the finished
report.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stevie_api.ensemble import EnsembleSpec
    from stevie_trainer.ensemble.members import MemberRef

__all__ = ["ERROR_NAME", "add_commands", "member_refs", "parse_members"]

ERROR_NAME = "error.json"
"""Written under --out when a member cannot be used: {"member", "problem"}."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ensemble-backtest``."""
    p = sub.add_parser(
        "ensemble-backtest",
        help="backtest an ensemble against its members, every voting method and the baselines",
    )
    p.add_argument("--ensemble-spec", required=True, help="Ensemble (or spec) file/URI")
    p.add_argument(
        "--members-json",
        required=True,
        help='members as JSON: [{"name", "source", "uri", "weight"?}, ...] (or a file/URI)',
    )
    p.add_argument("--out", required=True, help="the backtest's folder or URI")
    p.set_defaults(func=_backtest)


def parse_members(text: str) -> list[MemberRef]:
    """MemberRefs from ``--members-json``: a JSON list, or a path/URI of a file holding one."""
    from stevie_trainer.common import storage
    from stevie_trainer.ensemble.members import MemberRef

    source = "--members-json"
    if not text.lstrip().startswith("["):
        source = text
        text = storage.read_text(text)
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source} is not valid JSON: {err}") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f'{source} must be a JSON list of {{"name", "source", "uri"}} objects')
    refs = []
    for k, doc in enumerate(value):
        missing = [key for key in ("name", "source", "uri") if not doc.get(key)]
        if missing:
            raise ValueError(f"{source}: member {k} has no {', '.join(missing)}")
        refs.append(MemberRef.from_dict(doc))
    return refs


def member_refs(spec: EnsembleSpec, refs: Sequence[MemberRef]) -> list[MemberRef]:
    """``refs`` in the spec's member order, each the spec's member (same source), with the
    spec's fixed weight unless the reference sets one."""
    names = spec.member_names
    by_name = {r.name: r for r in refs}
    if len(by_name) != len(refs):
        raise ValueError("--members-json names a member twice")
    missing = [n for n in names if n not in by_name]
    extra = [r.name for r in refs if r.name not in names]
    if missing or extra:
        parts = [f"missing {', '.join(missing)}" if missing else ""]
        parts.append(f"not in the spec: {', '.join(extra)}" if extra else "")
        raise ValueError(
            "--members-json does not match the spec's members ("
            + "; ".join(p for p in parts if p)
            + f"); the spec's members are {', '.join(names)}"
        )
    out = []
    for name, member in zip(names, spec.members, strict=True):
        ref = by_name[name]
        if ref.source != member.source_kind:
            raise ValueError(
                f"member {name!r}: --members-json says source {ref.source}, "
                f"the spec {member.source_kind}"
            )
        weight = ref.weight if ref.weight is not None else member.weight
        out.append(type(ref)(name=name, source=ref.source, uri=ref.uri, weight=weight))
    return out


def _backtest(args: argparse.Namespace) -> int:
    from stevie_api.ensemble import EnsembleSpec
    from stevie_trainer.common import storage
    from stevie_trainer.common.specfile import load_spec_text
    from stevie_trainer.ensemble.members import MemberError
    from stevie_trainer.ensemble.report import ensemble_backtest

    text = storage.read_text(args.ensemble_spec)
    spec, name = load_spec_text(text, args.ensemble_spec, EnsembleSpec)
    refs = member_refs(spec, parse_members(args.members_json))
    try:
        ensemble_backtest(spec, refs, args.out, name=name)
    except MemberError as err:
        # The operator reads this to name the member in the Ensemble's status (Degraded).
        doc = {"member": err.member, "problem": err.problem}
        storage.write_text(storage.join(args.out, ERROR_NAME), json.dumps(doc) + "\n")
        raise
    if storage.exists(storage.join(args.out, ERROR_NAME)):
        storage.delete(storage.join(args.out, ERROR_NAME))  # fixed since: not a problem now
    return 0
