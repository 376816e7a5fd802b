"""The per-bar validation returns a trainer leaves beside a model, for DSR and PBO.

An HPO trial's seed (``validation_returns.npy`` in its folder, per fold for walk-forward)
and a PBT interval (in ``members/m<M>/i<I>/``) each store the per-bar returns of their
selected model on the validation window, as a float64 ``.npy`` (8 bytes a bar, no
pickle), read back by :mod:`stevie_trainer.hpo.luck` and :mod:`stevie_trainer.pbt.luck`.
NumPy only: a PBT interval imports this without optuna.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

__all__ = ["RETURNS_FILE", "decode_returns", "encode_returns"]

RETURNS_FILE = "validation_returns.npy"


def encode_returns(returns: npt.ArrayLike) -> bytes:
    """Per-bar returns as a .npy file (float64, 8 bytes a bar)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(returns, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def decode_returns(data: bytes) -> npt.NDArray[np.float64]:
    """The series of :func:`encode_returns` (1-d float64)."""
    values = np.load(io.BytesIO(data), allow_pickle=False)
    return np.asarray(values, dtype=np.float64).reshape(-1)
