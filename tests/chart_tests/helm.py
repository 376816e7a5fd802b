"""Helm for the chart tests: where the binary is, and the chart rendered as Python objects.

``make setup`` installs Helm into the virtualenv (scripts/install_helm.py). Without it the
tests that need it skip, saying how to get it; with ``STEVIE_REQUIRE_HELM`` set (CI) they
fail instead, so they cannot vanish from a green build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stevie"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "stevie-system"


def helm_binary() -> str | None:
    """The virtualenv's helm (next to this Python), else one on PATH."""
    local = Path(sys.executable).parent / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def require_helm() -> str:
    """The helm binary; skip (or fail under STEVIE_REQUIRE_HELM) when there is none."""
    found = helm_binary()
    if found is None:
        message = "helm not found: run `make setup` (python scripts/install_helm.py)"
        if os.environ.get("STEVIE_REQUIRE_HELM"):
            pytest.fail(f"{message}; STEVIE_REQUIRE_HELM is set")
        pytest.skip(message)
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with ``args``; ``check``: fail the test on a non-zero exit, showing stderr."""
    done = subprocess.run(
        [require_helm(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def value_args(values: Iterable[Path] = (), sets: Mapping[str, str] | None = None) -> list[str]:
    """``-f`` and ``--set`` options."""
    args: list[str] = []
    for path in values:
        args += ["-f", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def render(
    values: Iterable[Path] = (),
    sets: Mapping[str, str] | None = None,
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart (hooks included), every object parsed."""
    args = ["template", "stevie", str(chart), "--namespace", NAMESPACE]
    out = helm(*args, *value_args(values, sets)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [o for o in objects if o.get("kind") == kind]


def one(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one object of ``kind``."""
    found = by_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
