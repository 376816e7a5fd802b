"""The S3 backend: ``s3://bucket/key`` on AWS or any S3-speaking store (MinIO, Ceph)
through boto3. The endpoint comes from ``STEVIE_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``
or ``AWS_ENDPOINT_URL``; the region from ``AWS_REGION``/``AWS_DEFAULT_REGION`` (default
us-east-1); credentials from the standard AWS environment variables or profile. A write is
a single PUT: an object is never torn."""

from __future__ import annotations

import os
import threading
from typing import Any

from stevie_trainer.common.storage._uri import Loc, StorageError

__all__ = ["clear_clients", "delete", "exists", "list_uris", "read_bytes", "write_bytes"]

_CLIENTS: dict[tuple[str | None, str, tuple[str, ...]], Any] = {}
_LOCK = threading.Lock()
_LIST_PAGE = 1000  # keys per list_objects_v2 call (the S3 maximum)
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE")
_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


def _endpoint() -> str | None:
    for name in ("STEVIE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _region() -> str:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return "us-east-1"


def _client() -> Any:
    """A boto3 S3 client, cached per (endpoint, region, credential source)."""
    endpoint, region = _endpoint(), _region()
    key = (endpoint, region, tuple(os.environ.get(n, "") for n in _CREDENTIAL_ENV))
    with _LOCK:
        client = _CLIENTS.get(key)
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
            _CLIENTS[key] = client
        return client


def clear_clients() -> None:
    """Forget cached S3 clients (after changing endpoint or credentials in-process)."""
    with _LOCK:
        _CLIENTS.clear()


def _client_error(where: str, loc: Loc, error: dict[str, Any]) -> StorageError:
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


def _error(loc: Loc, exc: Exception) -> StorageError:
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
        return _client_error(where, loc, exc.response.get("Error", {}))
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageError(f"{where}: {text}")


def _call(loc: Loc, method: str, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(_client(), method)(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise _error(loc, exc) from None


def _require_key(loc: Loc) -> None:
    if not loc.key or loc.key.endswith("/"):
        raise StorageError(f"{loc.uri}: names a bucket or folder, not an object")


def read_bytes(loc: Loc) -> bytes:
    """The object's content."""
    _require_key(loc)
    response = _call(loc, "get_object", Bucket=loc.bucket, Key=loc.key)
    try:
        body: bytes = response["Body"].read()
    except Exception as exc:  # a connection dropped mid-body
        raise _error(loc, exc) from None
    return body


def write_bytes(loc: Loc, data: bytes) -> None:
    """Write the object in one PUT."""
    _require_key(loc)
    _call(loc, "put_object", Bucket=loc.bucket, Key=loc.key, Body=bytes(data))


def exists(loc: Loc) -> bool:
    """Whether the object exists (a bucket alone does not count)."""
    if not loc.key:
        return False
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client().head_object(Bucket=loc.bucket, Key=loc.key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
            return False
        raise _error(loc, exc) from None
    except BotoCoreError as exc:
        raise _error(loc, exc) from None
    return True


def list_uris(loc: Loc) -> list[str]:
    """Every object under the prefix taken as a folder (``s3://b/runs`` lists
    ``s3://b/runs/...``, not ``s3://b/runs2/...``), sorted."""
    key_prefix = loc.key.rstrip("/") + "/" if loc.key.strip("/") else ""
    uris: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Prefix": key_prefix, "MaxKeys": _LIST_PAGE}
        if token:
            kwargs["ContinuationToken"] = token
        page = _call(loc, "list_objects_v2", **kwargs)
        uris.extend(f"s3://{loc.bucket}/{obj['Key']}" for obj in page.get("Contents", []))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            break
    return sorted(uris)


def delete(loc: Loc) -> None:
    """Delete the object; an absent one is not an error."""
    _require_key(loc)
    _call(loc, "delete_object", Bucket=loc.bucket, Key=loc.key)
