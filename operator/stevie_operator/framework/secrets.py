"""Reading a value from a Secret of a resource's namespace, or saying why it cannot be had.

The operator reads Secrets a resource names (an HPOStudy's RDB URL, a resource's S3 keys) on
every reconcile and keeps them nowhere, so a rotated Secret is used from the next reconcile
on. A Secret that is missing, unreadable or has a key that is not base64 text is a
:class:`SecretProblem`: its Degraded reason and a message naming the Secret and the key,
never a value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stevie_operator.framework.kube import KubeAPI, KubeError, object_path

__all__ = [
    "SECRET_INVALID",
    "SECRET_NOT_FOUND",
    "SECRET_UNAVAILABLE",
    "SecretProblem",
    "secret_data",
    "secret_value",
]

SECRET_NOT_FOUND = "StorageSecretNotFound"
"""Degraded reason: the Secret, or one of its keys, does not exist."""
SECRET_UNAVAILABLE = "StorageSecretUnavailable"
"""Degraded reason: the Secret could not be read (the API refused: RBAC, a timeout)."""
SECRET_INVALID = "StorageSecretInvalid"
"""Degraded reason: a key of the Secret is not base64-encoded text."""


@dataclass(frozen=True)
class SecretProblem:
    """Why a Secret's value cannot be had: its Degraded reason and message."""

    reason: str
    message: str


async def secret_data(
    api: KubeAPI, namespace: str, ref: str, where: str
) -> Mapping[str, Any] | SecretProblem:
    """The ``data`` (base64 values by key) of Secret ``namespace/ref``; ``where`` names it in
    problems (e.g. ``Secret ns/x (spec.storage.urlSecretRef)``)."""
    try:
        secret = await api.get(object_path("v1", "secrets", namespace, ref))
    except KubeError as err:
        return SecretProblem(SECRET_UNAVAILABLE, f"cannot read {where}: {err}")
    if secret is None:
        return SecretProblem(SECRET_NOT_FOUND, f"{where} not found")
    data = secret.get("data")
    return data if isinstance(data, Mapping) else {}


def secret_value(data: Mapping[str, Any], key: str, where: str) -> str | SecretProblem | None:
    """The decoded, stripped value of ``key`` in a Secret's ``data``; None when it has no such
    key (the caller says what that means)."""
    raw = data.get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return SecretProblem(SECRET_INVALID, f"{where}: key {key!r} is not base64 text")
