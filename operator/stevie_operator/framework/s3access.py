"""Reaching a resource's S3 artifacts as its pods do: with its own endpoint and Secret.

A resource's pods get ``<storage>.s3EndpointUrl`` as ``STEVIE_S3_ENDPOINT_URL`` and the
Secret ``<storage>.s3SecretRef`` (in the resource's namespace) as environment variables
(:func:`~.pods.trainer_job`). The operator reads and writes the same objects (spec.json,
progress.json, study.json, reports), so it must reach them the same way, not with its own
credentials and endpoint: a team in another namespace with its own MinIO and keys would
otherwise be read from the operator's bucket, or refused. :func:`resource_profile` builds
the :class:`~stevie_trainer.common.storage.S3Profile` of one resource, which
:func:`~.controller.drive` makes current around the reconcile's storage calls (observe and
persist) with :func:`~stevie_trainer.common.storage.using_s3`.

The Secret is read on every reconcile and kept nowhere else (the S3 client cache is keyed by
the credentials' values), so a rotated Secret is used from the next reconcile on. A Secret
that is missing, unreadable or lacks a key is an :class:`S3Problem`: the resource is Degraded
saying which Secret and which key (never a value), nothing is created, and the next
reconcile (the timer) tries again. A resource that names neither endpoint nor Secret, or
whose artifacts are not on S3, keeps the operator's own environment; so does ``stevie run``
for credentials (its processes use the user's environment too, there is no Secret to read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from stevie_api.runtime import StorageSpec
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kube import KubeAPI
from stevie_operator.framework.plan import Plan, unsaved
from stevie_operator.framework.resource import namespace_of, validate
from stevie_operator.framework.secrets import (
    SECRET_NOT_FOUND,
    SECRET_UNAVAILABLE,
    SecretProblem,
    secret_data,
    secret_value,
)
from stevie_trainer.common.storage import S3Profile

__all__ = [
    "ACCESS_KEY",
    "REGION_KEY",
    "SECRET_KEY",
    "SECRET_NOT_FOUND",
    "SECRET_UNAVAILABLE",
    "TOKEN_KEY",
    "S3Problem",
    "artifact_storage",
    "profile_of",
    "resource_profile",
]

ACCESS_KEY, SECRET_KEY = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
REGION_KEY, TOKEN_KEY = "AWS_REGION", "AWS_SESSION_TOKEN"


@dataclass(frozen=True)
class S3Problem(SecretProblem):
    """Why a resource's S3 credentials cannot be had; its Degraded reason and message."""

    @classmethod
    def of(cls, problem: SecretProblem) -> S3Problem:
        return cls(problem.reason, problem.message)

    def plan(self, body: Mapping[str, Any]) -> Plan[Any]:
        """The reconcile's plan: nothing observed, saved or created; the stored status with
        Degraded True for this problem (a Warning Event on the transition only)."""
        stored = body.get("status")
        meta = body.get("metadata") or {}
        status = stored if isinstance(stored, Mapping) else {}
        now = datetime.now(UTC)
        return unsaved(status, meta.get("generation"), self.message, now, reason=self.reason)


def artifact_storage(resource: BaseModel) -> tuple[StorageSpec, str] | None:
    """The StorageSpec of a validated resource's artifacts and its field path: ``spec.storage``
    (TrainingRun, Ensemble) or its template's (HPOStudy, PBTPopulation: their pods run the
    template)."""
    spec = getattr(resource, "spec", None)
    found = getattr(spec, "storage", None)
    if isinstance(found, StorageSpec):
        return found, "spec.storage"
    found = getattr(getattr(spec, "template", None), "storage", None)
    if isinstance(found, StorageSpec):
        return found, "spec.template.storage"
    return None


def profile_of(
    secret: Mapping[str, Any], endpoint: str | None, source: str, where: str | None = None
) -> S3Profile | S3Problem:
    """The profile of a Secret as the API server returns it (base64 ``data``), with
    ``endpoint``. ``source`` names the Secret (``Secret research/minio``), ``where`` too, in
    problems (default ``source``); its values never show."""
    where = where or source
    data = secret.get("data")
    data = data if isinstance(data, Mapping) else {}
    values: dict[str, str | None] = {}
    for key in (ACCESS_KEY, SECRET_KEY, REGION_KEY, TOKEN_KEY):
        value = secret_value(data, key, where)
        if isinstance(value, SecretProblem):
            return S3Problem.of(value)
        values[key] = value or None
    missing = [k for k in (ACCESS_KEY, SECRET_KEY) if not values[k]]
    if missing:
        keys = " and ".join(repr(k) for k in missing)
        return S3Problem(SECRET_NOT_FOUND, f"{where} has no key {keys} (or it is empty)")
    return S3Profile(
        endpoint_url=endpoint,
        region=values[REGION_KEY],
        access_key_id=values[ACCESS_KEY],
        secret_access_key=values[SECRET_KEY],
        session_token=values[TOKEN_KEY],
        source=source,
    )


async def _from_secret(
    api: KubeAPI, namespace: str, ref: str, field: str, endpoint: str | None
) -> S3Profile | S3Problem:
    source = f"Secret {namespace}/{ref}"
    where = f"{source} ({field}.s3SecretRef)"
    data = await secret_data(api, namespace, ref, where)
    if isinstance(data, SecretProblem):
        return S3Problem.of(data)
    return profile_of({"data": data}, endpoint, source, where)


async def resource_profile(
    api: KubeAPI, model: type[BaseModel], body: Mapping[str, Any], config: OperatorConfig
) -> S3Profile | S3Problem | None:
    """The S3 profile to reach the artifacts of ``body`` (a resource of ``model``) with;
    None: the operator's own environment (artifacts not on S3, no endpoint or Secret named,
    or a spec that does not validate: the kind says why)."""
    resource = validate(body, model)
    found = None if isinstance(resource, list) else artifact_storage(resource)
    if found is None:
        return None
    spec, field = found
    if not (spec.uri or config.storage_uri).startswith("s3://"):
        return None
    if not (spec.s3_secret_ref or spec.s3_endpoint_url):
        return None
    endpoint = spec.s3_endpoint_url or config.s3_endpoint_url
    if not spec.s3_secret_ref or config.local:
        return S3Profile(endpoint_url=endpoint) if endpoint else None
    return await _from_secret(api, namespace_of(body), spec.s3_secret_ref, field, endpoint)
