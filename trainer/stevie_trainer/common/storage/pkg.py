"""The read-only ``pkg://<importable package>/<path inside it>`` backend: data shipped inside
an installed Python package, e.g. ``pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv``."""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

from stevie_trainer.common.storage._uri import Loc, StorageError
from stevie_trainer.common.storage.local import os_error

__all__ = ["delete", "exists", "list_uris", "local_path", "read_bytes", "write_bytes"]


def _traversable(loc: Loc) -> Traversable:
    try:
        root = importlib.resources.files(loc.package)
    except ModuleNotFoundError:
        raise StorageError(f"{loc.uri}: package {loc.package!r} is not installed") from None
    except (ImportError, TypeError) as exc:
        raise StorageError(f"{loc.uri}: cannot import package {loc.package!r}: {exc}") from None
    return root.joinpath(loc.inner) if loc.inner else root


def _read_only(loc: Loc) -> StorageError:
    return StorageError(f"{loc.uri}: pkg:// data is read-only")


def read_bytes(loc: Loc) -> bytes:
    """The packaged file's content."""
    item = _traversable(loc)
    if not item.is_file():
        raise StorageError(f"{loc.uri}: no such file")
    try:
        return item.read_bytes()
    except OSError as exc:
        raise os_error(loc.uri, exc) from None


def write_bytes(loc: Loc, data: bytes) -> None:
    """Refused: packaged data is read-only."""
    raise _read_only(loc)


def delete(loc: Loc) -> None:
    """Refused: packaged data is read-only."""
    raise _read_only(loc)


def exists(loc: Loc) -> bool:
    """Whether the package is installed and holds that file or folder."""
    try:
        item = _traversable(loc)
    except StorageError:
        return False
    return item.is_file() or item.is_dir()


def local_path(loc: Loc) -> Path | None:
    """The file-system path of the packaged file (None inside a zip)."""
    item = _traversable(loc)
    return item if isinstance(item, Path) else None


def list_uris(loc: Loc) -> list[str]:
    """Every packaged file under the folder, as pkg:// URIs, sorted."""
    out: list[str] = []

    def walk(item: Traversable, rel: str) -> None:
        if item.is_file():
            out.append(f"pkg://{loc.package}/{rel}".rstrip("/"))
        elif item.is_dir():
            for child in item.iterdir():
                walk(child, f"{rel}/{child.name}" if rel else child.name)

    walk(_traversable(loc), loc.inner)
    return sorted(out)
