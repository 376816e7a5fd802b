"""A board drawn without Grafana: each panel of a dashboard JSON on the board's own grid,
from Prometheus query results, into one PNG (matplotlib).

Time series become lines (one per series, legend below), state timelines lanes filled
while a series is non-zero, stat panels their last values as numbers. The queries are the
panels' own, with the variables substituted as Grafana would (:mod:`.queries`), so the
picture shows what the board shows.

    python -m stevie_operator.monitoring.render --prometheus http://127.0.0.1:9090 \\
        --board charts/stevie/dashboards/pbt.json --out docs/dashboards/pbt.png

(``--board`` and ``--out`` may be folders: every board, one PNG each.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

from stevie_operator.monitoring.queries import (
    Board,
    Values,
    defaults,
    load_boards,
    panels,
    rate_interval,
    substitute,
)

__all__ = [
    "PanelResult",
    "QueryRange",
    "Series",
    "draw",
    "fmt",
    "legend",
    "main",
    "prometheus",
    "render",
]

Series = tuple[dict[str, str], list[tuple[float, float]]]
Span = tuple[float, float]  # start, end (Unix seconds)
QueryRange = Callable[[str, float, float, float], list[Series]]
"""``query_range(expr, start, end, step)``: Prometheus's /api/v1/query_range, as series."""

COLUMN_IN, ROW_IN = 0.8, 0.36  # one grid column / row in inches (Grafana: ~66 x 30 px)
HEADER_IN = 0.6  # the board title above the grid
BG, PANEL_BG, FG, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_LEGEND = 8
TICKS = (
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)  # seconds


@dataclass(frozen=True)
class PanelResult:
    """What one panel showed: its title, type and the number of series drawn."""

    title: str
    panel_type: str
    series: int


def fmt(value: float, unit: str) -> str:
    """A value the way the panel's unit reads (a small subset of Grafana's units)."""
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.1f}%" if abs(value) < 0.1 else f"{value * 100:.0f}%"
    if unit == "s":
        for scale, name in ((3600, "h"), (60, "min"), (1, "s"), (1e-3, "ms")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value * 1e6:.3g} µs" if value else "0 s"
    suffix = {"ops": " ops/s", "reqps": " req/s"}.get(unit, "")
    for scale, name in ((1e9, " G"), (1e6, " M"), (1e3, " K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{name}{suffix}".replace("  ", " ")
    return f"{value:.3g}{suffix}"


def legend(template: str, labels: Mapping[str, str]) -> str:
    """A series' legend: ``{{label}}`` templates filled, else the label set."""
    if template and template != "__auto":
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
    return f"{labels.get('__name__', '')}{{{inner}}}"


def _last(points: Sequence[tuple[float, float]]) -> float:
    finite = [v for _, v in points if not math.isnan(v)]
    return finite[-1] if finite else math.nan


def _style(ax: Axes, title: str) -> None:
    ax.set_facecolor(PANEL_BG)
    ax.set_title(title, loc="left", color=FG, fontsize=9, fontweight="bold")
    ax.tick_params(colors=FG, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(GRID)


def _lines(ax: Axes, panel: dict[str, Any], drawn: list[tuple[str, Series]], span: Span) -> None:
    unit = str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"))
    for name, (_, points) in drawn:
        ax.plot([t for t, _ in points], [v for _, v in points], linewidth=1.2, label=name)
    ax.grid(color=GRID, linewidth=0.5)
    limits = panel.get("fieldConfig", {}).get("defaults", {})
    low, high = ax.get_ylim()  # the panel's min and max bound the axis, as in Grafana
    low, high = limits.get("min", low), limits.get("max", high)
    ax.set_ylim(low, high if high > low else low + 1)
    _time_axis(ax, span)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v, unit)))
    if drawn:
        handles, labels = ax.get_legend_handles_labels()
        extra = len(labels) - MAX_LEGEND
        if extra > 0:
            handles, labels = (
                handles[:MAX_LEGEND],
                [*labels[: MAX_LEGEND - 1], f"+{extra + 1} more"],
            )
        box = ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(0, -0.12),
            ncol=2,
            fontsize=6.5,
            frameon=False,
            labelcolor=FG,
        )
        box.set_in_layout(False)


