"""The committed board JSON read back (no grafana SDK): panels, their PromQL targets, the
board's variables, and the substitution that turns a target into a query Prometheus runs.

The real-Prometheus e2e test and :mod:`.render` both go through :func:`board_queries` and
:func:`substitute`, so what they run is what Grafana would run with the same variable
values: ``$var``/``${var}`` replaced (a multi-value selection as a regex alternation,
"All" as ``.*``), ``$__rate_interval`` as Grafana computes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BOARDS_DIR",
    "PanelQuery",
    "board_queries",
    "defaults",
    "load_boards",
    "panels",
    "rate_interval",
    "substitute",
]

BOARDS_DIR = Path(__file__).resolve().parents[3] / "charts" / "stevie" / "dashboards"
"""The committed boards, in a source checkout (the chart ships them; the wheel does not)."""

Board = dict[str, Any]
Values = Mapping[str, str | Sequence[str]]
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_REGEX_SPECIALS = re.compile(r"([\\.+*?()|\[\]{}^$])")
ALL = ".*"


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel: where it is (board, panel) and what it asks."""

    board: str
    panel_id: int
    panel: str
    panel_type: str
    ref: str
    expr: str
    legend: str
    instant: bool


def load_boards(folder: Path = BOARDS_DIR) -> dict[str, Board]:
    """Every ``<stem>.json`` board in ``folder``, by stem, in name order."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.json"))
    }


def panels(board: Board) -> Iterator[dict[str, Any]]:
    """The board's panels that query (rows skipped; a collapsed row's panels included)."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def board_queries(board: Board, name: str = "") -> list[PanelQuery]:
    """Every PromQL target of the board, in panel order."""
    return [
        PanelQuery(
            board=name or str(board.get("uid", "")),
            panel_id=int(panel.get("id", 0)),
            panel=str(panel.get("title", "")),
            panel_type=str(panel.get("type", "")),
            ref=str(target.get("refId", "")),
            expr=str(target["expr"]),
            legend=str(target.get("legendFormat", "")),
            instant=bool(target.get("instant", False)),
        )
        for panel in panels(board)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def defaults(board: Board) -> dict[str, str]:
    """Each query variable's "All" value (what a fresh board shows)."""
    return {
        str(v["name"]): str(v.get("allValue") or ALL)
        for v in board.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    }


def rate_interval(step: float, scrape_interval: float = 15.0) -> str:
    """Grafana's ``$__rate_interval``: max(step + scrape interval, 4 x scrape interval)."""
    return f"{round(max(step + scrape_interval, 4 * scrape_interval))}s"


def _regex(value: str | Sequence[str]) -> str:
    """A variable's value as Grafana writes it into a Prometheus regex matcher: one value
    as is, several as an escaped alternation (the backslashes doubled for PromQL's
    double-quoted strings)."""
    if isinstance(value, str):
        return value
    escaped = [_REGEX_SPECIALS.sub(r"\\\\\1", v) for v in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: Values, interval: str) -> str:
    """``expr`` with its variables replaced; ``interval`` is ``$__rate_interval``.
    An unknown variable raises KeyError: a board names only variables it defines."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name == "__rate_interval":
            return interval
        if name not in values:
            raise KeyError(f"variable ${name} has no value in {sorted(values)}")
        return _regex(values[name])

    return _VARIABLE.sub(one, expr)
