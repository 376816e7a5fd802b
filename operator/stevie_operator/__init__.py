"""Stevie's operator and command-line interface."""

from __future__ import annotations
