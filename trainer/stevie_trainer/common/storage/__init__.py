"""One storage interface over URIs: local paths, ``file://``, ``s3://`` and ``pkg://``.

- plain path (``runs/x/model.zip``, ``/data/btc.csv``) and ``file:///abs/path``: the local
  file system (a PVC mount or a local folder);
- ``s3://bucket/key``: S3 or any S3-speaking store (MinIO, Ceph) through boto3. The endpoint
  comes from ``STEVIE_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; the
  region from ``AWS_REGION``/``AWS_DEFAULT_REGION`` (default us-east-1); credentials from
  the standard AWS environment variables or profile;
- ``pkg://<importable package>/<path inside it>``: read-only data shipped inside an installed
  Python package, e.g. ``pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv``.

Writes are atomic: a local write goes to a temporary file in the same folder, is fsynced and
renamed over the target; an S3 write is a single PUT. A crash never leaves a torn file.
Every failure is a :class:`StorageError` with one line saying what went wrong and where.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.resources
import os
import re
import secrets
import threading
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TMP_MARK = ".stevie-tmp-"


class StorageError(Exception):
    """A storage operation failed; the message is one line naming the URI."""


@dataclass(frozen=True)
class _Loc:
    """A parsed URI."""

    scheme: str  # "local" (plain path or file://), "s3" or "pkg"
    uri: str  # as given
    path: Path | None = None  # local
    bucket: str = ""  # s3
    key: str = ""  # s3
    package: str = ""  # pkg
    inner: str = ""  # pkg: path inside the package
    file_uri: bool = False  # local given as file://


def _parse(uri: str) -> _Loc:
    if not isinstance(uri, str) or not uri:
        raise StorageError(f"empty or invalid storage URI: {uri!r}")
    m = _SCHEME_RE.match(uri)
    if m is None:
        return _Loc("local", uri, path=Path(uri))
    scheme = m.group(1).lower()
    rest = uri[m.end() :]
    if scheme == "file":
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest.startswith("/"):
            raise StorageError(f"{uri}: a file:// URI needs an absolute path (file:///abs/path)")
        return _Loc("local", uri, path=Path(rest), file_uri=True)
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise StorageError(f"{uri}: an s3:// URI needs a bucket (s3://bucket/key)")
        return _Loc("s3", uri, bucket=bucket, key=key)
    if scheme == "pkg":
        package, _, inner = rest.partition("/")
        if not package:
            raise StorageError(f"{uri}: a pkg:// URI needs a package (pkg://package/path)")
        return _Loc("pkg", uri, package=package, inner=inner.strip("/"))
    raise StorageError(
        f"{uri}: unsupported URI scheme {scheme!r} (use a local path, file://, s3:// or pkg://)"
    )


# ----------------------------------------------------------------------------- local files


def _os_error(where: str, exc: OSError) -> StorageError:
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


def _local_write(path: Path, data: bytes, where: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(f"{where}: a parent of this path is not a folder") from None
    except OSError as exc:
        raise _os_error(f"{where} (creating its folder)", exc) from None
    tmp = path.parent / f"{_TMP_MARK}{path.name}.{secrets.token_hex(6)}"
    try:
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
        finally:
            os.close(fd)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _os_error(where, exc) from None
    # Make the rename itself durable (best effort: not every file system allows it).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _local_uri(loc: _Loc, path: Path) -> str:
    return f"file://{path}" if loc.file_uri else str(path)


# ----------------------------------------------------------------------------- S3

_S3_CLIENTS: dict[tuple[str | None, str, tuple[str, ...]], Any] = {}
_S3_LOCK = threading.Lock()
_S3_LIST_PAGE = 1000  # keys per list_objects_v2 call (the S3 maximum)
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE")


def _s3_endpoint() -> str | None:
    for name in ("STEVIE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _s3_region() -> str:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return "us-east-1"


def _s3_client() -> Any:
    """A boto3 S3 client, cached per (endpoint, region, credential source)."""
    endpoint, region = _s3_endpoint(), _s3_region()
    key = (endpoint, region, tuple(os.environ.get(n, "") for n in _CREDENTIAL_ENV))
    with _S3_LOCK:
        client = _S3_CLIENTS.get(key)
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise StorageError("s3:// needs boto3: pip install 'stevie[trainer]'") from None
            config = Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                # MinIO/Ceph behind a custom endpoint expect path-style addressing.
                s3={"addressing_style": "path" if endpoint else "auto"},
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=region, config=config
            )
            _S3_CLIENTS[key] = client
        return client


def clear_s3_clients() -> None:
    """Forget cached S3 clients (after changing endpoint or credentials in-process)."""
    with _S3_LOCK:
        _S3_CLIENTS.clear()


def _s3_error(loc: _Loc, exc: Exception) -> StorageError:
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = loc.uri
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"{where}: no usable AWS credentials (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(
            f"{where}: cannot connect to the S3 endpoint {exc.kwargs['endpoint_url']}"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{where}: no such file")
        if code == "NoSuchBucket":
            return StorageError(f"{where}: no such bucket {loc.bucket!r}")
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return StorageError(f"{where}: access denied")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return StorageError(f"{where}: S3 rejected the credentials ({code})")
        message = str(error.get("Message", "")).splitlines()[0] if error.get("Message") else ""
        return StorageError(f"{where}: S3 error {code or '?'}{': ' + message if message else ''}")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageError(f"{where}: {text}")


def _s3_call(loc: _Loc, method: str, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(_s3_client(), method)(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(loc, exc) from None


def _s3_require_key(loc: _Loc) -> None:
    if not loc.key or loc.key.endswith("/"):
        raise StorageError(f"{loc.uri}: names a bucket or folder, not an object")


# ----------------------------------------------------------------------------- pkg://


def _pkg_traversable(loc: _Loc) -> Traversable:
    try:
        root = importlib.resources.files(loc.package)
    except ModuleNotFoundError:
        raise StorageError(f"{loc.uri}: package {loc.package!r} is not installed") from None
    except (ImportError, TypeError) as exc:
        raise StorageError(f"{loc.uri}: cannot import package {loc.package!r}: {exc}") from None
    return root.joinpath(loc.inner) if loc.inner else root


def _read_only(loc: _Loc) -> StorageError:
    return StorageError(f"{loc.uri}: pkg:// data is read-only")


# ----------------------------------------------------------------------------- public API


def read_bytes(uri: str) -> bytes:
    """The whole content of the file or object at ``uri``."""
    loc = _parse(uri)
    if loc.scheme == "local":
        assert loc.path is not None
        try:
            return loc.path.read_bytes()
        except OSError as exc:
            raise _os_error(describe(uri), exc) from None
    if loc.scheme == "s3":
        _s3_require_key(loc)
        response = _s3_call(loc, "get_object", Bucket=loc.bucket, Key=loc.key)
        try:
            body: bytes = response["Body"].read()
        except Exception as exc:  # a connection dropped mid-body
            raise _s3_error(loc, exc) from None
        return body
    item = _pkg_traversable(loc)
    if not item.is_file():
        raise StorageError(f"{uri}: no such file")
    try:
        return item.read_bytes()
    except OSError as exc:
        raise _os_error(uri, exc) from None


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
    loc = _parse(uri)
    if loc.scheme == "local":
        assert loc.path is not None
        _local_write(loc.path, bytes(data), describe(uri))
    elif loc.scheme == "s3":
        _s3_require_key(loc)
        _s3_call(loc, "put_object", Bucket=loc.bucket, Key=loc.key, Body=bytes(data))
    else:
        raise _read_only(loc)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``uri`` atomically."""
    write_bytes(uri, text.encode(encoding))


