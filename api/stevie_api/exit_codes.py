"""The trainer's exit codes: what a trainer process says failed, in one place for both sides.

``python -m stevie_trainer`` exits with them (:func:`stevie_trainer.common.errors.exit_code`
maps an exception to its code); the operator's Jobs fail at once on the codes no retry can
fix (their ``podFailurePolicy``, :data:`FAIL_JOB`), instead of spending ``backoffLimit`` on
them, and the operator says which kind of failure it was in the resource's message
(:func:`describe`). A crash (1) and anything the kernel or kubelet decided (137 OOMKilled,
143 SIGTERM) is retried from the latest checkpoint.

Codes 0-2 follow the Unix and Python conventions (2 is argparse's usage error); 3 to 5 are
Stevie's; 130 is 128 + SIGINT.
"""

from __future__ import annotations

__all__ = [
    "BAD_INPUT",
    "CONFLICT",
    "CRASH",
    "FAIL_JOB",
    "INTERRUPTED",
    "OK",
    "TRIAL_FAILED",
    "USAGE",
    "describe",
]

OK = 0
"""The work is complete (a rerun with the same ``--out`` finds it done)."""

CRASH = 1
"""Anything unexpected (a bug, a transient storage or network error): retried, resuming."""

USAGE = 2
"""The command line is wrong (argparse): the operator and the trainer image disagree on a
command or flag (different versions). A retry runs the same command: fail at once."""

BAD_INPUT = 3
"""The input is unusable: an invalid spec, unusable data (a missing or malformed file), a bad
storage URI, missing credentials or access, an unusable ensemble member. Deterministic: a
retry fails the same way, so the Job fails at once."""

CONFLICT = 4
"""The input is valid but clashes with work already in storage: ``--out`` holds a run of
another spec, the Optuna storage holds the study with another search space. Retrying cannot
help and must not overwrite the work: the Job fails at once."""

TRIAL_FAILED = 5
"""An HPO trial ran and failed (it raised, or its objective was not a number), and the study
recorded it as FAIL: the study has its outcome, and a rerun would find it failed. Not retried.
"""

INTERRUPTED = 130
"""Interrupted (SIGINT, Ctrl-C): checkpoints are kept; the same command resumes."""

FAIL_JOB: tuple[int, ...] = (USAGE, BAD_INPUT, CONFLICT, TRIAL_FAILED)
"""The codes on which a trainer Job fails at once (``podFailurePolicy`` ``FailJob``)."""

_PHRASES = {
    OK: "succeeded",
    CRASH: "crashed",
    USAGE: "was started with a command line it does not understand (operator and trainer "
    "image of different versions?)",
    BAD_INPUT: "refused its input",
    CONFLICT: "found other work in its output location",
    TRIAL_FAILED: "ran a trial that failed (recorded in the study)",
    INTERRUPTED: "was interrupted",
    137: "was killed (SIGKILL: out of memory, or its grace period ran out)",
    143: "was terminated (SIGTERM)",
}


def describe(code: int) -> str:
    """What the trainer did, as a verb phrase: ``the trainer {describe(3)} (exit 3)``."""
    if code in _PHRASES:
        return _PHRASES[code]
    if code > 128:
        return f"was killed by signal {code - 128}"
    return "failed"
