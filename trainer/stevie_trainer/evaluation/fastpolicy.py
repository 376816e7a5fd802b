"""Whole evaluation episodes of an MLP policy inside one numba kernel.

An evaluation pass decides one bar at a time (the observation depends on the position the
last decision took), so in Python every bar pays a policy call and a simulator call: ~55 us a
bar, 0.3 s for a 5,600-bar validation split -- as long as a short PBT interval's evaluation
bookkeeping may take. Here the greedy MLP (the policy's own weights: Linear layers with tanh
or ReLU between them, argmax of the last layer) and the simulator's step kernel run in one
compiled loop: ~5 us a bar.

The MLP is evaluated in float64 from the float32 weights and observations, so it is at least
as exact as torch's float32 forward pass; the two choose different actions only when the two
best outputs agree to float32 rounding (a test checks whole real episodes match).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from stevie_trainer.env import fastmath, kernel
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.jitcache import depends_on
from stevie_trainer.env.kernel import EQUITY, LEDGER_COLUMNS, _step_kernel

__all__ = ["ACTIVATIONS", "GreedyMLP", "run_episode"]

ACTIVATIONS = {"tanh": 0, "relu": 1}
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class GreedyMLP:
    """Flat float64 weights of an MLP: layer l maps sizes[l] -> sizes[l+1] with its weight
    (row-major, [out, in]) then its bias; ``activation`` between layers, none after the last."""

    weights: F64
    sizes: I64
    activation: int

    @classmethod
    def from_layers(
        cls, layers: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]], activation: str
    ) -> GreedyMLP:
        """From (weight [out, in], bias [out]) pairs, first layer first."""
        sizes = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]
        parts = [np.concatenate([w.astype(np.float64).ravel(), b.astype(np.float64)])
                 for w, b in layers]  # fmt: skip
        return cls(
            np.concatenate(parts), np.asarray(sizes, dtype=np.int64), ACTIVATIONS[activation]
        )

    def act(self, obs: npt.NDArray[np.float32]) -> int:
        """The greedy action for one observation (the kernel's own function)."""
        x = np.asarray(obs, dtype=np.float64).ravel()
        best: int = _argmax(x, self.weights, self.sizes, self.activation)
        return best


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _argmax(x: F64, weights: F64, sizes: I64, activation: int) -> int:
    offset = 0
    h = x
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        out = np.empty(n_out)
        for j in range(n_out):
            row = offset + j * n_in
            acc = 0.0
            for i in range(n_in):
                acc += weights[row + i] * h[i]
            out[j] = acc + weights[offset + n_out * n_in + j]
        offset += n_out * n_in + n_out
        if layer < n_layers - 1:
            for j in range(n_out):
                out[j] = np.tanh(out[j]) if activation == 0 else max(out[j], 0.0)
        h = out
    best = 0
    for j in range(1, h.shape[0]):
        if h[j] > h[best]:
            best = j
    return best


@numba.njit(cache=True, error_model="numpy")
def _episode(
    weights: F64,
    sizes: I64,
    activation: int,
    params: Any,
    market: Any,
    acct: F64,
    clock: I64,
    results: Any,
    obs: npt.NDArray[np.float32],
    equity: F64,
    ledger_out: F64,
) -> int:
    """Step account 0 greedily until ``len(equity) - 1`` steps or termination; returns the
    number of steps taken. ``obs`` holds the first observation and is overwritten."""
    actions = np.zeros(1, dtype=np.int64)
    x = np.empty(obs.shape[1])
    ledger = results[2]
    terminated = results[1][0]
    steps: int = equity.shape[0] - 1
    for k in range(steps):
        for j in range(obs.shape[1]):
            x[j] = obs[0, j]
        actions[0] = _argmax(x, weights, sizes, activation)
        _step_kernel(actions, params, market, acct, clock, results, obs)
        for c in range(ledger.shape[1]):
            ledger_out[k, c] = ledger[0, c]
        equity[k + 1] = acct[EQUITY]
        if terminated[0]:
            return k + 1
    return steps


# _episode inlines the sim kernel (and _argmax): its cache goes stale with kernel.py.
depends_on(_episode, kernel, fastmath)


def run_episode(mlp: GreedyMLP, acc: Accounts, steps: int) -> tuple[F64, F64, int]:
    """Run account 0 of ``acc`` (just reset) for up to ``steps`` steps: (equity [steps + 1],
    ledger [steps, LEDGER_COLUMNS], steps taken)."""
    equity = np.empty(steps + 1)
    equity[0] = 1.0
    ledger = np.empty((steps, LEDGER_COLUMNS))
    obs = acc.observe()
    done = _episode(
        mlp.weights,
        mlp.sizes,
        mlp.activation,
        acc._kernel_params,
        acc._market,
        acc._acct,
        acc._clock,
        acc._results,
        obs,
        equity,
        ledger,
    )
    return equity, ledger, int(done)
