"""numba's cache and code in other modules: stale without depends_on, fresh with it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CALLER = """
import numba
import callee
from stevie_trainer.env.jitcache import depends_on

@numba.njit(cache=True)
def outer():
    return callee.inner() * 10

if {track}:
    depends_on(outer, callee)
"""


def _run(folder: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import caller; print(caller.outer())"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def _write_callee(folder: Path, value: int, stamp: float) -> None:
    path = folder / "callee.py"
    path.write_text(f"import numba\n\n@numba.njit(cache=True)\ndef inner():\n    return {value}\n")
    os.utime(path, (stamp, stamp))


@pytest.mark.parametrize("track", [False, True])
def test_a_cached_caller_sees_a_changed_callee_only_with_depends_on(
    tmp_path: Path, track: bool
) -> None:
    (tmp_path / "caller.py").write_text(textwrap.dedent(CALLER.format(track=track)))
    _write_callee(tmp_path, 1, 1_700_000_000.0)
    assert _run(tmp_path) == 10  # compiled and cached
    _write_callee(tmp_path, 2, 1_700_000_100.0)
    # numba's own behaviour: the caller's cache still holds the old callee's code.
    assert _run(tmp_path) == (20 if track else 10)
