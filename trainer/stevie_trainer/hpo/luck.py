"""How much of an HPO study's best result is luck: its Deflated Sharpe Ratio and the PBO.

The finish Job writes ``overfitting.json`` (and the same section in
optimization_results.json and a paragraph in optimization_report.txt) from what the trials
left in storage, with :mod:`stevie_trainer.evaluation.overfitting`:

* **trials tried** (DSR's N): every trial that was evaluated on the validation split: the
  completed and pruned ones, and failed ones that reported an evaluation before failing.
  A configuration the search looked at and discarded still counts: it was a chance to get
  lucky. Trials still running or never evaluated do not.
* **DSR** of the best trial: its validation Sharpe (the mean over its seeds of each seed's
  best model's annualised Sharpe, per bar by the split's bars per year) against the
  expected maximum of N Sharpes with the variance (ddof 1) of the evaluated trials'
  Sharpes; ``n_obs`` the validation bars; skewness and kurtosis those of its stored
  per-bar validation returns (averaged over seeds per bar), or a normal distribution's
  when they are not stored (said in the note).
* **PBO** by CSCV (16 submatrices, metric Sharpe) over the evaluated trials' per-bar
  validation returns (``validation_returns.npy`` of each seed's best model, written by the
  trial worker, averaged over seeds per bar): a T x N matrix, the same validation window
  for every trial of a study.

**Walk-forward** templates (``evaluation.walkForward``, K folds) have no single validation
window: each seed leaves ``seed-<k>/fold-<j>/validation_returns.npy``, fold j's best model
on fold j's own window. A trial's series is then each seed's folds concatenated in fold
order, averaged over seeds per bar (the *pooled* series, the same bars for every trial).
The trials were selected on the folds' mean (or lcb) Sharpe, which is not a per-bar
Sharpe; the DSR uses the pooled series' per-bar Sharpe instead, the closest per-bar
series to what was selected on: the best trial's pooled Sharpe, ``n_obs`` the pooled bars,
its skewness and kurtosis, against the variance (ddof 1) of the evaluated trials' pooled
Sharpes. PBO is CSCV over the pooled series. A trial whose seed is missing a fold's returns
(pruned before that fold, or an older trainer) has no pooled series: it still counts in N
but not in the variance or PBO; when that is the best trial, its DSR is null with the
reason (a normal-moments DSR would need a per-bar Sharpe it does not have). A constant
pooled series (the trial never traded) has no Sharpe: left out of the variance, as a DSR
without one is null; it stays a PBO column.

Either is null with the reason when it cannot be computed honestly (one trial, too few
bars, no stored returns, a fold's returns missing), never a made-up number. The document
also gives the best trial's seed spread (``seed_spread``:
:func:`stevie_trainer.hpo.seeds.seed_spread` and the trial's number), which the operator
puts in the status as ``bestSeedSpread``. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna
from optuna.trial import FrozenTrial, TrialState

from stevie_api.hpo import HPOStudySpec
from stevie_api.techniques import WalkForwardSpec
from stevie_trainer.common import storage
from stevie_trainer.evaluation.deflate import deflate_selection
from stevie_trainer.evaluation.overfitting import (
    per_period_sharpe,
    probability_of_backtest_overfitting,
    return_moments,
)
from stevie_trainer.evaluation.returns_file import RETURNS_FILE, decode_returns, encode_returns
from stevie_trainer.hpo.seeds import read_trial_json, seed_spread
from stevie_trainer.hpo.study import best_trials

__all__ = [
    "OVERFITTING_FILE",
    "PBO_SUBMATRICES",
    "RETURNS_FILE",
    "TrialEvidence",
    "decode_returns",
    "encode_returns",
    "evaluated_trials",
    "overfitting_document",
    "overfitting_text",
    "pooled_returns",
    "trial_evidence",
]

OVERFITTING_FILE = "overfitting.json"
PBO_SUBMATRICES = 16
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrialEvidence:
    """What one trial left for DSR and PBO (None where it left nothing usable)."""

    number: int
    sharpe: float | None  # per bar: the mean over seeds of each seed's validation Sharpe
    bars: int | None  # validation bars
    bars_per_year: float | None
    returns: F64 | None  # per bar, averaged over seeds
    why: str | None = None  # why sharpe or returns is None, when known
    seed_spread: dict[str, Any] | None = None  # see stevie_trainer.hpo.seeds


def evaluated_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials tried: completed, pruned, or failed after at least one evaluation."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.intermediate_values)
    ]


def _read_returns(seed: dict[str, Any], *parts: str) -> F64 | None:
    """The returns file under the seed's folder (``parts`` below it), or None."""
    if "out" not in seed:
        return None
    try:
        return decode_returns(storage.read_bytes(storage.join(str(seed["out"]), *parts)))
    except (storage.StorageError, ValueError, OSError):
        return None


