"""The ensemble backtest's plots: equity (ensemble vs members vs buy-and-hold), the members'
weights over time, and the ensemble's consensus and confidence over time (test split)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd

from stevie_trainer.ensemble.backtest import ENSEMBLE, Record, SplitRun
from stevie_trainer.evaluation.plots import equity_png, fig_png

__all__ = ["consensus_png", "run_equity_png", "weights_png"]

F64 = npt.NDArray[np.float64]


def run_equity_png(run: SplitRun, names: Sequence[str], *, title: str, note: str = "") -> bytes:
    """The ensemble (boldest), each member alone and buy-and-hold on one split."""
    keep = [ENSEMBLE, *names, "buy-and-hold"]
    return equity_png({k: run.episodes[k] for k in keep}, title=title, note=note)


def _times(records: Sequence[Record]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([r.time for r in records])


def weights_png(run: SplitRun, names: Sequence[str], *, title: str) -> bytes:
    """Each member's weight at each decision bar, stacked (they sum to 1)."""
    times = _times(run.decisions)
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.stackplot(times, *(run.weights[:, i] for i in range(len(names))), labels=list(names))
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("voting weight")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig_png(fig)


def _smooth(x: F64, span: int) -> F64:
    return np.asarray(pd.Series(x).rolling(span, min_periods=1).mean(), dtype=np.float64)


def consensus_png(run: SplitRun, *, title: str) -> bytes:
    """Consensus (weight share agreeing with the decision) and confidence (the ensemble's
    probability of it) per decision, with a rolling mean."""
    records = run.decisions
    times = _times(records)
    span = max(5, len(records) // 50)
    fig, ax = plt.subplots(figsize=(11, 4))
    for key, colour in (("consensus", "#1f77b4"), ("confidence", "#d62728")):
        values = np.array([getattr(r.decision, key) for r in records], dtype=np.float64)
        ax.plot(times, values, color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(times, _smooth(values, span), color=colour, linewidth=1.8,
                label=f"{key} (mean of {span} bars)")  # fmt: skip
    ax.set_ylim(0.0, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig_png(fig)