def exists(uri: str) -> bool:
    """Whether a file (or local folder) exists at ``uri``."""
    loc = _parse(uri)
    if loc.scheme == "local":
        assert loc.path is not None
        return loc.path.exists()
    if loc.scheme == "s3":
        if not loc.key:
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            _s3_client().head_object(Bucket=loc.bucket, Key=loc.key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise _s3_error(loc, exc) from None
        except BotoCoreError as exc:
            raise _s3_error(loc, exc) from None
        return True
    try:
        item = _pkg_traversable(loc)
    except StorageError:
        return False
    return item.is_file() or item.is_dir()


def join(uri: str, *parts: str) -> str:
    """``uri`` with path ``parts`` appended (``join("s3://b/runs", "t1", "model.zip")``)."""
    loc = _parse(uri)
    clean = [p.strip("/") for p in parts if p.strip("/")]
    if loc.scheme == "local" and not loc.file_uri:
        assert loc.path is not None
        return str(loc.path.joinpath(*clean))
    base = f"s3://{loc.bucket}" if loc.scheme == "s3" and not loc.key else uri.rstrip("/")
    return "/".join([base, *clean])


def local_path(uri: str) -> Path | None:
    """The local file-system path behind ``uri`` (local, file://, installed pkg://), else None."""
    loc = _parse(uri)
    if loc.scheme == "local":
        return loc.path
    if loc.scheme == "pkg":
        item = _pkg_traversable(loc)
        return item if isinstance(item, Path) else None
    return None


def list_uris(prefix: str) -> list[str]:
    """Every file under the folder ``prefix`` (recursively), as URIs of the same kind, sorted.

    A missing folder lists as empty. For S3 the prefix is taken as a folder: ``s3://b/runs``
    lists ``s3://b/runs/...`` but not ``s3://b/runs2/...``.
    """
    loc = _parse(prefix)
    if loc.scheme == "local":
        assert loc.path is not None
        if loc.path.is_file():
            return [_local_uri(loc, loc.path)]
        if not loc.path.is_dir():
            return []
        try:
            found = [
                p for p in loc.path.rglob("*") if p.is_file() and not p.name.startswith(_TMP_MARK)
            ]
        except OSError as exc:
            raise _os_error(describe(prefix), exc) from None
        return sorted(_local_uri(loc, p) for p in found)
    if loc.scheme == "s3":
        key_prefix = loc.key.rstrip("/") + "/" if loc.key.strip("/") else ""
        uris: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": loc.bucket,
                "Prefix": key_prefix,
                "MaxKeys": _S3_LIST_PAGE,
            }
            if token:
                kwargs["ContinuationToken"] = token
            page = _s3_call(loc, "list_objects_v2", **kwargs)
            uris.extend(f"s3://{loc.bucket}/{obj['Key']}" for obj in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        return sorted(uris)
    root = _pkg_traversable(loc)
    out: list[str] = []

    def walk(item: Traversable, rel: str) -> None:
        if item.is_file():
            out.append(f"pkg://{loc.package}/{rel}".rstrip("/"))
        elif item.is_dir():
            for child in item.iterdir():
                walk(child, f"{rel}/{child.name}" if rel else child.name)

    walk(root, loc.inner)
    return sorted(out)


def delete(uri: str) -> None:
    """Delete the file or object at ``uri``; deleting something absent is not an error."""
    loc = _parse(uri)
    if loc.scheme == "local":
        assert loc.path is not None
        try:
            loc.path.unlink(missing_ok=True)
        except OSError as exc:
            raise _os_error(describe(uri), exc) from None
    elif loc.scheme == "s3":
        _s3_require_key(loc)
        _s3_call(loc, "delete_object", Bucket=loc.bucket, Key=loc.key)
    else:
        raise _read_only(loc)


def describe(uri: str) -> str:
    """A short display form of ``uri`` for messages (local paths relative to the cwd)."""
    try:
        loc = _parse(uri)
    except StorageError:
        return repr(uri)
    if loc.scheme != "local":
        return uri
    assert loc.path is not None
    if loc.path.is_absolute():
        with contextlib.suppress(ValueError, OSError):
            return str(loc.path.relative_to(Path.cwd()))
    return str(loc.path)


def basename(uri: str) -> str:
    """The last path component of ``uri`` (``BTCUSDT_1h.csv``)."""
    return uri.rstrip("/").rsplit("/", 1)[-1]