def _mean_over_seeds(series: list[F64]) -> F64 | None:
    if not series or len({s.size for s in series}) != 1:
        return None
    mean: F64 = np.mean(np.stack(series), axis=0)
    return mean if np.all(np.isfinite(mean)) else None


def _seed_returns(seeds: list[dict[str, Any]]) -> F64 | None:
    """The seeds' stored returns averaged per bar; None unless every seed stored them over
    the same window."""
    series = []
    for seed in seeds:
        found = _read_returns(seed, RETURNS_FILE)
        if found is None:
            return None
        series.append(found)
    return _mean_over_seeds(series)


def pooled_returns(seeds: list[dict[str, Any]], folds: int) -> tuple[F64 | None, str | None]:
    """A walk-forward trial's pooled series: each seed's ``fold-0 .. fold-<K-1>`` validation
    returns concatenated in fold order, averaged over seeds per bar; or None and why."""
    if not seeds:
        return None, "it left no seed in trial.json"
    series = []
    for k, seed in enumerate(seeds):
        parts = []
        for j in range(folds):
            part = _read_returns(seed, f"fold-{j}", RETURNS_FILE)
            if part is None:
                return None, f"seed-{k}/fold-{j} left no {RETURNS_FILE}"
            parts.append(part)
        series.append(np.concatenate(parts))
    mean = _mean_over_seeds(series)
    if mean is None:
        sizes = sorted({s.size for s in series})
        return None, f"its seeds' pooled fold returns differ ({sizes} bars) or are not finite"
    return mean, None


def _pooled_sharpe(returns: F64 | None) -> tuple[float | None, str | None]:
    if returns is None:
        return None, None
    try:
        return return_moments(returns).sharpe, None
    except ValueError as err:
        return None, f"its pooled fold returns have no Sharpe ({err}; it never traded?)"


def trial_evidence(trial: FrozenTrial, folds: int | None = None) -> TrialEvidence:
    """Read ``trial.json`` and the seeds' returns from the trial's folder; ``folds``: the
    walk-forward template's K (None: a single validation split), see the module docstring."""
    doc = read_trial_json(trial)
    seeds = [s for s in (doc or {}).get("seeds") or [] if isinstance(s, dict)]
    sharpes, bars, bpy = [], None, None
    for seed in seeds:
        v = seed.get("validation") or {}
        sr, ppy = v.get("sharpe"), v.get("bars_per_year")
        if isinstance(sr, int | float) and math.isfinite(sr) and isinstance(ppy, int | float):
            sharpes.append(per_period_sharpe(sr, ppy))
            bars, bpy = int(v.get("bars") or 0) or None, float(ppy)
    spread = seed_spread(doc)
    if folds is None:
        returns = _seed_returns(seeds)
        sharpe = sum(sharpes) / len(sharpes) if sharpes else None
        if sharpe is None and returns is not None:
            # markets of different bar sizes pool to no bars-per-year (data.markets): the
            # per-bar Sharpe of the stored series (the markets' joined) stands in
            sharpe, bars = _pooled_sharpe(returns)[0], int(returns.size)
        return TrialEvidence(
            number=trial.number,
            sharpe=sharpe,
            bars=bars,
            bars_per_year=bpy,
            returns=returns,
            seed_spread=spread,
        )
    pooled, why = pooled_returns(seeds, folds) if doc else (None, "it left no trial.json")
    sharpe, no_sharpe = _pooled_sharpe(pooled)
    return TrialEvidence(
        number=trial.number,
        sharpe=sharpe,
        bars=None if pooled is None else int(pooled.size),
        bars_per_year=bpy,
        returns=pooled,
        why=why or no_sharpe,
        seed_spread=spread,
    )


