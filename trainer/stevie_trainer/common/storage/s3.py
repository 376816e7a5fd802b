"""The S3 backend: ``s3://bucket/key`` on AWS or any S3-speaking store (MinIO, Ceph)
through boto3. By default the endpoint comes from ``STEVIE_S3_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``; the region from
``AWS_REGION``/``AWS_DEFAULT_REGION`` (default us-east-1); credentials from the standard AWS
environment variables or profile. A write is a single PUT: an object is never torn.

A process that serves several owners of buckets (the operator: each resource may name its
own endpoint and credentials Secret) makes an :class:`S3Profile` current for a block of code
with :func:`using_s3`. It is a :mod:`contextvars` variable, so it holds for one asyncio task
and what that task runs through ``asyncio.to_thread`` (which copies the context), never for
another task's reconcile running at the same time; a field the profile leaves unset falls
back to the environment as above.

An endpoint that cannot be reached (connection refused, reset or timed out) is retried by
botocore a few times, a couple of seconds in all; a process that should ride out a longer
outage (a trainer pod: a Job retry would cost its work since the last checkpoint) sets
``STEVIE_S3_OUTAGE_SECONDS``, and each call keeps trying, with backoff up to 15 s, until
that many seconds have passed. The operator leaves it unset: it reports the outage as
Degraded at once and tries again at its next reconcile.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stevie_trainer.common.storage._uri import Loc, StorageError

T = TypeVar("T")

__all__ = [
    "S3Profile",
    "clear_clients",
    "client_key",
    "current_profile",
    "delete",
    "exists",
    "list_uris",
    "read_bytes",
    "using_s3",
    "write_bytes",
]

ClientKey = tuple[str | None, str, tuple[str, ...]]  # endpoint, region, credential source
_CLIENTS: OrderedDict[ClientKey, Any] = OrderedDict()
_MAX_CLIENTS = 32  # a rotated Secret makes a new key: the least recently used ones go
_LOCK = threading.Lock()
_LIST_PAGE = 1000  # keys per list_objects_v2 call (the S3 maximum)
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE")
_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


@dataclass(frozen=True)
class S3Profile:
    """Where and as whom to reach S3, for :func:`using_s3`. Every field is optional: one
    left None comes from the environment. ``source`` says where the credentials came from
    (``Secret research/minio``), for error messages; the keys themselves never show (they
    are out of the repr)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str | None = None

    def __post_init__(self) -> None:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError(
                "an S3 profile needs both an access key id and a secret access key, or neither"
            )

    @property
    def has_keys(self) -> bool:
        """Whether it carries its own credentials (else the environment's are used)."""
        return bool(self.access_key_id)


_PROFILE: contextvars.ContextVar[S3Profile | None] = contextvars.ContextVar(
    "stevie_s3_profile", default=None
)


@contextlib.contextmanager
def using_s3(profile: S3Profile | None) -> Iterator[None]:
    """Make ``profile`` the one S3 calls use inside the block (None: the environment's)."""
    token = _PROFILE.set(profile)
    try:
        yield
    finally:
        _PROFILE.reset(token)


def current_profile() -> S3Profile | None:
    """The profile :func:`using_s3` made current here, if any."""
    return _PROFILE.get()


def _endpoint(profile: S3Profile | None) -> str | None:
    if profile is not None and profile.endpoint_url:
        return profile.endpoint_url
    for name in ("STEVIE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _region(profile: S3Profile | None) -> str:
    if profile is not None and profile.region:
        return profile.region
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return "us-east-1"


def client_key(profile: S3Profile | None = None) -> ClientKey:
    """What a cached client is keyed by: the endpoint, the region and the credentials in
    force (a profile's own keys, else the environment's credential variables), so that a
    client never serves another profile, nor the environment after it changed. A profile's
    secret key and token are in it as a digest: the key may be logged, they may not."""
    if profile is not None and profile.has_keys:
        secret = f"{profile.secret_access_key}\0{profile.session_token or ''}".encode()
        keys: tuple[str, ...] = (
            "profile",
            profile.access_key_id or "",
            hashlib.sha256(secret).hexdigest(),
        )
    else:
        keys = ("environment", *(os.environ.get(n, "") for n in _CREDENTIAL_ENV))
    return (_endpoint(profile), _region(profile), keys)


def _new_client(profile: S3Profile | None, endpoint: str | None, region: str) -> Any:
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
    keys: dict[str, str | None] = {}
    if profile is not None and profile.has_keys:
        keys = {
            "aws_access_key_id": profile.access_key_id,
            "aws_secret_access_key": profile.secret_access_key,
            "aws_session_token": profile.session_token or None,
        }
    session = boto3.session.Session(**keys)  # no keys: the environment's credential chain
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _client() -> Any:
    """A boto3 S3 client for the current profile, cached by :func:`client_key`."""
    profile = _PROFILE.get()
    key = client_key(profile)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _new_client(profile, key[0], key[1])
            _CLIENTS[key] = client
            while len(_CLIENTS) > _MAX_CLIENTS:
                _CLIENTS.popitem(last=False)
        else:
            _CLIENTS.move_to_end(key)
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
    profile = _PROFILE.get()
    source = f" of {profile.source}" if profile is not None and profile.source else ""
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return StorageError(
            f"{where}: access denied" + (f" to the credentials{source}" if source else "")
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return StorageError(f"{where}: S3 rejected the credentials{source} ({code})")
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


OUTAGE_ENV = "STEVIE_S3_OUTAGE_SECONDS"


def _outage_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(OUTAGE_ENV, "") or 0))
    except ValueError:
        return 0.0


def _unreachable(exc: Exception) -> bool:
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    return isinstance(
        exc,
        EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError,
    )


def _attempt(loc: Loc, fn: Callable[[Any], T]) -> T:
    """``fn(client)``, tried again while the endpoint is unreachable and the outage budget
    (``STEVIE_S3_OUTAGE_SECONDS``) lasts; other errors at once."""
    from botocore.exceptions import BotoCoreError

    budget = _outage_seconds()
    deadline, delay, said = time.monotonic() + budget, 1.0, False
    while True:
        try:
            return fn(_client())
        except BotoCoreError as exc:
            left = deadline - time.monotonic()
            if not _unreachable(exc) or left <= 0:
                raise
            if not said:
                print(f"stevie: warning: {loc.uri}: S3 unreachable; retrying for up to "
                      f"{budget:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
                said = True
            time.sleep(min(delay, left))
            delay = min(delay * 2, 15.0)


def _call(loc: Loc, method: str, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _attempt(loc, lambda client: getattr(client, method)(**kwargs))
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
        _attempt(loc, lambda client: client.head_object(Bucket=loc.bucket, Key=loc.key))
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
