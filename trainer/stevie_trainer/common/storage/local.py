"""The local file system backend: plain paths and ``file:///abs/path`` (a PVC mount or a
local folder). Writes go to a temporary file in the same folder, are fsynced and renamed
over the target, so a crash never leaves a torn file."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from stevie_trainer.common.storage._uri import TMP_MARK, Loc, StorageError, describe

__all__ = ["delete", "exists", "list_uris", "os_error", "read_bytes", "write_bytes"]


def os_error(where: str, exc: OSError) -> StorageError:
    """``exc`` as one line naming ``where``."""
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"{where}: no such file")
    if isinstance(exc, IsADirectoryError):
        return StorageError(f"{where}: is a directory, not a file")
    if isinstance(exc, NotADirectoryError):
        return StorageError(f"{where}: a parent of this path is not a folder")
    if isinstance(exc, PermissionError):
        return StorageError(f"{where}: permission denied")
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{where}: no space left on device")
    if exc.errno == errno.EROFS:
        return StorageError(f"{where}: read-only file system")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StorageError(f"{where}: {reason}")


def _path(loc: Loc) -> Path:
    assert loc.path is not None
    return loc.path


def read_bytes(loc: Loc) -> bytes:
    """The file's content."""
    try:
        return _path(loc).read_bytes()
    except OSError as exc:
        raise os_error(describe(loc.uri), exc) from None


def _write_file(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path`` (fsynced), returned."""
    tmp = path.parent / f"{TMP_MARK}{path.name}.{secrets.token_hex(6)}"
    # os.open applies the process umask to 0o666, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, path.stat().st_mode & 0o7777)  # keep an existing file's mode
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)
    return tmp


def write_bytes(loc: Loc, data: bytes) -> None:
    """Write ``data`` atomically (temporary file + rename), creating folders as needed."""
    path, where = _path(loc), describe(loc.uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(f"{where}: a parent of this path is not a folder") from None
    except OSError as exc:
        raise os_error(f"{where} (creating its folder)", exc) from None
    try:
        tmp = _write_file(path, data)
    except OSError as exc:
        raise os_error(where, exc) from None
    try:
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise os_error(where, exc) from None
    # Make the rename itself durable (best effort: not every file system allows it).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def exists(loc: Loc) -> bool:
    """Whether a file or folder exists there."""
    return _path(loc).exists()


def _uri(loc: Loc, path: Path) -> str:
    return f"file://{path}" if loc.file_uri else str(path)


def list_uris(loc: Loc) -> list[str]:
    """Every file under the folder (recursively), as URIs of the same form, sorted."""
    root = _path(loc)
    if root.is_file():
        return [_uri(loc, root)]
    if not root.is_dir():
        return []
    try:
        found = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(TMP_MARK)]
    except OSError as exc:
        raise os_error(describe(loc.uri), exc) from None
    return sorted(_uri(loc, p) for p in found)


def delete(loc: Loc) -> None:
    """Delete the file; an absent one is not an error."""
    try:
        _path(loc).unlink(missing_ok=True)
    except OSError as exc:
        raise os_error(describe(loc.uri), exc) from None
