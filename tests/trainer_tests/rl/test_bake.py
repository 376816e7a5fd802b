"""The numba cache the trainer image bakes: every kernel compiled, and a pod uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stevie_trainer.rl.bake import cached_kernels
from support.specs import template


def test_the_kernels_to_bake_are_the_cached_ones_that_are_not_only_inlined() -> None:
    assert sorted(cached_kernels()) == [
        "stevie_trainer.env.kernel._obs_kernel",
        "stevie_trainer.env.kernel._reset_kernel",
        "stevie_trainer.env.kernel._step_kernel",
        "stevie_trainer.evaluation.fastpolicy._argmax",
        "stevie_trainer.evaluation.fastpolicy._episode",
    ]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *argv], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_a_trainer_started_from_the_baked_seed_compiles_nothing(tmp_path: Path) -> None:
    """As in a pod: NUMBA_CACHE_DIR is an empty folder, the seed is the image's baked cache."""
    seed = tmp_path / "baked"
    baked = _run(["-m", "stevie_trainer.rl.bake"], {"NUMBA_CACHE_DIR": str(seed)})
    assert "5 kernels compiled" in baked.stdout
    spec = json.dumps(template(totalTimesteps=512, evaluation={"evalFreq": 256}))
    pod = {"NUMBA_CACHE_DIR": str(tmp_path / "pod-tmp" / "numba-cache"),
           "STEVIE_NUMBA_CACHE_SEED": str(seed), "NUMBA_DEBUG_CACHE": "1"}  # fmt: skip
    done = _run(["-m", "stevie_trainer", "train", "--spec-json", spec,
                 "--out", str(tmp_path / "run")], pod)  # fmt: skip
    log = done.stdout + done.stderr
    assert "data saved" not in log, log[-3000:]  # no kernel compiled in the "pod"
    assert log.count("data loaded") >= 4, log[-3000:]  # sim and evaluation kernels were loaded
    assert (tmp_path / "run" / "result.json").exists()
