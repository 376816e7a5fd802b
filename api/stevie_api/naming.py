"""Deterministic names of the children of a resource (Jobs, Deployments, Services, their
folders): one algorithm for every kind, so that a restarted operator finds the same
children again and two resources never share one."""

from __future__ import annotations

import hashlib
import re

__all__ = ["NAME_LIMIT", "child_name", "label_value"]

NAME_LIMIT = 63
"""A DNS-1123 label's length limit: Job names end up in their pods' ``job-name`` label, and
Service names must be DNS labels."""

_INVALID = re.compile(r"[^a-z0-9-]+")


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def child_name(owner: str, suffix: str, limit: int = NAME_LIMIT) -> str:
    """``owner + suffix`` as a DNS-1123 label of at most ``limit`` characters.

    Names are used as they are when they fit and hold only ``[a-z0-9-]``. Otherwise other
    characters become ``-``, the owner's name is shortened, and a hash of the original
    owner name goes before the suffix, so two owners never share a child name::

        child_name("pop", "-m3-i7")          -> "pop-m3-i7"
        child_name("a.b", "-train")          -> "a-b-<hash>-train"
        child_name("x" * 80, "-t12")         -> "xxx...x-<hash>-t12" (63 characters)
    """
    base = _INVALID.sub("-", owner.lower()).strip("-")
    if base == owner and len(base) + len(suffix) <= limit:
        return base + suffix
    digest = _digest(owner)
    keep = limit - len(suffix) - len(digest) - 1
    head = base[:keep].rstrip("-")
    return f"{head}-{digest}{suffix}" if head else f"{digest}{suffix}"


def label_value(value: str) -> str:
    """``value`` as a label value (at most 63 characters, alphanumeric at both ends): as it is
    when short enough, else shortened with a hash."""
    return value if len(value) <= NAME_LIMIT else child_name(value, "")
