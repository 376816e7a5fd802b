"""The probe of ``bench/cold_start.py``: runs the trainer inside the measured interpreter.

    python bench/_cold_probe.py OUT_FILE -- <trainer argv...>

It installs an import hook before anything measured is imported (so it imports the standard
library only), times the watched imports and the trainer's phases as exclusive spans, and
at the first environment step inside Stable-Baselines3's ``learn`` (the first ``on_step`` of
its callbacks) writes what it measured to OUT_FILE as JSON and exits at once.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

# Imports whose own time is reported (each exclusive of the others in this set).
WATCHED = (
    "stevie_api", "stevie_api.training", "stevie_api.pbt", "stevie_api.hpo",
    "stevie_api.ensemble", "stevie_api.kinds", "stevie_api.loader", "stevie_api.crd",
    "stevie_trainer", "stevie_trainer.__main__", "torch", "torch._dynamo", "stable_baselines3",
    "numba", "pandas", "pyarrow", "matplotlib", "scipy", "sympy", "optuna", "gym_anytrading",
    "gymnasium", "torch.utils.tensorboard", "boto3", "prometheus_client", "yaml", "pydantic",
)  # fmt: skip


class _Frames:
    """Exclusive time of nested, named spans (imports, phases, kernel compiles)."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [name, start, children's inclusive time]
        self.exclusive: dict[str, float] = {}

    def enter(self, name: str) -> None:
        self.stack.append([name, time.monotonic(), 0.0])

    def leave(self) -> None:
        name, start, children = self.stack.pop()
        took = time.monotonic() - start
        self.exclusive[name] = self.exclusive.get(name, 0.0) + took - children
        if self.stack:
            self.stack[-1][2] += took


class _Probe:
    """The patches applied to the probed modules as they load (see :attr:`patches`)."""

    def __init__(self, out_file: str) -> None:
        self.out_file = out_file
        self.frames = _Frames()
        self.counts = {"numba_loaded": 0, "numba_compiled": 0}
        self.started = time.monotonic()
        self.patches: dict[str, Callable[[Any], None]] = {
            "stable_baselines3.common.callbacks": self.first_step,
            "numba.core.dispatcher": self.kernels,
            "numba.core.caching": self.caching,
            "stevie_trainer.env.prepare": self.prepare,
            "stevie_trainer.env.vec": self.vec,
            "stevie_trainer.rl.agent": self.agent,
        }

    def timed(self, fn: Any, name: str) -> Any:
        """``fn``, its calls timed as the span ``name``."""
        frames = self.frames

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            frames.enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                frames.leave()

        return wrapper

    def report(self) -> None:
        """Write the measurements at the first training step, and end the process there."""
        now, frames = time.monotonic(), self.frames
        doc = {"first_step": now, "probe_started": self.started, "frames": frames.exclusive,
               "cpu": time.process_time(),
               "counts": self.counts, "open": [f[0] for f in frames.stack],
               "files": {m: str(getattr(sys.modules.get(m), "__file__", ""))
                         for m in ("stevie_trainer", "stevie_api")}}  # fmt: skip
        with open(self.out_file, "w") as f:  # noqa: PTH123  (the probe imports no pathlib)
            json.dump(doc, f)
        os._exit(0)

    def first_step(self, module: Any) -> None:
        cls, report = module.BaseCallback, self.report
        original = cls.on_step

        def on_step(callback: Any) -> bool:
            report()
            return bool(original(callback))  # unreachable

        cls.on_step = on_step

    def kernels(self, module: Any) -> None:
        """Time kernel compiles (or cache loads) as ``numba``, the outermost call only."""
        cls, frames = module.Dispatcher, self.frames
        compile_, depth = cls.compile, [0]

        def compile(dispatcher: Any, sig: Any) -> Any:
            depth[0] += 1
            if depth[0] == 1:
                frames.enter("numba")
            try:
                return compile_(dispatcher, sig)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    frames.leave()

        cls.compile = compile

    def caching(self, module: Any) -> None:
        """Count kernels loaded from the cache and kernels compiled (then saved to it)."""
        load, save, counts = module.Cache.load_overload, module.Cache.save_overload, self.counts

        def load_overload(cache: Any, *args: Any) -> Any:
            data = load(cache, *args)
            counts["numba_loaded"] += data is not None
            return data

        def save_overload(cache: Any, *args: Any) -> Any:
            counts["numba_compiled"] += 1
            return save(cache, *args)

        module.Cache.load_overload, module.Cache.save_overload = load_overload, save_overload

    def prepare(self, module: Any) -> None:
        module.prepare = self.timed(module.prepare, "data")

    def vec(self, module: Any) -> None:
        module.VecTradingEnv.__init__ = self.timed(module.VecTradingEnv.__init__, "env")

    def agent(self, module: Any) -> None:
        for name in ("build_model", "load_model"):
            setattr(module, name, self.timed(getattr(module, name), "model"))


class _Finder(importlib.abc.MetaPathFinder):
    """Times the watched imports and patches the probed modules as they load."""

    def __init__(self, probe: _Probe) -> None:
        self.probe = probe

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patch = self.probe.patches.get(name)
        if name not in WATCHED and patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module, frames = loader.exec_module, self.probe.frames

        def exec_and_patch(module: Any) -> None:
            if name in WATCHED:
                frames.enter(f"import {name}")
            try:
                exec_module(module)
            finally:
                if name in WATCHED:
                    frames.leave()
            if patch is not None:
                patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def probe(out_file: str, argv: list[str]) -> None:
    """Run ``python -m stevie_trainer <argv>`` here, measured, until its first step."""
    measured = _Probe(out_file)
    sys.meta_path.insert(0, _Finder(measured))
    sys.argv = ["stevie_trainer", *argv]
    measured.frames.enter("run")
    runpy.run_module("stevie_trainer", run_name="__main__", alter_sys=True)
    raise SystemExit(f"{argv[0]} ended before its first training step")


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        raise SystemExit(__doc__)
    probe(sys.argv[1], sys.argv[3:])
