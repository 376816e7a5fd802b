"""Stevie's Grafana dashboards as code: Operator, Training, PBT, HPO and Ensemble.

``python -m stevie_operator.monitoring.dashboards --out charts/stevie/dashboards`` writes one
``<board>.json`` per board (sorted keys, trailing newline); the files are committed and the
chart ships them as ConfigMaps. A test regenerates them and fails on drift, as for the CRDs.

The label model the queries rely on: operator series carry the resource's ``namespace``
and ``name`` as metric labels (scraped with honorLabels); trainer and decision-service
series carry the pod's ``namespace`` and ``pod`` and the ``stevie_kind``, ``stevie_name``,
``stevie_role`` target labels from the PodMonitor. So the resource variable ``$name``
matches ``name`` on operator series and ``stevie_name`` on pod series. Every board has
``$datasource``, ``$namespace`` and a resource variable; rates use ``$__rate_interval``.

Dev-time only (grafana-foundation-sdk is a ``dev`` extra); the JSON is what ships.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from stevie_operator.monitoring.boards import ensemble, hpo, operator_board, pbt, training

__all__ = ["BOARDS", "encode", "main", "write"]

BOARDS: dict[str, Callable[[], Dashboard]] = {
    "operator": operator_board.build,
    "training": training.build,
    "pbt": pbt.build,
    "hpo": hpo.build,
    "ensemble": ensemble.build,
}
"""Board file stem -> builder, in the order a reader meets them."""


def encode(board: Dashboard) -> str:
    """The board's JSON as committed: sorted keys, two-space indent, trailing newline."""
    return JSONEncoder(sort_keys=True, indent=2).encode(board.build()) + "\n"


def write(out: Path) -> list[Path]:
    """Write every board to ``out/<board>.json``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in BOARDS.items():
        path = out / f"{name}.json"
        path.write_text(encode(build()), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write Stevie's Grafana dashboards as JSON.")
    parser.add_argument("--out", type=Path, required=True, help="folder for <board>.json")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
