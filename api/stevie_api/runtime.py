"""Where artifacts go and how trainer pods run: storage, resources, scheduling."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.config import JsonDict

from stevie_api.common import StevieModel

__all__ = ["QUANTITY_PATTERN", "ImagePullPolicy", "Resources", "StorageSpec", "Toleration"]

ImagePullPolicy = Literal["Always", "IfNotPresent", "Never"]

# Kubernetes' resource.Quantity syntax: the pattern controller-gen writes into CRDs.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
    r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)
# A Kubernetes quantity is an integer or a string (never a float: the API server refuses
# `cpu: 0.5` for an int-or-string field), as resource.Quantity is in Kubernetes' own CRDs.
_INT_OR_STRING: JsonDict = {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}
_FLOAT_HINT = {"cpu": 'write cpu: 500m or cpu: "0.5"', "memory": 'write memory: "512Mi"'}


class StorageSpec(StevieModel):
    """Artifact storage: a folder (a PVC mount or local disk) or an S3 prefix."""

    uri: str | None = Field(
        default=None,
        description="Artifact root: file:///abs/path (or a plain path) or s3://bucket/prefix. "
        "Default: the operator's (or `stevie run`'s) configured root.",
    )
    pvc_claim_name: str | None = Field(
        default=None,
        description="PersistentVolumeClaim mounted into trainer pods for a file:// uri.",
    )
    s3_secret_ref: str | None = Field(
        default=None,
        description="Name of a Secret in the resource's namespace with AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY (and optionally AWS_REGION / AWS_SESSION_TOKEN), passed to "
        "trainer pods as environment variables for an s3:// uri.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint URL for S3-compatible stores (MinIO, Ceph); default AWS.",
    )

    @field_validator("uri")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "://" in value:
            scheme, _, rest = value.partition("://")
            if scheme not in ("file", "s3"):
                raise ValueError(
                    f"unsupported scheme {scheme + '://'!r} (use file://, s3:// or a path)"
                )
            if scheme == "s3" and not rest.split("/", 1)[0]:
                raise ValueError(f"{value!r} has no bucket (use s3://bucket/prefix)")
        elif not value:
            raise ValueError("must not be empty")
        return value


class Resources(StevieModel):
    """Compute for each trainer pod."""

    cpu: str = Field(
        default="1",
        description='CPU: a Kubernetes quantity, an integer or a string (2, "500m", "0.5").',
        json_schema_extra=_INT_OR_STRING,
    )
    memory: str = Field(
        default="2Gi",
        description='Memory: a Kubernetes quantity ("2Gi", "512Mi").',
        json_schema_extra=_INT_OR_STRING,
    )
    gpu: int = Field(default=0, ge=0, description="NVIDIA GPUs (nvidia.com/gpu); 0 for none.")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _int_to_str(cls, value: object, info: ValidationInfo) -> object:
        """Integers become strings (pod manifests take strings); floats are refused, as the
        API server refuses them for an int-or-string field."""
        if isinstance(value, float):
            name = str(info.field_name)
            hint = _FLOAT_HINT.get(name, "quote it")
            if value.is_integer():
                hint = f"write {name}: {int(value)}"
            raise ValueError(
                f"{value!r} is a float, which Kubernetes does not take for a quantity (an "
                f"integer or a string): {hint}"
            )
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f'{value!r} is not a Kubernetes quantity (e.g. "2", "500m", "4Gi")')
        return value


class Toleration(StevieModel):
    """A Kubernetes toleration (core/v1 Toleration) for trainer pods."""

    key: str | None = Field(
        default=None, description="Taint key to tolerate; empty with Exists matches all."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(default=None, description="Taint value for the Equal operator.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="NoExecute: seconds the pod stays bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _check(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        return self