def _dsr(
    best: TrialEvidence, n_trials: int, sharpes: list[float], wf: WalkForwardSpec | None = None
) -> tuple[Any, str]:
    """The DSR section of the best trial and a note on how (or why not) it was computed;
    ``wf``: the walk-forward spec when the Sharpes are the pooled series' ones."""
    what = "a pooled per-bar Sharpe" if wf else "a validation Sharpe"
    if n_trials < 2 or len(sharpes) < 2:
        return None, (
            f"DSR not computed: {n_trials} trial(s) tried, {len(sharpes)} with {what}; the "
            "variance of the trials' Sharpes needs at least 2"
        )
    if best.sharpe is None or best.bars is None or best.bars < 2:
        why = f": {best.why}" if best.why else ""
        return None, f"DSR not computed: best trial {best.number} has no {what[2:]}{why}"
    present = (
        "Sharpe, skew and kurtosis of its pooled fold validation returns"
        if wf is not None
        else "skew and kurtosis of its stored returns"
    )
    dsr, how = deflate_selection(
        best.sharpe, best.bars, n_trials=n_trials, sharpes=sharpes, returns=best.returns,
        absent="no stored per-bar returns", present=present,
    )  # fmt: skip
    if dsr is None:
        return None, how
    section = dsr.to_dict() | {"trial": best.number, "sentence": dsr.describe(best.bars_per_year)}
    if wf is not None:
        how += (
            f" ({best.bars} bars over {wf.folds} folds; the trials were selected on the folds' "
            f"{wf.score} Sharpe, the DSR uses the pooled per-bar Sharpe, the closest per-bar "
            f"series to what was selected on; the variance is over the {len(sharpes)} trials "
            "with a pooled Sharpe)"
        )
    return section, f"DSR of trial {best.number} among {n_trials} tried: {how}"


def _pbo(evidence: list[TrialEvidence], pooled: bool = False) -> tuple[Any, str]:
    with_returns = [e for e in evidence if e.returns is not None]
    what = "pooled fold validation" if pooled else "validation"
    if len(with_returns) < 2:
        return None, (
            f"PBO not computed: {len(with_returns)} trial(s) stored per-bar {what} "
            "returns; CSCV needs at least 2"
        )
    lengths = {e.returns.size for e in with_returns if e.returns is not None}
    if len(lengths) != 1:
        return (
            None,
            f"PBO not computed: the trials' {what} windows differ ({sorted(lengths)} bars)",
        )
    matrix = np.stack([e.returns for e in with_returns if e.returns is not None], axis=1)
    try:
        pbo = probability_of_backtest_overfitting(matrix, submatrices=PBO_SUBMATRICES)
    except ValueError as err:
        return None, f"PBO not computed: {err}"
    section = pbo.to_dict() | {
        "trials": [e.number for e in with_returns],
        "bars": int(matrix.shape[0]),
        "sentence": pbo.describe(),
    }
    return section, f"PBO over {len(with_returns)} trials x {matrix.shape[0]} {what} bars"


def _left_out(evidence: list[TrialEvidence]) -> list[str]:
    """A walk-forward note per trial without a pooled series (or its Sharpe)."""
    return [
        f"trial {e.number} left out of the variance{' and PBO' if e.returns is None else ''}: "
        f"{e.why}"
        for e in evidence
        if e.sharpe is None and e.why
    ]


def overfitting_document(study: optuna.Study, spec: HPOStudySpec) -> dict[str, Any]:
    """The content of overfitting.json (see the module docstring)."""
    tried = evaluated_trials(study)
    ranked = best_trials(study)
    wf = spec.template.evaluation.walk_forward
    evidence = [trial_evidence(t, wf.folds if wf else None) for t in tried]
    sharpes = [e.sharpe for e in evidence if e.sharpe is not None]
    notes = []
    dsr, spread = None, None
    if ranked:
        best = next(e for e in evidence if e.number == ranked[0].number)
        dsr, note = _dsr(best, len(tried), sharpes, wf)
        notes.append(note)
        spread = None if best.seed_spread is None else {"trial": best.number, **best.seed_spread}
    else:
        notes.append("DSR not computed: no completed trial")
    pbo, note = _pbo(evidence, pooled=wf is not None)
    notes.append(note)
    if wf is not None:
        notes += _left_out(evidence)
    window = f"{wf.folds} walk-forward folds' validation windows, pooled" if wf else None
    return {
        "trials": len(tried),
        "best_trial": ranked[0].number if ranked else None,
        "validation": window or "validation split",
        "trials_with_sharpe": len(sharpes),
        "trials_with_returns": sum(e.returns is not None for e in evidence),
        "deflated_sharpe": dsr,
        "pbo": pbo,
        "seed_spread": spread,
        "notes": notes,
    }


def overfitting_text(doc: dict[str, Any]) -> list[str]:
    """The report's paragraph."""
    window = doc.get("validation", "validation split")
    lines = [f"How much is luck ({doc['trials']} trial(s) tried, {window}):"]
    for key in ("deflated_sharpe", "pbo"):
        section = doc.get(key)
        if section is not None:
            lines.append("  " + str(section["sentence"]))
    lines += [f"  {note}" for note in doc.get("notes", [])]
    return lines
