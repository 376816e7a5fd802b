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

Either is null with the reason when it cannot be computed honestly (one trial, too few
bars, no stored returns, walk-forward folds), never a made-up number. Torch-free.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna
from optuna.trial import FrozenTrial, TrialState

from stevie_api.hpo import HPOStudySpec
from stevie_trainer.common import storage
from stevie_trainer.evaluation.overfitting import (
    deflated_sharpe_ratio,
    per_period_sharpe,
    probability_of_backtest_overfitting,
    return_moments,
)
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
    "trial_evidence",
]

RETURNS_FILE = "validation_returns.npy"  # per seed: the best model's per-bar returns
OVERFITTING_FILE = "overfitting.json"
PBO_SUBMATRICES = 16
F64 = npt.NDArray[np.float64]


def encode_returns(returns: npt.ArrayLike) -> bytes:
    """Per-bar returns as a .npy file (float64, ~8 bytes a bar)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(returns, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def decode_returns(data: bytes) -> F64:
    values = np.load(io.BytesIO(data), allow_pickle=False)
    return np.asarray(values, dtype=np.float64).reshape(-1)


@dataclass(frozen=True)
class TrialEvidence:
    """What one trial left for DSR and PBO (None where it left nothing usable)."""

    number: int
    sharpe: float | None  # per bar: the mean over seeds of each seed's validation Sharpe
    bars: int | None  # validation bars
    bars_per_year: float | None
    returns: F64 | None  # per bar, averaged over seeds


def evaluated_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials tried: completed, pruned, or failed after at least one evaluation."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.intermediate_values)
    ]


def _read_json(uri: str) -> dict[str, Any] | None:
    import json

    try:
        doc = json.loads(storage.read_text(uri))
    except (storage.StorageError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _seed_returns(seeds: list[dict[str, Any]]) -> F64 | None:
    """The seeds' stored returns averaged per bar; None unless every seed stored them over
    the same window."""
    series = []
    for seed in seeds:
        try:
            series.append(
                decode_returns(storage.read_bytes(storage.join(seed["out"], RETURNS_FILE)))
            )
        except (storage.StorageError, KeyError, ValueError, OSError):
            return None
    if not series or len({s.size for s in series}) != 1:
        return None
    mean: F64 = np.mean(np.stack(series), axis=0)
    return mean if np.all(np.isfinite(mean)) else None


def trial_evidence(trial: FrozenTrial) -> TrialEvidence:
    """Read ``trial.json`` and the seeds' returns from the trial's folder."""
    out = trial.user_attrs.get("out")
    doc = _read_json(storage.join(str(out), "trial.json")) if out else None
    seeds = [s for s in (doc or {}).get("seeds") or [] if isinstance(s, dict)]
    sharpes, bars, bpy = [], None, None
    for seed in seeds:
        v = seed.get("validation") or {}
        sr, ppy = v.get("sharpe"), v.get("bars_per_year")
        if isinstance(sr, int | float) and math.isfinite(sr) and isinstance(ppy, int | float):
            sharpes.append(per_period_sharpe(sr, ppy))
            bars, bpy = int(v.get("bars") or 0) or None, float(ppy)
    return TrialEvidence(
        number=trial.number,
        sharpe=sum(sharpes) / len(sharpes) if sharpes else None,
        bars=bars,
        bars_per_year=bpy,
        returns=_seed_returns(seeds),
    )


def _dsr(best: TrialEvidence, n_trials: int, sharpes: list[float]) -> tuple[Any, str]:
    """The DSR section of the best trial and a note on how (or why not) it was computed."""
    if n_trials < 2 or len(sharpes) < 2:
        return None, (
            f"DSR not computed: {n_trials} trial(s) tried, {len(sharpes)} with a validation "
            "Sharpe; the variance of the trials' Sharpes needs at least 2"
        )
    if best.sharpe is None or best.bars is None or best.bars < 2:
        return None, f"DSR not computed: best trial {best.number} has no validation Sharpe"
    variance = float(np.var(sharpes, ddof=1))
    skew, kurtosis, how = 0.0, 3.0, "normal returns assumed (no stored per-bar returns)"
    if best.returns is not None:
        try:
            m = return_moments(best.returns)
            skew, kurtosis, how = m.skew, m.kurtosis, "skew and kurtosis of its stored returns"
        except ValueError as err:
            how = f"normal returns assumed ({err})"
    try:
        dsr = deflated_sharpe_ratio(
            best.sharpe, best.bars, n_trials=n_trials, trials_sr_variance=variance,
            skew=skew, kurtosis=kurtosis,
        )  # fmt: skip
    except ValueError as err:
        return None, f"DSR not computed: {err}"
    section = dsr.to_dict() | {"trial": best.number, "sentence": dsr.describe(best.bars_per_year)}
    return section, f"DSR of trial {best.number} among {n_trials} tried: {how}"


def _pbo(evidence: list[TrialEvidence]) -> tuple[Any, str]:
    with_returns = [e for e in evidence if e.returns is not None]
    if len(with_returns) < 2:
        return None, (
            f"PBO not computed: {len(with_returns)} trial(s) stored per-bar validation "
            "returns; CSCV needs at least 2"
        )
    lengths = {e.returns.size for e in with_returns if e.returns is not None}
    if len(lengths) != 1:
        return (
            None,
            f"PBO not computed: the trials' validation windows differ ({sorted(lengths)} bars)",
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
    return section, f"PBO over {len(with_returns)} trials x {matrix.shape[0]} validation bars"


def overfitting_document(study: optuna.Study, spec: HPOStudySpec) -> dict[str, Any]:
    """The content of overfitting.json (see the module docstring)."""
    tried = evaluated_trials(study)
    ranked = best_trials(study)
    doc: dict[str, Any] = {"trials": len(tried), "best_trial": ranked[0].number if ranked else None}
    if spec.template.evaluation.walk_forward is not None:
        why = "not computed: walk-forward trials' fold validation windows are not pooled yet"
        return doc | {"deflated_sharpe": None, "pbo": None, "notes": [f"DSR {why}", f"PBO {why}"]}
    evidence = [trial_evidence(t) for t in tried]
    sharpes = [e.sharpe for e in evidence if e.sharpe is not None]
    notes = []
    dsr = None
    if ranked:
        best = next(e for e in evidence if e.number == ranked[0].number)
        dsr, note = _dsr(best, len(tried), sharpes)
        notes.append(note)
    else:
        notes.append("DSR not computed: no completed trial")
    pbo, note = _pbo(evidence)
    notes.append(note)
    return doc | {
        "trials_with_sharpe": len(sharpes),
        "trials_with_returns": sum(e.returns is not None for e in evidence),
        "deflated_sharpe": dsr,
        "pbo": pbo,
        "notes": notes,
    }


def overfitting_text(doc: dict[str, Any]) -> list[str]:
    """The report's paragraph."""
    lines = [f"How much is luck ({doc['trials']} trial(s) tried, validation split):"]
    for key in ("deflated_sharpe", "pbo"):
        section = doc.get(key)
        if section is not None:
            lines.append("  " + str(section["sentence"]))
    lines += [f"  {note}" for note in doc.get("notes", [])]
    return lines
