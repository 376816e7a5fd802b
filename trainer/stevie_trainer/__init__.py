"""Stevie's trainer: data, features, trading environments, metrics, baselines, training."""

from __future__ import annotations

__version__ = "0.1.0"
