"""Fixtures of the operator tests: an emulated cluster (kmock) the operator talks to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kmock import Cluster


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """kmock on loopback; the operator's settings point at it and at ``tmp_path/data``."""
    with Cluster() as c:
        monkeypatch.setenv("STEVIE_KUBE_SERVER", c.url)
        monkeypatch.setenv("STEVIE_STORAGE_URI", (tmp_path / "data").as_uri())
        monkeypatch.setenv("STEVIE_METRICS_PORT", "0")
        yield c
