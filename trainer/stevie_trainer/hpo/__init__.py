"""Hyperparameter optimisation with Optuna: the study protocol (torch-free, shared with the
operator), trial workers, significance tests, reports and the finish step."""

from __future__ import annotations

STORAGE_ENV = "STEVIE_HPO_STORAGE"
"""Environment variable holding the study storage (an RDB URL from a Secret stays out of
the trainer's arguments, which show in ``kubectl describe`` and ``ps``)."""
