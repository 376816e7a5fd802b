"""What each image can import, checked at run time in a fresh interpreter (import-linter
checks the static imports in ``make lint``; this also catches imports made at run time):
the operator image has no torch, SB3, gymnasium or numba; the trainer image has no kopf."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.paths import REPO

BLOCK = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked}:
            raise ImportError(f"{{name}} is not in this image")
sys.meta_path.insert(0, Block())
{code}
"""


def run_blocked(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK.format(blocked=sorted(blocked), code=code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_the_operator_runs_without_torch_sb3_gymnasium_or_numba() -> None:
    code = """
import stevie_operator.app
from stevie_api.common import utcnow
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.kinds.pbtpopulation.reconcile import Observed
from stevie_operator.registry import KINDS
body = {"apiVersion": "stevie.dev/v1alpha1", "kind": "PBTPopulation",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"template": {"data": {"uri": "pkg://x/y.csv"}}, "populationSize": 4}}
plan = KINDS["PBTPopulation"].plan(body, Observed(now=utcnow()), OperatorConfig())
print(sorted(KINDS), plan.phase, len(plan.children))
"""
    done = run_blocked({"torch", "stable_baselines3", "gymnasium", "numba"}, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["Running", "2"], done.stdout  # a plan, two Jobs


@pytest.mark.parametrize("package", ["stevie_trainer", "stevie_api"])
def test_the_trainer_imports_without_kopf(package: str) -> None:
    code = f"""
import importlib, pkgutil
import {package}
names = [m.name for m in pkgutil.walk_packages({package}.__path__, "{package}.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""
    done = run_blocked({"kopf", "aiohttp", "stevie_operator"}, code)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= (40 if package == "stevie_trainer" else 10)


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_images_pin_every_dependency_and_the_same_torch() -> None:
    """The Dockerfiles install with ``-c constraints.lock``: every package an image's extras
    name is pinned there (an unpinned one would float between two builds of one commit), and
    torch at the version ``make setup`` pins."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _pins(REPO / "constraints.lock")
    wanted = [*project["dependencies"], *project["optional-dependencies"]["trainer"],
              *project["optional-dependencies"]["operator"]]  # fmt: skip
    missing = [r for r in wanted if canonicalize_name(Requirement(r).name) not in lock]
    assert not missing, f"not pinned in constraints.lock (run `make lock`): {missing}"
    for requirement in map(Requirement, wanted):  # the pins satisfy pyproject's ranges
        pinned = lock[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)
    assert lock["torch"] == _pins(REPO / "constraints.txt")["torch"]
    for dockerfile in ("Dockerfile.trainer", "Dockerfile.operator"):
        text = (REPO / dockerfile).read_text()
        installs = [line for line in text.splitlines() if "pip install" in line]
        assert installs and all("-c constraints.lock" in line for line in installs), dockerfile
