"""Running the ``stevie`` CLI in tests: in-process through ``main(argv)`` or as a process of
its own, and what every run must show (exit codes, one ``stevie: error:`` line)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stevie_operator.cli import main
from support.paths import REPO

__all__ = ["CliResult", "ok", "one_error_line", "stevie", "stevie_process"]


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def stevie(capsys: pytest.CaptureFixture[str], *args: str | Path) -> CliResult:
    """``stevie ARGS...`` in-process through ``main(argv)``."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def stevie_process(cwd: Path, *args: str | Path) -> CliResult:
    """``python -m stevie_operator.cli ARGS...`` as a process of its own."""
    env = dict(os.environ)
    paths = [str(REPO / d) for d in ("api", "trainer", "operator")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "stevie_operator.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def ok(result: CliResult) -> None:
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "stevie:" not in result.err, result.err


def one_error_line(result: CliResult, *fragments: str) -> str:
    """Exit 1, nothing but one ``stevie: error:`` line on stderr naming every fragment."""
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err and "Traceback" not in result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("stevie: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line
