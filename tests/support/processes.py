"""Helpers for tests that drive CLI processes."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn``: SIGINT back to its default in the child. A test run started in the
    background (``cmd &``) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt: Ctrl-C tests would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