def _time_axis(ax: Axes, span: Span) -> None:
    """The board's time range (as Grafana shows it, whatever the data covers), epoch
    seconds read as UTC clock times, ticks on round seconds or minutes."""
    low, high = span
    ax.set_xlim(low, high)
    tick = next((t for t in TICKS if (high - low) / t <= 8), TICKS[-1])
    ax.xaxis.set_major_locator(MultipleLocator(tick))
    clock = "%H:%M" if tick >= 60 else "%H:%M:%S"
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: datetime.fromtimestamp(v, tz=UTC).strftime(clock))
    )


def _lanes(ax: Axes, drawn: list[tuple[str, Series]], span: Span) -> None:
    """A state timeline: one lane per series, filled where its value is non-zero."""
    for lane, (_, (_, points)) in enumerate(drawn):
        for (t0, v), (t1, _) in itertools.pairwise(points):
            if v and not math.isnan(v):
                ax.fill_between(
                    [t0, t1],
                    lane - 0.4,
                    lane + 0.4,
                    color=f"C{lane % 10}",
                    linewidth=0,
                )
    ax.set_yticks([])
    for lane, (name, _) in enumerate(drawn):  # lane names inside, as Grafana's row labels
        ax.text(
            0.005, lane, name, transform=ax.get_yaxis_transform(), va="center", color=FG, fontsize=7
        )
    ax.set_ylim(-0.6, len(drawn) - 0.4)
    _time_axis(ax, span)


def _stat(ax: Axes, panel: dict[str, Any], drawn: list[tuple[str, Series]]) -> None:
    unit = str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"))
    names_only = panel.get("options", {}).get("textMode") == "name"
    ax.set_xticks([])
    ax.set_yticks([])
    shown = drawn[:6]
    for i, (name, (_, points)) in enumerate(shown):
        x = (i + 0.5) / len(shown)
        big = name if names_only else fmt(_last(points), unit)
        ax.text(
            x,
            0.5,
            big,
            ha="center",
            va="center",
            color="#73bf69",
            fontsize=16 if not names_only else 10,
            transform=ax.transAxes,
        )
        if not names_only:
            ax.text(
                x, 0.2, name, ha="center", va="center", color=FG, fontsize=7, transform=ax.transAxes
            )


def _draw(ax: Axes, panel: dict[str, Any], drawn: list[tuple[str, Series]], span: Span) -> None:
    _style(ax, str(panel.get("title", "")))
    if not drawn:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "No data", ha="center", va="center", color=FG, transform=ax.transAxes)
    elif panel.get("type") == "stat":
        _stat(ax, panel, drawn)
    elif panel.get("type") == "state-timeline":
        _lanes(ax, drawn, span)
    else:  # timeseries (and any other type): lines over time
        _lines(ax, panel, drawn, span)


def _top(grid_y: float, height: int) -> float:
    """Figure fraction of a point ``grid_y`` rows from the top of the grid."""
    return 1 - (HEADER_IN + grid_y * ROW_IN) / (HEADER_IN + height * ROW_IN)


def _axes_for(fig: Figure, grid: Mapping[str, int], height: int) -> Axes:
    """An axes in the panel's grid cell, leaving room for its title, ticks and legend."""
    x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
    inch = 1 / (HEADER_IN + height * ROW_IN)  # one inch, as a fraction of the height
    left = (x * COLUMN_IN + 0.55) / (24 * COLUMN_IN)
    width = (w * COLUMN_IN - 0.75) / (24 * COLUMN_IN)
    top = _top(y, height) - 0.3 * inch
    bottom = _top(y + h, height) + (0.9 if h >= 8 else 0.25) * inch
    return fig.add_axes((left, bottom, width, max(top - bottom, 0.01)))


