"""PNG plots for reports (matplotlib, headless).

matplotlib is imported when a plot is drawn, not with this module: training and PBT
interval processes import it (through the backtest and report code) but draw nothing before
their end, and matplotlib's import is ~0.25 s of every trainer Job's cold start.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from stevie_trainer.evaluation.episode import Episode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_LOG_SUBS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)

# Stable colours per policy so every report reads the same way.
COLOURS = {
    "buy-and-hold": "#7f7f7f",
    "expert": "#ff7f0e",
    "random": "#bcbd22",
    "agent": "#1f77b4",
}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def equity_png(episodes: Mapping[str, Episode], *, title: str, note: str = "") -> bytes:
    """Equity curves (log scale) over a drawdown panel; the first episode is drawn boldest."""
    plt = pyplot()
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    fig, (ax_eq, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for k, (name, ep) in enumerate(episodes.items()):
        colour = COLOURS.get(name)
        width = 2.0 if k == 0 else 1.2
        ax_eq.plot(ep.timestamps, ep.equity, label=name, color=colour, linewidth=width)
        drawdown = ep.equity / np.maximum.accumulate(ep.equity) - 1.0
        ax_dd.plot(ep.timestamps, 100.0 * drawdown, color=colour, linewidth=1.0)
    ax_eq.set_yscale("log")
    # Readable ticks on the log axis at 1, 1.25, 1.5, 2, ... (and 0.5, 0.6, ... below 1).
    ax_eq.yaxis.set_major_locator(LogLocator(base=10.0, subs=_LOG_SUBS))
    ax_eq.yaxis.set_minor_locator(NullLocator())
    ax_eq.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax_eq.set_ylabel("equity (start = 1, log scale)")
    ax_eq.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
    ax_eq.legend(loc="upper left")
    ax_eq.set_title(title)
    ax_eq.grid(alpha=0.3)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)
    if note:
        fig.text(0.01, 0.005, note, fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig_png(fig)


def fig_png(fig: Figure, dpi: int = 110) -> bytes:
    """A figure as PNG bytes; the figure is closed (no pyplot state leaks between plots)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return buf.getvalue()
