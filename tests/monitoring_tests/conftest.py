"""Fixtures of the monitoring tests: the monitored scenario (see :mod:`.scenario`), run once
per session by whichever test asks first (the e2e test, the dashboards' renderer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from monitoring_tests.scenario import Scraped, monitored

from support.prometheus import binary


@pytest.fixture(scope="session")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """The operator, trainers and the decision service scraped by a real Prometheus (still
    running, so the window [start, end] can be queried)."""
    binary("prometheus")  # skip (or fail in CI) before anything starts
    folder = tmp_path_factory.mktemp("monitored")
    with pytest.MonkeyPatch.context() as monkeypatch, monitored(folder, monkeypatch) as found:
        yield found
