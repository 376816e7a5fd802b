"""Each dashboard drawn panel by panel (matplotlib) from the real Prometheus of the monitored
scenario: every panel shows data. With ``STEVIE_DASHBOARD_PNG_DIR`` set, the pictures are
also written there: docs/dashboards/*.png are made this way, so a reader sees what each board
shows without a Grafana:

    STEVIE_DASHBOARD_PNG_DIR=docs/dashboards .venv/bin/pytest \
        tests/monitoring_tests/test_board_pictures.py
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from monitoring_tests.scenario import Scraped
from monitoring_tests.test_e2e import boards

from stevie_operator.monitoring.render import render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.parametrize("path", boards(), ids=lambda p: p.stem)
def test_every_panel_of_the_board_shows_data(scraped: Scraped, path: Path, tmp_path: Path) -> None:
    board = json.loads(path.read_text())
    out = tmp_path / f"{path.stem}.png"
    results = render(
        board,
        scraped.query_range,
        out,
        start=scraped.start,
        end=scraped.end,
        step=1.0,
        scrape_interval=scraped.prom.interval,
    )
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert len(results) == sum(1 for p in board["panels"] if p.get("type") != "row")
    empty = [r.title for r in results if r.series == 0]
    assert not empty, f"{path.name}: panels with no data: {empty}"
    target = os.environ.get("STEVIE_DASHBOARD_PNG_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, Path(target) / out.name)
