"""The Deflated Sharpe Ratio of a selection, as the HPO and PBT finishes compute it.

Both finishes select one configuration (a trial, a member's interval) among N and deflate
its per-bar validation Sharpe with the variance (ddof 1) of the N configurations'
Sharpes and the skewness and kurtosis of its stored per-bar returns, or a normal
distribution's (0, 3) when none are stored or they have no moments; what was used goes in
the note. Their own guards (too few Sharpes, no selection) stay with them: they word N
differently (trials, evaluations). Torch- and optuna-free.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stevie_trainer.evaluation.overfitting import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    return_moments,
)

__all__ = ["deflate_selection", "selection_moments"]


def selection_moments(
    returns: npt.NDArray[np.float64] | None, *, absent: str, present: str
) -> tuple[float, float, str]:
    """Skew and kurtosis of the selection's returns and how they were had: ``present``
    when measured, ``normal returns assumed (<absent or the error>)`` otherwise."""
    if returns is None:
        return 0.0, 3.0, f"normal returns assumed ({absent})"
    try:
        m = return_moments(returns)
    except ValueError as err:
        return 0.0, 3.0, f"normal returns assumed ({err})"
    return m.skew, m.kurtosis, present


def deflate_selection(
    sharpe: float,
    n_obs: int,
    *,
    n_trials: int,
    sharpes: list[float],
    returns: npt.NDArray[np.float64] | None,
    absent: str,
    present: str,
) -> tuple[DeflatedSharpe | None, str]:
    """The DSR of the selected Sharpe (per bar) among ``n_trials`` whose Sharpes
    (``sharpes``, at least 2) give the variance; and how the moments were had, or
    ``DSR not computed: <why>`` when the inputs are out of the DSR's domain."""
    skew, kurtosis, how = selection_moments(returns, absent=absent, present=present)
    try:
        dsr = deflated_sharpe_ratio(
            sharpe, n_obs, n_trials=n_trials, trials_sr_variance=float(np.var(sharpes, ddof=1)),
            skew=skew, kurtosis=kurtosis,
        )  # fmt: skip
    except ValueError as err:
        return None, f"DSR not computed: {err}"
    return dsr, how
