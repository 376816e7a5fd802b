"""Parsing storage URIs, and the one error type every backend raises."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TMP_MARK", "Loc", "StorageError", "describe", "parse"]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
TMP_MARK = ".stevie-tmp-"
"""Prefix of the temporary files behind atomic local writes (never listed)."""


class StorageError(Exception):
    """A storage operation failed; the message is one line naming the URI."""


@dataclass(frozen=True)
class Loc:
    """A parsed URI."""

    scheme: str  # "local" (plain path or file://), "s3" or "pkg"
    uri: str  # as given
    path: Path | None = None  # local
    bucket: str = ""  # s3
    key: str = ""  # s3
    package: str = ""  # pkg
    inner: str = ""  # pkg: path inside the package
    file_uri: bool = False  # local given as file://


def parse(uri: str) -> Loc:
    """``uri`` parsed; StorageError for an empty URI or an unknown scheme."""
    if not isinstance(uri, str) or not uri:
        raise StorageError(f"empty or invalid storage URI: {uri!r}")
    m = _SCHEME_RE.match(uri)
    if m is None:
        return Loc("local", uri, path=Path(uri))
    scheme = m.group(1).lower()
    rest = uri[m.end() :]
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest.startswith("/"):
            raise StorageError(f"{uri}: a file:// URI needs an absolute path (file:///abs/path)")
        return Loc("local", uri, path=Path(rest), file_uri=True)
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise StorageError(f"{uri}: an s3:// URI needs a bucket (s3://bucket/key)")
        return Loc("s3", uri, bucket=bucket, key=key)
    if scheme == "pkg":
        package, _, inner = rest.partition("/")
        if not package:
            raise StorageError(f"{uri}: a pkg:// URI needs a package (pkg://package/path)")
        return Loc("pkg", uri, package=package, inner=inner.strip("/"))
    raise StorageError(
        f"{uri}: unsupported URI scheme {scheme!r} (use a local path, file://, s3:// or pkg://)"
    )


def describe(uri: str) -> str:
    """A short display form of ``uri`` for messages (local paths relative to the cwd)."""
    try:
        loc = parse(uri)
    except StorageError:
        return repr(uri)
    if loc.scheme != "local":
        return uri
    assert loc.path is not None
    if loc.path.is_absolute():
        with contextlib.suppress(ValueError, OSError):
            return str(loc.path.relative_to(Path.cwd()))
    return str(loc.path)
