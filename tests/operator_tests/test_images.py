"""What each image can import, checked at run time in a fresh interpreter (import-linter
checks the static imports in ``make lint``; this also catches imports made at run time):
the operator image has no torch, SB3, gymnasium or numba; the trainer image has no kopf."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
