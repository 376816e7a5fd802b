"""Who may run what: the operator-level allow-list of trainer images and ServiceAccounts.

Anyone who may create a Stevie resource in a namespace would otherwise run any image under
any ServiceAccount of that namespace, with the operator creating the pods on their behalf.
Katib and KubeRay leave this to a cluster admission policy (Kyverno, Gatekeeper, a
ValidatingAdmissionPolicy); the operator enforces its own list too, so the refusal is a
status the user reads (like an invalid spec) rather than a Job whose pods are denied.

``STEVIE_ALLOWED_IMAGES`` holds :mod:`fnmatch` patterns matched against the image as the
spec writes it (``*`` also matches ``/``; no registry or tag is filled in);
``STEVIE_ALLOWED_SERVICE_ACCOUNTS`` exact names. Empty lists allow anything. The
operator's own defaults (``STEVIE_TRAINER_IMAGE``, ``STEVIE_TRAINER_SERVICE_ACCOUNT``) are
always allowed: a spec that names neither runs what the operator's admin chose.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.pods import PodSettings
from stevie_operator.framework.status import INVALID_SPEC

__all__ = [
    "IMAGE_NOT_ALLOWED",
    "REFUSED_SPEC",
    "SERVICE_ACCOUNT_NOT_ALLOWED",
    "image_allowed",
    "refusal",
    "service_account_allowed",
]

IMAGE_NOT_ALLOWED = "ImageNotAllowed"
SERVICE_ACCOUNT_NOT_ALLOWED = "ServiceAccountNotAllowed"
REFUSED_SPEC = (INVALID_SPEC, IMAGE_NOT_ALLOWED, SERVICE_ACCOUNT_NOT_ALLOWED)
"""Failed reasons that come from the spec alone: nothing ran, so fixing the spec (or the
operator's allow-list) makes the resource start again."""


def image_allowed(image: str, config: OperatorConfig) -> bool:
    """Whether pods may run ``image``: no allow-list, the operator's default trainer
    image, or an image matching one of the patterns."""
    patterns = config.allowed_images
    if not patterns or image == config.trainer_image:
        return True
    return any(fnmatchcase(image, pattern) for pattern in patterns)


def service_account_allowed(name: str, config: OperatorConfig) -> bool:
    """Whether pods may run under ServiceAccount ``name``: no allow-list, the operator's
    default trainer ServiceAccount, or a listed name."""
    names = config.allowed_service_accounts
    return not names or name == config.trainer_service_account or name in names


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def refusal(config: OperatorConfig, *settings: tuple[str, PodSettings]) -> tuple[str, str] | None:
    """The (reason, message) refusing the first disallowed image or ServiceAccount among
    ``settings`` ((spec path, pod settings) pairs: ``("spec", run.spec)``,
    ``("spec.template", study.spec.template)``), or None when every one is allowed."""
    for path, pods in settings:
        image = pods.image or config.trainer_image
        if not image_allowed(image, config):
            return IMAGE_NOT_ALLOWED, (
                f"{path}.image {image!r} is not allowed by the operator: STEVIE_ALLOWED_IMAGES "
                f"is {_listed(config.allowed_images)} (and the default trainer image "
                f"{config.trainer_image})"
            )
        account = pods.service_account_name or config.trainer_service_account
        if account and not service_account_allowed(account, config):
            return SERVICE_ACCOUNT_NOT_ALLOWED, (
                f"{path}.serviceAccountName {account!r} is not allowed by the operator: "
                f"STEVIE_ALLOWED_SERVICE_ACCOUNTS is {_listed(config.allowed_service_accounts)}"
            )
    return None
