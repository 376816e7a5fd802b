"""PBT plots: fitness per member over time, hyperparameter schedules, lineage.

Each takes the population state (:class:`~stevie_trainer.pbt.state.Population`) and returns
PNG bytes. The x axis is the timesteps each member's weights have trained: interval ``i`` ends
at ``(i + 1) x perturbationInterval``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # headless, before pyplot (evaluation.plots no longer sets it on import)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from stevie_api.common import ParamSpec
from stevie_trainer.evaluation.plots import fig_png
from stevie_trainer.pbt.state import Population

__all__ = ["fitness_png", "lineage_png", "schedules_png"]


def _colour(index: int) -> tuple[float, float, float, float]:
    return plt.get_cmap("tab10" if index < 10 else "tab20")(index % 20)


def _steps(n: int, interval: int) -> np.ndarray:
    return (np.arange(n) + 1) * interval


def fitness_png(population: Population, interval: int, *, title: str) -> bytes:
    """Fitness after each interval, one line per member; an x marks an interval that started
    from another member's weights (labelled with the donor)."""
    fig, ax = plt.subplots(figsize=(10, 5))
    exploits = {(e.member, e.interval): e.copied_from for e in population.events}
    for m in population.members:
        if not m.fitness_history:
            continue
        x = _steps(len(m.fitness_history), interval)
        y = np.asarray(m.fitness_history)
        style = ":" if m.status == "failed" else "-"
        ax.plot(x, y, style, marker="o", ms=3, color=_colour(m.index), label=f"member {m.index}")
        for i, f in enumerate(m.fitness_history):
            donor = exploits.get((m.index, i))
            if donor is not None:
                ax.plot(x[i], f, "x", ms=9, mew=2, color=_colour(m.index))
                ax.annotate(
                    f"<-m{donor}", (x[i], f), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
    ax.set_xlabel("timesteps trained by the member's weights")
    ax.set_ylabel("validation fitness")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, ncol=2)
    fig.tight_layout()
    return fig_png(fig)


def schedules_png(
    population: Population, mutations: Mapping[str, ParamSpec], interval: int, *, title: str
) -> bytes:
    """One panel per evolving hyperparameter: its value in each interval, per member (step
    lines; log axis for log-scale priors)."""
    keys = sorted(mutations)
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 2.4 * len(keys) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys, strict=True):
        prior = mutations[key]
        for m in population.members:
            values = [p.get(key) for p in m.param_history]
            if not values:
                continue
            x = np.concatenate([[0], _steps(len(values), interval)])
            if prior.type == "categorical":
                choices = [str(c) for c in prior.choices or []]
                y = [choices.index(str(v)) if str(v) in choices else np.nan for v in values]
                ax.set_yticks(range(len(choices)), choices)
            else:
                y = [np.nan if v is None else float(v) for v in values]
            ax.stairs(
                y, x, baseline=None, color=_colour(m.index), linewidth=1.5, label=f"m{m.index}"
            )
        if prior.log:
            ax.set_yscale("log")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[0].legend(loc="upper right", fontsize=7, ncol=min(8, len(population.members)))
    axes[-1].set_xlabel("timesteps trained by the member's weights")
    fig.tight_layout()
    return fig_png(fig)


def lineage_png(population: Population, best: tuple[int, int] | None, *, title: str) -> bytes:
    """Member x interval grid: dots coloured by fitness, grey links where a member went on
    with its own weights, red arrows where it copied another member's; the best result's
    ancestry is drawn bold."""
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.5 * len(population.members)))
    copied = {(e.member, e.interval): e for e in population.events}
    values = [f for m in population.members for f in m.fitness_history]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1e-9)
    for m in population.members:
        for i in range(len(m.fitness_history)):
            ev = copied.get((m.index, i))
            if ev is not None:
                ax.annotate(
                    "",
                    xy=(i + 1, m.index),
                    xytext=(ev.copied_interval, ev.copied_from),
                    arrowprops={"arrowstyle": "->", "color": "#d62728", "lw": 1.2},
                )
            elif i > 0:
                ax.plot([i, i + 1], [m.index, m.index], color="#bbbbbb", lw=1, zorder=1)
        xs = np.arange(1, len(m.fitness_history) + 1)
        ax.scatter(
            xs,
            [m.index] * len(xs),
            c=m.fitness_history,
            cmap="viridis",
            norm=norm,
            s=60,
            zorder=3,
            edgecolors="black",
            linewidths=0.4,
        )
    if best is not None:
        _ancestry(ax, population, *best)
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=norm)
    fig.colorbar(sm, ax=ax, label="validation fitness")
    ax.set_xlabel("interval (end)")
    ax.set_ylabel("member")
    ax.set_yticks([m.index for m in population.members])
    ax.set_title(title)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return fig_png(fig)


def _ancestry(ax: Axes, population: Population, member: int, interval: int) -> None:
    """Bold path of the weights of (member, interval) back to interval 1."""
    from stevie_trainer.pbt.state import schedule

    steps = schedule(population, member, interval)
    xs = [s["interval"] + 1 for s in steps]
    ys = [s["member"] for s in steps]
    ax.plot(xs, ys, color="black", lw=2.2, alpha=0.6, zorder=2, label="best's ancestry")
    ax.legend(loc="upper left", fontsize=8)
