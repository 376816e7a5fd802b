"""Compile every cached numba kernel into ``$NUMBA_CACHE_DIR``.

``python -m stevie_trainer.rl.bake``: the trainer image runs it at build time, so that a
trainer pod loads the simulator and evaluation kernels from the cache instead of compiling
them (~6 s of every Job's start). It trains two tiny TrainingRuns on the data bundled with
gym-anytrading -- PPO with behaviour cloning, augmentation and the curriculum, and DQN -- each
with validation (the compiled greedy-policy episodes) and the test backtest beside the
baselines: the real code paths call each kernel with the argument types a real run passes.
numba caches one machine code per type signature, so calling a kernel any other way would
leave the signature a pod needs uncompiled. Then it checks that every cached kernel of
the trainer (all but the ones only ever inlined into others) has at least one signature,
and exits 1 naming any that has none.
"""

from __future__ import annotations

import sys
import tempfile
from typing import Any

from stevie_api.training import TrainingRunSpec

__all__ = ["KERNEL_MODULES", "bake", "cached_kernels", "main"]

# The modules that define numba kernels with cache=True.
KERNEL_MODULES = (
    "stevie_trainer.env.fastmath",
    "stevie_trainer.env.kernel",
    "stevie_trainer.evaluation.fastpolicy",
)

_DATA = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"


def _spec(algorithm: str) -> TrainingRunSpec:
    doc: dict[str, Any] = {
        "data": {"uri": _DATA, "barsPerYear": 252},
        "env": {"episodeLength": 200},
        "algorithm": algorithm,
        "policy": {"netArch": [16, 16]},
        "totalTimesteps": 512,
        "nEnvs": 4,
        "evaluation": {"evalFreq": 256},
    }
    if algorithm == "PPO":  # behaviour cloning is PPO's only
        doc["ppo"] = {"nSteps": 64, "batchSize": 64, "nEpochs": 1}
        doc["behaviourCloning"] = {"enabled": True, "epochs": 1}
        doc["augmentation"] = {"enabled": True}
        doc["curriculum"] = {"enabled": True}
    return TrainingRunSpec.model_validate(doc, by_alias=True, by_name=False)


def cached_kernels() -> dict[str, Any]:
    """Every dispatcher of :data:`KERNEL_MODULES` that caches, by ``module.name``, except
    those marked ``inline="always"`` (compiled only inside their callers)."""
    import importlib

    found: dict[str, Any] = {}
    seen: set[int] = set()
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            cache = getattr(value, "_cache", None)
            options = getattr(value, "targetoptions", None)
            if cache is None or options is None or type(cache).__name__ == "NullCache":
                continue
            if getattr(value, "__module__", None) != name or id(value) in seen:
                continue  # imported from another module, or another name of one
            seen.add(id(value))
            if options.get("inline", "never") != "always":
                found[f"{name}.{attr}"] = value
    return found


def bake() -> list[str]:
    """Run the tiny trainings; the cached kernels that still have no compiled signature."""
    from stevie_trainer.rl.train import train

    for algorithm in ("PPO", "DQN"):
        with tempfile.TemporaryDirectory(prefix="stevie-bake-") as out:
            train(_spec(algorithm), out, log=lambda _: None)
    return sorted(name for name, kernel in cached_kernels().items() if not kernel.signatures)


def main() -> int:
    missing = bake()
    for name in missing:
        print(f"stevie bake: error: {name} was not compiled (no run called it)", file=sys.stderr)
    if not missing:
        print(f"stevie bake: {len(cached_kernels())} kernels compiled into the cache")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
