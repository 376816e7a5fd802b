"""Keep numba's on-disk cache honest across modules.

numba's ``cache=True`` keys a cached function by the stamp (mtime and size) of the file
that defines it, and nothing else: a function that inlines or calls jitted code from
another module keeps running the old machine code after that module changes. (Found the
hard way: the evaluation loop in fastpolicy.py kept stepping the previous sim kernel.)
:func:`depends_on` adds the other modules' stamps to the function's own, so a change to any
of them makes the cached code stale and numba compiles it again.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["depends_on"]


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