def draw(
    board: Board,
    query_range: QueryRange,
    *,
    start: float,
    end: float,
    step: float = 15.0,
    values: Values | None = None,
    scrape_interval: float = 15.0,
) -> tuple[Figure, list[PanelResult]]:
    """The board drawn from ``query_range`` results over [start, end], one axes per panel
    in panel order; variables not in ``values`` are "All". Also returns what each panel
    showed."""
    chosen = {**defaults(board), **(values or {})}
    interval = rate_interval(step, scrape_interval)
    rows = [p for p in board.get("panels", []) if p.get("type") == "row"]
    shown = list(panels(board))
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in [*rows, *shown])
    fig = Figure(figsize=(24 * COLUMN_IN, HEADER_IN + height * ROW_IN), facecolor=BG)
    fig.text(0.01, _top(-0.7, height), str(board.get("title", "")), color=FG, fontsize=13)
    for row in rows:
        title = str(row.get("title", ""))
        fig.text(
            0.01,
            _top(row["gridPos"]["y"] + 0.7, height),
            title,
            color=FG,
            fontsize=10,
            fontweight="bold",
        )
    results = []
    for panel in shown:
        drawn: list[tuple[str, Series]] = []
        for target in panel.get("targets", []):
            expr = substitute(str(target["expr"]), chosen, interval)
            template = str(target.get("legendFormat", ""))
            drawn += [(legend(template, s[0]), s) for s in query_range(expr, start, end, step)]
        _draw(_axes_for(fig, panel["gridPos"], height), panel, drawn, (start, end))
        results.append(PanelResult(str(panel.get("title", "")), str(panel["type"]), len(drawn)))
    return fig, results


def render(board: Board, query_range: QueryRange, out: Path, **options: Any) -> list[PanelResult]:
    """:func:`draw` the board (``options``: its keyword arguments) into ``out`` as a PNG."""
    fig, results = draw(board, query_range, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", facecolor=BG)
    return results


def prometheus(url: str, timeout: float = 30.0) -> QueryRange:
    """A :data:`QueryRange` over a Prometheus server's HTTP API."""

    def query_range(expr: str, start: float, end: float, step: float) -> list[Series]:
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        with urllib.request.urlopen(
            f"{url.rstrip('/')}/api/v1/query_range?{params}", timeout=timeout
        ) as answer:
            body = json.load(answer)
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body.get('error', body)}")
        return [
            (dict(s["metric"]), [(float(t), float(v)) for t, v in s["values"]])
            for s in body["data"]["result"]
        ]

    return query_range


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw Stevie's boards from a Prometheus.")
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://host:9090")
    parser.add_argument("--board", type=Path, required=True, help="board JSON, or a folder")
    parser.add_argument("--out", type=Path, required=True, help="PNG, or a folder")
    parser.add_argument("--minutes", type=float, default=15.0, help="time range, to now")
    parser.add_argument("--step", type=float, default=15.0, help="seconds per point")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    values = dict(v.split("=", 1) for v in args.var)
    if args.board.is_dir():
        jobs = [(b, args.out / f"{stem}.png") for stem, b in load_boards(args.board).items()]
    else:
        jobs = [(json.loads(args.board.read_text(encoding="utf-8")), args.out)]
    end = time.time()
    for board, out in jobs:
        results = render(
            board,
            prometheus(args.prometheus),
            out,
            start=end - args.minutes * 60,
            end=end,
            step=args.step,
            values=values,
            scrape_interval=args.scrape_interval,
        )
        empty = [r.title for r in results if not r.series]
        print(
            f"{out}: {len(results)} panels, {sum(r.series for r in results)} series"
            + (f", no data: {empty}" if empty else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
