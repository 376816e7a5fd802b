"""How much of a PBT population's best result is luck: the Deflated Sharpe Ratio (Bailey &
Lopez de Prado 2014) of the selected (member, interval) evaluation.

The finish Job puts an ``overfitting`` section in pbt_summary.json (and logs the paragraph
of :func:`overfitting_text`), from the state and every interval's result.json, with
:mod:`stevie_trainer.evaluation.overfitting`:

* **evaluations tried** (DSR's N): every (member, interval) scored on the validation split,
  i.e. every entry of the members' fitness histories. Each is a configuration tried (its
  weights and hyperparameters); an exploited member's intervals after it copied a donor
  count too (the copy was explored: another chance to get lucky). Failed attempts that
  left no result do not. The evaluations are correlated (a member's intervals continue
  one another), so N overstates the independent trials: the DSR errs on the cautious side.
* **the metric** is the validation Sharpe each result.json records (annualised by the
  split's bars per year; per bar here), not the fitness: the fitness is a bounded
  composite (:mod:`~stevie_trainer.pbt.fitness`), which has no Sharpe's sampling theory.
  The selected evaluation is the one the summary picked by fitness; unless the fitness
  weighs the Sharpe alone, its Sharpe need not be the highest of the N (the note says so).
* **DSR** of the selected evaluation: its per-bar Sharpe against the expected maximum of N
  Sharpes with the variance (ddof 1) of the evaluations' per-bar Sharpes; ``n_obs`` its
  validation bars; skewness and kurtosis those of its per-bar validation returns
  (``validation_returns.npy`` in its interval folder, written by the interval worker), or
  a normal distribution's when absent (said in the note).

Several markets (``template.data.markets``): the metric is the pooled validation Sharpe
(the mean of the markets' Sharpes), ``n_obs`` the pooled bars and the returns the markets'
series joined (:func:`~stevie_trainer.rl.agent.joined_returns`); markets of different bars per year
have no per-bar pooled Sharpe, so no DSR (the note says so).

Null with the reason when it cannot be computed honestly (fewer than 2 evaluations with a
Sharpe, a selected evaluation without one), never a made-up number. Torch-free and
optuna-free (the interval worker writes the returns with :func:`encode_returns`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stevie_api.pbt import FitnessWeights
from stevie_trainer.common import storage
from stevie_trainer.evaluation.deflate import deflate_selection
from stevie_trainer.evaluation.overfitting import (
    per_period_sharpe,
)
from stevie_trainer.evaluation.returns_file import RETURNS_FILE, decode_returns, encode_returns
from stevie_trainer.pbt.fitness import finite_float
from stevie_trainer.pbt.state import Population

__all__ = [
    "RETURNS_FILE",
    "Evaluation",
    "decode_returns",
    "encode_returns",
    "evaluations",
    "overfitting_section",
    "overfitting_text",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Evaluation:
    """One (member, interval) scored on validation (None where its result.json says nothing)."""

    member: int
    interval: int
    folder: str | None  # the interval's folder (its checkpoint)
    sharpe: float | None  # per bar
    bars: int | None  # validation bars (returns)
    bars_per_year: float | None
    no_rate: bool = False  # a Sharpe without one bars per year (markets of different rates)


def _evaluation(member: int, interval: int, folder: str | None, result: Any) -> Evaluation:
    validation = result.get("validation") if isinstance(result, Mapping) else None
    v = validation if isinstance(validation, Mapping) else {}
    sharpe, bpy = finite_float(v.get("sharpe")), finite_float(v.get("bars_per_year"))
    bars = finite_float(v.get("bars"))
    per_bar = per_period_sharpe(sharpe, bpy) if sharpe is not None and bpy and bpy > 0 else None
    return Evaluation(
        member=member,
        interval=interval,
        folder=folder,
        sharpe=per_bar,
        bars=int(bars) if bars is not None and bars >= 1 else None,
        bars_per_year=bpy if per_bar is not None else None,
        no_rate=sharpe is not None and per_bar is None,
    )


def evaluations(population: Population, results: Iterable[Mapping[str, Any]]) -> list[Evaluation]:
    """Every recorded (member, interval) evaluation, in (member, interval) order, with what
    its result.json (``results``: those :func:`~.finish.interval_results` read) says."""
    by_key = {(int(r["member"]), int(r["interval"])): r for r in results}
    return [
        _evaluation(m.index, i, m.checkpoint_history[i], by_key.get((m.index, i)))
        for m in population.members
        for i in range(len(m.fitness_history))
    ]


def _returns(folder: str | None) -> F64 | None:
    if folder is None:
        return None
    try:
        returns = decode_returns(storage.read_bytes(storage.join(folder, RETURNS_FILE)))
    except (storage.StorageError, ValueError, OSError):
        return None
    return returns if returns.size and np.all(np.isfinite(returns)) else None


def _selection(weights: FitnessWeights | None) -> str:
    """How the selection relates to the metric."""
    w = (weights or FitnessWeights()).as_dict()
    if w["sharpe"] > 0 and all(v == 0 for k, v in w.items() if k != "sharpe"):
        return "selected by fitness, which weighs the validation Sharpe alone"
    mix = " + ".join(f"{v:g} {k}" for k, v in w.items() if v > 0)
    return (
        f"selected by fitness ({mix}), not by Sharpe: its Sharpe need not be the best of "
        "the N, so measuring it against the best of N by luck errs on the cautious side"
    )


def _dsr(best: Evaluation, n: int, sharpes: list[float]) -> tuple[dict[str, Any] | None, str]:
    """The DSR section of the selected evaluation and a note on how (or why not)."""
    where = f"member {best.member} interval {best.interval}"
    if best.no_rate:
        return None, (
            f"DSR not computed: the selected {where}'s validation Sharpe has no bars per year "
            "(pooled over markets of different bars per year), so no per-bar Sharpe"
        )
    if len(sharpes) < 2:
        return None, (
            f"DSR not computed: {n} evaluation(s), {len(sharpes)} with a validation Sharpe; "
            "the variance of the evaluations' Sharpes needs at least 2"
        )
    if best.sharpe is None or best.bars is None or best.bars < 2:
        return None, f"DSR not computed: the selected {where} has no validation Sharpe"
    dsr, how = deflate_selection(
        best.sharpe, best.bars, n_trials=n, sharpes=sharpes, returns=_returns(best.folder),
        absent=f"no stored {RETURNS_FILE}",
        present=f"skew and kurtosis of its stored {RETURNS_FILE}",
    )  # fmt: skip
    if dsr is None:
        return None, how
    section = dsr.to_dict() | {
        "member": best.member,
        "interval": best.interval,
        "sentence": dsr.describe(best.bars_per_year),
    }
    return section, f"DSR of {where} among {n} evaluations: {how}"


def overfitting_section(
    population: Population,
    results: Iterable[Mapping[str, Any]],
    best: Mapping[str, Any] | None,
    weights: FitnessWeights | None = None,
) -> dict[str, Any]:
    """pbt_summary.json's ``overfitting`` section (see the module docstring); ``best`` is the
    summary's selected evaluation (its ``member`` and ``interval``), None if there is none."""
    found = evaluations(population, results)
    sharpes = [e.sharpe for e in found if e.sharpe is not None]
    members = len({e.member for e in found})
    counted = (
        f"N = {len(found)} (member, interval) evaluations of {members} member(s), exploited "
        f"copies included; {len(sharpes)} with a validation Sharpe (metric: validation "
        "Sharpe, per bar; the evaluations are correlated, so N overstates the independent "
        "trials)"
    )
    doc: dict[str, Any] = {
        "evaluations": len(found),
        "evaluations_with_sharpe": len(sharpes),
        "metric": "validation sharpe",
        "selected": None,
        "deflated_sharpe": None,
    }
    chosen = None
    if best is not None:
        key = (int(best["member"]), int(best["interval"]))
        chosen = next((e for e in found if (e.member, e.interval) == key), None)
    if chosen is None:
        return doc | {"notes": ["DSR not computed: no selected evaluation", counted]}
    dsr, note = _dsr(chosen, len(found), sharpes)
    notes = [note, counted, f"member {chosen.member} interval {chosen.interval} was "
             + _selection(weights)]  # fmt: skip
    selected = {"member": chosen.member, "interval": chosen.interval}
    return doc | {"selected": selected, "deflated_sharpe": dsr, "notes": notes}


def overfitting_text(section: Mapping[str, Any]) -> list[str]:
    """The report's paragraph (the finish logs it)."""
    lines = [f"How much is luck ({section['evaluations']} evaluation(s) tried, validation split):"]
    dsr = section.get("deflated_sharpe")
    if isinstance(dsr, Mapping):
        lines.append("  " + str(dsr["sentence"]))
    lines += [f"  {note}" for note in section.get("notes", [])]
    return lines
