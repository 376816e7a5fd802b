"""The matplotlib renderer over a fake query_range: one axes per panel, the queries
substituted, stat panels as their last values, empty panels as "No data"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stevie_operator.monitoring.queries import board_queries, load_boards, panels
from stevie_operator.monitoring.render import Series, draw, fmt, legend, render

BOARDS = load_boards()
START, END, STEP = 1_700_000_000.0, 1_700_000_600.0, 30.0


class FakePrometheus:
    """Two series per query (the second with a NaN gap), recording what it was asked."""

    def __init__(self, empty: str = "") -> None:
        self.asked: list[str] = []
        self.empty = empty

    def __call__(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        self.asked.append(expr)
        if self.empty and self.empty in expr:
            return []
        times = [start + i * step for i in range(int((end - start) / step) + 1)]
        return [
            ({"kind": "PBTPopulation", "name": f"pop-{k}", "phase": "Running"},
             [(t, math.nan if k and i == len(times) - 1 else k + i) for i, t in enumerate(times)])
            for k in range(2)
        ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_board_renders_one_axes_per_panel(name: str, tmp_path: Path) -> None:
    fake = FakePrometheus()
    out = tmp_path / f"{name}.png"
    results = render(
        BOARDS[name], fake, out, start=START, end=END, step=STEP, values={"namespace": "team-a"}
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    shown = list(panels(BOARDS[name]))
    assert [r.title for r in results] == [p["title"] for p in shown]
    assert all(r.series == 2 * len(p["targets"]) for r, p in zip(results, shown, strict=True))
    assert len(fake.asked) == len(board_queries(BOARDS[name]))
    assert not any("$" in expr for expr in fake.asked), "every variable substituted"
    assert all("[60s]" in e for e in fake.asked if "rate(" in e or "increase(" in e)
    if "$namespace" in str(BOARDS[name]["panels"]):
        assert any('namespace=~"team-a"' in e for e in fake.asked)


def test_a_figure_has_one_axes_per_panel_and_says_no_data() -> None:
    board = BOARDS["operator"]
    fig, results = draw(board, FakePrometheus(empty="errors"), start=START, end=END, step=STEP)
    shown = list(panels(board))
    assert len(fig.axes) == len(shown)
    for ax, panel, result in zip(fig.axes, shown, results, strict=True):
        assert ax.get_title(loc="left") == panel["title"]
        texts = [t.get_text() for t in ax.texts]
        assert ("No data" in texts) == (result.series == 0)
    assert [r.title for r in results if not r.series] == ["Reconcile errors / s"]


def test_stat_panels_show_the_last_value_and_lines_have_legends() -> None:
    board = BOARDS["operator"]
    fig, _ = draw(board, FakePrometheus(), start=START, end=END, step=STEP)
    titles = [p["title"] for p in panels(board)]
    stat = fig.axes[titles.index("Resources by phase")]
    # series 0 ends at 20; series 1's last point is NaN, so its last value is 20 too
    assert [t.get_text() for t in stat.texts] == ["20", "Running", "20", "Running"]
    lines = fig.axes[titles.index("Reconcile duration")]
    assert len(lines.get_lines()) == 4  # p95 and p50, two series each
    legend_box = lines.get_legend()
    assert legend_box is not None
    assert [t.get_text() for t in legend_box.get_texts()][:2] == [
        "p95 PBTPopulation",
        "p95 PBTPopulation",
    ]


def test_units_and_legends_read_as_in_grafana() -> None:
    assert fmt(0.0123, "s") == "12.3 ms"
    assert fmt(90, "s") == "1.5 min"
    assert fmt(0.25, "percentunit") == "25%"
    assert fmt(1500, "reqps") == "1.5 K req/s"
    assert fmt(3.0, "none") == "3"
    assert legend("{{ kind }} {{name}}", {"kind": "HPOStudy", "name": "s"}) == "HPOStudy s"
    assert legend("__auto", {"__name__": "up", "job": "x"}) == 'up{job="x"}'
