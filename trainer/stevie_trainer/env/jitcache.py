"""Keep numba's on-disk cache honest across modules.

numba's ``cache=True`` keys a cached function by the stamp (mtime and size) of the file
that defines it, and nothing else: a function that inlines or calls jitted code from
another module keeps running the old machine code after that module changes. (Found the
hard way: the evaluation loop in fastpolicy.py kept stepping the previous sim kernel.)
:func:`depends_on` adds the other modules' stamps to the function's own, so a change to any
of them makes the cached code stale and numba compiles it again.

:func:`seed_cache` copies a cache compiled at image build time into the cache directory of
this process (see the function for why numba cannot use the image's copy where it is).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["SEED_ENV", "depends_on", "seed_cache"]

SEED_ENV = "STEVIE_NUMBA_CACHE_SEED"


def _stamp(module: ModuleType) -> tuple[str, float, int]:
    path = Path(str(module.__file__))
    st = path.stat()
    return str(path), st.st_mtime, st.st_size


def depends_on(dispatcher: Any, *modules: ModuleType) -> None:
    """Invalidate ``dispatcher``'s cache whenever one of ``modules``' source changes.

    Uses numba's cache internals (``_cache._cache_file._source_stamp``, the value it compares
    with the one saved in the index); where they are absent (another numba, no cache) it
    does nothing, which is numba's own behaviour.
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    stamp = getattr(cache_file, "_source_stamp", None)
    if cache_file is None or stamp is None:
        return
    cache_file._source_stamp = (stamp, tuple(_stamp(m) for m in modules))


def seed_cache(environ: Mapping[str, str] = os.environ) -> int:
    """Copy the kernels compiled into ``$STEVIE_NUMBA_CACHE_SEED`` into ``$NUMBA_CACHE_DIR``
    (only the files not there yet); the number of files copied. Does nothing unless both are
    set and differ, or when the seed is missing or the cache directory cannot be written.

    Why a copy: numba uses a cache directory only if it can create a file in it (it checks
    when a cached function is defined, hit or miss), and a trainer pod's root file system is
    read-only: the image's baked cache would be passed over and every kernel compiled (~6 s
    per Job). The pod's /tmp is writable, so NUMBA_CACHE_DIR points there and the trainer
    fills it from the image here, before numba reads it (a few hundred kB, milliseconds).
    The index files carry the source stamps, so a copy is exactly as valid as the original.
    """
    seed, target = environ.get(SEED_ENV), environ.get("NUMBA_CACHE_DIR")
    if not seed or not target or Path(seed).resolve() == Path(target).resolve():
        return 0
    source = Path(seed)
    if not source.is_dir():
        return 0
    copied = 0
    try:
        for path in sorted(source.rglob("*")):
            dest = Path(target) / path.relative_to(source)
            if path.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            elif not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                partial = dest.with_name(f"{dest.name}.seed{os.getpid()}")
                shutil.copyfile(path, partial)
                partial.replace(dest)  # whole files only, for any other reader
                copied += 1
    except OSError:
        return copied  # numba falls back to its other cache locations (and compiles)
    return copied
