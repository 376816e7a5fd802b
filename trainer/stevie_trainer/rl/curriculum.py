"""Curriculum over realised-volatility regimes of the training split, easiest first.

Three steps, all pure and cheap (vectorised over the whole split):

1. :func:`label_regimes` labels each bar of the training split with a regime 0..3 (stable,
   moderate, high_volatility, turbulent) by the quartiles of realised volatility (the rolling
   std of log returns, :attr:`stevie_trainer.data.features.Indicators.volatility`), the quartiles
   computed from bars inside the training split only.
2. :func:`stage_starts` lists, per regime, the episode start bars whose episode window is
   dominated (median label) by that regime; :func:`cumulative_starts` lists, per regime k, the
   starts of regimes 0..k.
3. :class:`Curriculum` holds the current stage, promotes by score or by step budget, keeps a
   history, and round-trips through a JSON-serialisable ``state_dict`` for checkpoints.

Which start lists to train on: **cumulative** (stage k samples episodes from regimes 0..k,
:meth:`Curriculum.active_regimes` with ``cumulative=True``). Reasons: training on one regime
at a time makes the policy forget the calmer regimes it has already learnt (and calm bars are
most of what it will trade); the last stage then covers the whole training split, i.e. the
distribution that validation and test come from, so the model selected at the end was
trained on it; and each stage's pool only grows, so a thin regime (few windows) never leaves
the agent with a handful of repeated episodes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from stevie_api.techniques import DEFAULT_STAGES, CurriculumSpec

__all__ = [
    "Curriculum",
    "cumulative_starts",
    "label_regimes",
    "regime_edges",
    "stage_starts",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_STATE_VERSION = 1


def regime_edges(
    volatility: npt.ArrayLike, bounds: tuple[int, int], n_stages: int = 4
) -> FloatArray:
    """The ``n_stages - 1`` inner quantiles of realised volatility over bars in ``bounds``
    (half-open ``[lo, hi)``), ignoring NaN (the warm-up)."""
    if n_stages < 1:
        raise ValueError(f"n_stages must be >= 1 (got {n_stages})")
    vol = np.asarray(volatility, dtype=np.float64)
    lo, hi = bounds
    if not 0 <= lo < hi <= len(vol):
        raise ValueError(f"bounds {bounds} outside the {len(vol)} bars")
    inside = vol[lo:hi]
    inside = inside[np.isfinite(inside)]
    if inside.size == 0:
        raise ValueError(f"no defined volatility inside bounds {bounds} (all warm-up)")
    return np.quantile(inside, np.arange(1, n_stages) / n_stages).astype(np.float64)


def label_regimes(
    volatility: npt.ArrayLike,
    bounds: tuple[int, int],
    n_stages: int = 4,
    *,
    edges: npt.ArrayLike | None = None,
) -> IntArray:
    """Regime label per bar: 0 (calmest quantile) .. ``n_stages - 1`` (most turbulent).

    The result has one entry per bar of ``volatility`` (so it indexes like the market); bars
    outside ``bounds`` and bars with NaN volatility (the warm-up) are ``-1``. The quantile
    edges come from bars inside ``bounds`` only (:func:`regime_edges`), unless ``edges`` are
    given (e.g. the original training split's, to label an augmented copy on the same scale).
    """
    vol = np.asarray(volatility, dtype=np.float64)
    cuts = (
        regime_edges(vol, bounds, n_stages)
        if edges is None
        else np.asarray(edges, dtype=np.float64)
    )
    if cuts.shape != (n_stages - 1,):
        raise ValueError(f"expected {n_stages - 1} edges, got {cuts.shape}")
    lo, hi = bounds
    labels = np.full(len(vol), -1, dtype=np.int64)
    inside = vol[lo:hi]
    defined = np.isfinite(inside)
    labels[lo:hi][defined] = np.searchsorted(cuts, inside[defined], side="right")
    return labels


def _window_sums(x: npt.NDArray[Any], length: int) -> npt.NDArray[Any]:
    """Sums of ``x[s : s + length]`` for every s with a full window."""
    c: npt.NDArray[Any] = np.concatenate([np.zeros(1, dtype=x.dtype), np.cumsum(x)])
    out: npt.NDArray[Any] = c[length:] - c[:-length]
    return out


def stage_starts(
    labels: npt.ArrayLike,
    first: int,
    last: int,
    episode_length: int,
    n_stages: int = 4,
    *,
    fallback: bool = True,
) -> list[IntArray]:
    """For each regime, the episode start bars whose window is dominated by it.

    Starts range over ``[first, last - length]`` with ``length = min(episode_length,
    last - first)`` (as :class:`stevie_trainer.env.trading.EpisodePlanner` clamps it; pass its
    ``first``, ``last`` and ``length``). A start's window is bars ``[s, s + length)``; its
    dominant label is the (lower) median label of the window; windows holding an unlabelled
    bar (-1) are skipped. Stages partition the valid starts.

    Long episodes average regimes out, so the extreme regimes may dominate no window at all.
    With ``fallback`` (the default), an empty regime k gets instead the quarter
    (``1 / n_stages``) of valid starts whose window-mean label is closest to k: the calmest
    or most turbulent windows there are. Without it, such a regime's array is empty.
    """
    lab = np.asarray(labels, dtype=np.int64)
    length = min(episode_length, last - first)
    if first < 0 or last >= len(lab) or length < 1:
        raise ValueError(
            f"need 0 <= first < last < {len(lab)} (got first={first}, last={last}, "
            f"episode_length={episode_length})"
        )
    window = lab[first:last]  # bars [first, last): every window [s, s+length) inside it
    starts = np.arange(first, last - length + 1, dtype=np.int64)
    valid = _window_sums((window < 0).astype(np.int64), length) == 0
    # Lower median of integer labels: the smallest k with #(label <= k) >= ceil(length / 2).
    need = (length + 1) // 2
    dominant = np.full(len(starts), n_stages - 1, dtype=np.int64)
    decided = np.zeros(len(starts), dtype=bool)
    for k in range(n_stages - 1):
        at_most_k = _window_sums(((window >= 0) & (window <= k)).astype(np.int64), length)
        here = ~decided & (at_most_k >= need)
        dominant[here] = k
        decided |= here
    result = [starts[valid & (dominant == k)] for k in range(n_stages)]
    if fallback and valid.any():
        mean = _window_sums(np.where(window >= 0, window, 0), length) / length
        pool, pool_mean = starts[valid], mean[valid]
        quota = max(1, len(pool) // n_stages)
        for k in range(n_stages):
            if len(result[k]) == 0:
                nearest = np.argsort(np.abs(pool_mean - k), kind="stable")[:quota]
                result[k] = np.sort(pool[nearest])
    return result


def cumulative_starts(
    labels: npt.ArrayLike,
    first: int,
    last: int,
    episode_length: int,
    n_stages: int = 4,
    *,
    fallback: bool = True,
) -> list[IntArray]:
    """Entry k: the sorted union of :func:`stage_starts` of regimes 0..k (the trainer's
    choice, see the module docstring); the last entry holds every valid start."""
    per_stage = stage_starts(labels, first, last, episode_length, n_stages, fallback=fallback)
    out: list[IntArray] = []
    acc = np.zeros(0, dtype=np.int64)
    for starts in per_stage:
        acc = np.union1d(acc, starts).astype(np.int64)
        out.append(acc)
    return out


class Curriculum:
    """The current stage of a :class:`CurriculumSpec` and its promotion rule.

    - ``promotion="score"``: promote once at least ``window_episodes`` episodes were scored
      in the current stage and the mean of the last ``window_episodes`` reaches
      ``score_threshold``. The spec has no step cap for this rule; the trainer may pass
      ``max_steps_per_stage`` so a stage that is never passed does not stall the run.
    - ``promotion="steps"``: promote after ``steps_per_stage`` timesteps in a stage (default:
      ``total_timesteps // len(stages)``, so ``total_timesteps`` is then required).

    :meth:`advance` promotes at most one stage per call; call it after every rollout with the
    total timesteps done. Stages are the spec's names; :attr:`regime` maps the current stage
    to its regime label (``DEFAULT_STAGES`` index) for :func:`stage_starts`.
    """

    def __init__(
        self,
        spec: CurriculumSpec,
        *,
        total_timesteps: int | None = None,
        max_steps_per_stage: int | None = None,
        start_timestep: int = 0,
    ) -> None:
        self.spec = spec
        self.stages: list[str] = list(spec.stages)
        self.regimes: list[int] = [DEFAULT_STAGES.index(s) for s in spec.stages]
        self.steps_per_stage: int | None = None
        if spec.promotion == "steps":
            if spec.steps_per_stage is not None:
                self.steps_per_stage = spec.steps_per_stage
            elif total_timesteps is not None:
                self.steps_per_stage = max(1, total_timesteps // len(self.stages))
            else:
                raise ValueError(
                    "curriculum promotion 'steps' needs stepsPerStage or the run's totalTimesteps"
                )
        if max_steps_per_stage is not None and max_steps_per_stage < 1:
            raise ValueError(f"max_steps_per_stage must be >= 1 (got {max_steps_per_stage})")
        self.max_steps_per_stage = max_steps_per_stage
        self._stage = 0
        self._entered_at = start_timestep
        self._episodes = 0
        self._scores: deque[float] = deque(maxlen=spec.window_episodes)
        self._done: list[dict[str, Any]] = []

    # --- state ---------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        """Index of the current stage in the spec's ``stages``."""
        return self._stage

    @property
    def stage_name(self) -> str:
        return self.stages[self._stage]

    @property
    def regime(self) -> int:
        """Regime label (0 stable .. 3 turbulent) of the current stage."""
        return self.regimes[self._stage]

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    @property
    def finished(self) -> bool:
        """True once the last stage is reached (it is trained on until the run ends)."""
        return self._stage == len(self.stages) - 1

    @property
    def mean_score(self) -> float | None:
        """Mean of the last ``window_episodes`` episode scores of this stage (None if none)."""
        return float(np.mean(self._scores)) if self._scores else None

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per stage entered so far, the current one last (``left_at_timestep``,
        ``reason`` and ``mean_score`` at promotion are None while it is current)."""
        return [dict(r) for r in self._done] + [self._record(None, None)]

    def active_regimes(self, cumulative: bool = True) -> list[int]:
        """Regimes to sample episodes from now: the current stage's and (cumulative, the
        recommended default) those of every earlier stage."""
        return sorted(self.regimes[: self._stage + 1]) if cumulative else [self.regime]

    def starts(self, per_regime: list[IntArray], cumulative: bool = True) -> IntArray:
        """Episode starts for the current stage from :func:`stage_starts`' per-regime lists."""
        chosen = [per_regime[r] for r in self.active_regimes(cumulative)]
        return np.unique(np.concatenate(chosen)).astype(np.int64)

    # --- updates -------------------------------------------------------------------------
    def record_episode(self, score: float) -> None:
        """Count one finished episode of the current stage with its score (e.g. its return)."""
        value = float(score)
        if not np.isfinite(value):
            raise ValueError(f"episode score must be finite (got {score})")
        self._episodes += 1
        self._scores.append(value)

    def advance(self, timesteps_done: int) -> bool:
        """Promote to the next stage if the rule says so; True when promoted."""
        if self.finished:
            return False
        in_stage = timesteps_done - self._entered_at
        reason: str | None = None
        if self.spec.promotion == "steps":
            assert self.steps_per_stage is not None
            if in_stage >= self.steps_per_stage:
                reason = "steps"
        else:
            mean = self.mean_score
            full = len(self._scores) >= self.spec.window_episodes
            if full and mean is not None and mean >= self.spec.score_threshold:
                reason = "score"
            elif self.max_steps_per_stage is not None and in_stage >= self.max_steps_per_stage:
                reason = "max_steps"
        if reason is None:
            return False
        self._done.append(self._record(timesteps_done, reason))
        self._stage += 1
        self._entered_at = timesteps_done
        self._episodes = 0
        self._scores.clear()
        return True

    def _record(self, left_at: int | None, reason: str | None) -> dict[str, Any]:
        return {
            "stage": self.stage_name,
            "index": self._stage,
            "entered_at_timestep": self._entered_at,
            "left_at_timestep": left_at,
            "episodes": self._episodes,
            "mean_score": self.mean_score if left_at is not None else None,
            "reason": reason,
        }

    # --- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (goes into checkpoints)."""
        return {
            "version": _STATE_VERSION,
            "stages": list(self.stages),
            "stage": self._stage,
            "entered_at_timestep": self._entered_at,
            "episodes": self._episodes,
            "scores": [float(s) for s in self._scores],
            "history": [dict(r) for r in self._done],
            "steps_per_stage": self.steps_per_stage,
            "max_steps_per_stage": self.max_steps_per_stage,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the stages must match this curriculum's."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported curriculum state version {state.get('version')!r}")
        if list(state["stages"]) != self.stages:
            raise ValueError(
                f"checkpoint curriculum stages {state['stages']} differ from the spec's "
                f"{self.stages}"
            )
        stage = int(state["stage"])
        if not 0 <= stage < len(self.stages):
            raise ValueError(f"checkpoint curriculum stage {stage} out of range")
        self._stage = stage
        self._entered_at = int(state["entered_at_timestep"])
        self._episodes = int(state["episodes"])
        self._scores = deque((float(s) for s in state["scores"]), maxlen=self.spec.window_episodes)
        self._done = [dict(r) for r in state["history"]]
        self.steps_per_stage = state["steps_per_stage"]
        self.max_steps_per_stage = state["max_steps_per_stage"]
