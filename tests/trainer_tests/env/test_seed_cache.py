"""seed_cache: the image's baked numba cache copied into the pod's writable cache folder."""

from __future__ import annotations

from pathlib import Path

from stevie_trainer.env.jitcache import SEED_ENV, seed_cache


def _seed(root: Path) -> Path:
    seed = root / "seed"
    (seed / "env_abc").mkdir(parents=True)
    (seed / "env_abc" / "kernel._step_kernel-205.py311.nbi").write_bytes(b"index")
    (seed / "env_abc" / "kernel._step_kernel-205.py311.1.nbc").write_bytes(b"code")
    return seed


def test_copies_the_seed_into_the_cache_folder(tmp_path: Path) -> None:
    seed, cache = _seed(tmp_path), tmp_path / "tmp" / "numba-cache"
    assert seed_cache({SEED_ENV: str(seed), "NUMBA_CACHE_DIR": str(cache)}) == 2
    got = {p.relative_to(cache).as_posix(): p.read_bytes() for p in cache.rglob("*.nb*")}
    assert got == {"env_abc/kernel._step_kernel-205.py311.nbi": b"index",
                   "env_abc/kernel._step_kernel-205.py311.1.nbc": b"code"}  # fmt: skip
    assert not [p for p in cache.rglob("*") if ".seed" in p.name]  # no partial files left


def test_keeps_what_the_cache_already_has(tmp_path: Path) -> None:
    """A kernel this pod compiled (or a second process's copy) is never overwritten."""
    seed, cache = _seed(tmp_path), tmp_path / "cache"
    (cache / "env_abc").mkdir(parents=True)
    (cache / "env_abc" / "kernel._step_kernel-205.py311.nbi").write_bytes(b"newer index")
    assert seed_cache({SEED_ENV: str(seed), "NUMBA_CACHE_DIR": str(cache)}) == 1
    assert (cache / "env_abc" / "kernel._step_kernel-205.py311.nbi").read_bytes() == b"newer index"
    assert seed_cache({SEED_ENV: str(seed), "NUMBA_CACHE_DIR": str(cache)}) == 0


def test_does_nothing_without_both_folders_or_with_one_folder(tmp_path: Path) -> None:
    seed = _seed(tmp_path)
    assert seed_cache({}) == 0
    assert seed_cache({SEED_ENV: str(seed)}) == 0
    assert seed_cache({"NUMBA_CACHE_DIR": str(tmp_path / "c")}) == 0
    assert seed_cache({SEED_ENV: str(seed), "NUMBA_CACHE_DIR": str(seed)}) == 0
    missing = {SEED_ENV: str(tmp_path / "absent"), "NUMBA_CACHE_DIR": str(tmp_path / "c")}
    assert seed_cache(missing) == 0
    assert not (tmp_path / "c").exists()


def test_a_cache_folder_it_cannot_create_is_left_to_numba(tmp_path: Path) -> None:
    """numba then falls back to its other cache locations: the trainer must not fail."""
    seed = _seed(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert seed_cache({SEED_ENV: str(seed), "NUMBA_CACHE_DIR": str(blocker / "cache")}) == 0
