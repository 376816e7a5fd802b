"""One storage interface over URIs: local paths, ``file://``, ``s3://`` and ``pkg://``.

- plain path (``runs/x/model.zip``, ``/data/btc.csv``) and ``file:///abs/path``: the local
  file system (a PVC mount or a local folder), :mod:`.local`;
- ``s3://bucket/key``: S3 or any S3-speaking store (MinIO, Ceph) through boto3, :mod:`.s3`
  (endpoint, region and credentials from the environment, or from the :class:`S3Profile`
  that :func:`using_s3` makes current for a block of code);
- ``pkg://<importable package>/<path inside it>``: read-only data shipped inside an installed
  Python package, :mod:`.pkg`.

Writes are atomic: a local write goes to a temporary file in the same folder, is fsynced and
renamed over the target; an S3 write is a single PUT. A crash never leaves a torn file.
Every failure is a :class:`StorageError` with one line saying what went wrong and where.
Each backend is a module with the same functions of a parsed :class:`~._uri.Loc`; this
module picks one by scheme.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from stevie_trainer.common.storage import local, pkg, s3
from stevie_trainer.common.storage._uri import StorageError, describe, parse
from stevie_trainer.common.storage.s3 import S3Profile, current_profile, using_s3

__all__ = [
    "S3Profile",
    "StorageError",
    "basename",
    "clear_s3_clients",
    "current_profile",
    "delete",
    "describe",
    "exists",
    "join",
    "list_uris",
    "local_path",
    "read_bytes",
    "read_text",
    "using_s3",
    "write_bytes",
    "write_text",
]

_BACKENDS: dict[str, ModuleType] = {"local": local, "s3": s3, "pkg": pkg}
clear_s3_clients = s3.clear_clients


def read_bytes(uri: str) -> bytes:
    """The whole content of the file or object at ``uri``."""
    loc = parse(uri)
    data: bytes = _BACKENDS[loc.scheme].read_bytes(loc)
    return data


def read_text(uri: str, encoding: str = "utf-8") -> str:
    """The content at ``uri`` decoded as text."""
    data = read_bytes(uri)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise StorageError(
            f"{describe(uri)}: not valid {encoding} text (byte {exc.start})"
        ) from None


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` atomically, creating local folders as needed."""
    loc = parse(uri)
    _BACKENDS[loc.scheme].write_bytes(loc, bytes(data))


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``uri`` atomically."""
    write_bytes(uri, text.encode(encoding))


def exists(uri: str) -> bool:
    """Whether a file (or local folder) exists at ``uri``."""
    loc = parse(uri)
    return bool(_BACKENDS[loc.scheme].exists(loc))


def list_uris(prefix: str) -> list[str]:
    """Every file under the folder ``prefix`` (recursively), as URIs of the same kind, sorted.
    A missing folder lists as empty."""
    loc = parse(prefix)
    found: list[str] = _BACKENDS[loc.scheme].list_uris(loc)
    return found


def delete(uri: str) -> None:
    """Delete the file or object at ``uri``; deleting something absent is not an error."""
    loc = parse(uri)
    _BACKENDS[loc.scheme].delete(loc)


def join(uri: str, *parts: str) -> str:
    """``uri`` with path ``parts`` appended (``join("s3://b/runs", "t1", "model.zip")``)."""
    loc = parse(uri)
    clean = [p.strip("/") for p in parts if p.strip("/")]
    if loc.scheme == "local" and not loc.file_uri:
        assert loc.path is not None
        return str(loc.path.joinpath(*clean))
    base = f"s3://{loc.bucket}" if loc.scheme == "s3" and not loc.key else uri.rstrip("/")
    return "/".join([base, *clean])


def local_path(uri: str) -> Path | None:
    """The local file-system path behind ``uri`` (local, file://, installed pkg://), else None."""
    loc = parse(uri)
    if loc.scheme == "local":
        return loc.path
    return pkg.local_path(loc) if loc.scheme == "pkg" else None


def basename(uri: str) -> str:
    """The last path component of ``uri`` (``BTCUSDT_1h.csv``)."""
    return uri.rstrip("/").rsplit("/", 1)[-1]
