"""A real Prometheus server for tests (Debian's ``prometheus`` package: .ci/run installs it),
``promtool``, and the evaluation of Grafana dashboards' queries against the server.

:class:`Prometheus` runs ``prometheus`` on a free loopback port with a generated config:
one scrape job per name, every target found through a file_sd file the test rewrites
(:meth:`Prometheus.set_targets`), so targets can come and go while it runs, as pods do.
Tests that want it skip, saying why, when the binaries are missing; with
``STEVIE_REQUIRE_PROMETHEUS`` set (.ci/run sets it) they fail instead, so they cannot vanish
from a green CI.

:func:`panel_results` evaluates every query of a dashboard (Grafana JSON: ``panels[]
.targets[].expr``, rows' nested panels included) over a time range, with the dashboard's
template variables resolved the way Grafana resolves them (query variables through the
label-values API; multi-value and "All" variables as a regex alternation).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from stevie_operator.monitoring.queries import board_queries

__all__ = [
    "REQUIRE_ENV",
    "Panel",
    "Prometheus",
    "PrometheusError",
    "Series",
    "Target",
    "binary",
    "free_port",
    "panel_results",
    "promtool",
    "resolve_variables",
    "substitute",
    "unavailable",
]

REQUIRE_ENV = "STEVIE_REQUIRE_PROMETHEUS"
Series = tuple[dict[str, str], list[tuple[float, float]]]  # labels, (time, value) points


def unavailable(reason: str) -> NoReturn:
    """Skip the test, saying why; a failure when ``$STEVIE_REQUIRE_PROMETHEUS`` is set."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"Prometheus is required (${REQUIRE_ENV} is set) but {reason}")
    pytest.skip(reason)


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``, or skip (fail) saying how to get it."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"no `{name}` on PATH: apt-get install prometheus (.ci/run does)")
    return found


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` (not checked: the caller asserts on the result)."""
    command = [binary("promtool"), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrometheusError(RuntimeError):
    """The HTTP API answered with an error (``errorType: error``)."""


@dataclass(frozen=True)
class Target:
    """A scrape target: ``host:port`` and the target labels a monitor would give it."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


class Prometheus:
    """``prometheus`` on 127.0.0.1, scraping ``jobs`` (name -> honor_labels) every
    ``interval`` seconds; a context manager (started on enter, stopped on exit)."""

    def __init__(self, jobs: Mapping[str, bool], folder: Path, interval: float = 1.0) -> None:
        self.jobs = dict(jobs)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self.url = ""
        self._targets: dict[str, dict[str, Target]] = {job: {} for job in jobs}
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        """prometheus.yml: one job per name, its targets in ``targets-<job>.json``."""
        every = f"{round(self.interval * 1000)}ms"
        jobs = [
            {
                "job_name": job,
                "honor_labels": honor,
                "scrape_interval": every,
                "scrape_timeout": every,
                "file_sd_configs": [
                    {"files": [str(self._sd_file(job))], "refresh_interval": every}
                ],
            }
            for job, honor in self.jobs.items()
        ]
        return {"global": {"scrape_interval": every, "evaluation_interval": every},
                "scrape_configs": jobs}  # fmt: skip

    def _sd_file(self, job: str) -> Path:
        return self.folder / f"targets-{job}.json"

    def set_target(self, job: str, key: str, target: Target | None) -> None:
        """Add (replace) or, with None, remove one target of ``job``; Prometheus sees the
        change within a refresh (it watches the file)."""
        with self._lock:
            if target is None:
                self._targets[job].pop(key, None)
            else:
                self._targets[job][key] = target
            groups = [
                {"targets": [t.address], "labels": dict(t.labels)}
                for t in self._targets[job].values()
            ]
            path = self._sd_file(job)
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps(groups))
            temp.replace(path)  # atomic: Prometheus never reads half a file

    def __enter__(self) -> Prometheus:
        for job in self.jobs:  # targets set before the start are found at once
            self.set_target(job, "", None)
        config = self.folder / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        check = promtool("check", "config", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        for _ in range(3):  # another process may take the free port before Prometheus does
            if self._start(config, free_port()):
                return self
        raise RuntimeError(f"prometheus did not start: {self._log()}")

    def _start(self, config: Path, port: int) -> bool:
        log = (self.folder / "prometheus.log").open("ab")
        data = tempfile.mkdtemp(prefix="tsdb-", dir=self.folder)
        argv = [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                "--storage.tsdb.retention.time=1d"]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus was not ready within 30 s: {self._log()}")

    def _log(self) -> str:
        path = self.folder / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def api(self, path: str, **params: str | float | list[str]) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a success, else PrometheusError."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as err:  # 400/422: a bad query, with a JSON error
            body = json.loads(err.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')} ({params})")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """An instant query: ``{"resultType": ..., "result": [...]}``."""
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = at
        data: dict[str, Any] = self.api("query", **params)
        return data

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query: (labels, [(time, value)]) per series (NaN and Inf as floats)."""
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        if data["resultType"] != "matrix":
            raise PrometheusError(f"{expr!r} is a {data['resultType']}, not a range vector")
        return [
            (dict(s["metric"]), [(float(t), float(v)) for t, v in s["values"]])
            for s in data["result"]
        ]

    def label_values(self, label: str, match: str | None, start: float, end: float) -> list[str]:
        """Values of ``label`` among the series ``match`` selects (all series: None)."""
        params: dict[str, str | float | list[str]] = {"start": start, "end": end}
        if match:
            params["match[]"] = [match]
        return sorted(self.api(f"label/{urllib.parse.quote(label)}/values", **params))

    def targets(self) -> list[dict[str, Any]]:
        """The active targets (``labels``, ``health``, ``lastScrape``...)."""
        active: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return active

    def wait_discovered(self, job: str, key: str, timeout: float = 30.0) -> None:
        """Until the scrape loop has the target ``key`` of ``job`` (up to ~5 s after
        :meth:`set_target`: Prometheus throttles discovery updates)."""
        with self._lock:
            address = self._targets[job][key].address
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(t["labels"].get("job") == job and t["labels"].get("instance") == address
                   for t in self.targets()):  # fmt: skip
                return
            time.sleep(0.1)
        raise AssertionError(f"Prometheus did not discover {address} ({job})")

    def wait_scraped(self, job: str, scrapes: int = 1, timeout: float = 30.0) -> None:
        """Until every target of ``job`` (at least one) was scraped ``scrapes`` times from
        now (counted by its ``up`` samples). Target changes reach the scrape loop within
        ~5 s (Prometheus throttles discovery updates), hence the generous ``timeout``."""
        since = time.time()
        deadline = time.monotonic() + timeout + scrapes * self.interval
        while time.monotonic() < deadline:
            window = f"{max(1, round((time.time() - since) * 1000))}ms"
            result = self.query(f'count_over_time(up{{job="{job}"}}[{window}])')["result"]
            counts = {r["metric"].get("instance"): float(r["value"][1]) for r in result}
            wanted = {t["labels"]["instance"] for t in self.targets()
                      if t["labels"].get("job") == job}  # fmt: skip
            if wanted and all(counts.get(i, 0) >= scrapes for i in wanted):
                return
            time.sleep(self.interval / 4)
        raise AssertionError(f"the {job} targets were not scraped in time: {self.targets()}")


# --- Grafana dashboards' queries -------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One query of a dashboard panel, as written (``expr``) and as evaluated
    (``query``: variables substituted), with the series it returned."""

    title: str
    ref_id: str
    expr: str
    query: str = ""
    series: tuple[Series, ...] = ()


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?(\w+)\s*\)\s*$", re.S)
_META = re.compile(r"([.+*?()|\[\]{}^$\\])")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]`` replaced by
    ``values`` (Grafana's built-ins such as ``__rate_interval`` included); unknown names
    are left as they are (Prometheus will then refuse the query, which the test reports)."""

    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g is not None)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(one, expr)


def _regex(values: list[str]) -> str:
    """Several values as Grafana renders a multi-value variable for Prometheus: an
    alternation of regex-escaped values (escaped for a PromQL string literal too)."""
    escaped = [_META.sub(r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def _options(variable: Mapping[str, Any], prom: Prometheus, values: Mapping[str, str],
             start: float, end: float) -> list[str]:  # fmt: skip
    """The values a variable offers, as Grafana would list them."""
    kind = variable.get("type", "query")
    if kind == "custom":
        found = [str(o.get("value")) for o in variable.get("options") or []]
        return found or [v.strip() for v in str(variable.get("query", "")).split(",")]
    if kind in ("constant", "textbox", "interval"):
        return [str(variable.get("query", "")).split(",")[0].strip()]
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, Mapping) else str(query or "")
    parsed = _LABEL_VALUES.match(substitute(text, values))
    if parsed is None:
        raise ValueError(f"variable {variable.get('name')}: unsupported query {text!r}")
    options = prom.label_values(parsed.group(2), parsed.group(1), start, end)
    if variable.get("regex"):
        pattern = re.compile(str(variable["regex"]).strip("/"))
        options = [m.group(1) if m.groups() else v
                   for v in options if (m := pattern.search(v))]  # fmt: skip
    return options


def resolve_variables(
    dashboard: Mapping[str, Any], prom: Prometheus, start: float, end: float,
    overrides: Mapping[str, str] | None = None, rate_interval: str = "1m",
) -> dict[str, str]:  # fmt: skip
    """Each template variable's value, in order (later ones may use earlier ones): a
    multi-value or includeAll variable takes all its values, another its first (Grafana's
    defaults); ``overrides`` win. Datasource variables are left to Grafana."""
    step = max(1.0, (end - start) / 200)
    values: dict[str, str] = {
        "__rate_interval": rate_interval,
        "__interval": f"{step:g}s",
        "__interval_ms": f"{step * 1000:.0f}",
        "__range": f"{end - start:.0f}s",
        "__range_s": f"{end - start:.0f}",
    }
    values.update(overrides or {})
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        name = str(variable.get("name"))
        if name in values or variable.get("type") == "datasource":
            continue
        options = _options(variable, prom, values, start, end)
        if not options:
            raise AssertionError(f"variable {name} has no values: nothing exports its label")
        if variable.get("includeAll") and variable.get("allValue"):
            values[name] = str(variable["allValue"])
        else:
            every = variable.get("multi") or variable.get("includeAll")
            values[name] = _regex(options) if every else options[0]
    return values


def panel_results(
    prom: Prometheus, dashboard: Mapping[str, Any], start: float, end: float,
    step: float | None = None, overrides: Mapping[str, str] | None = None,
    rate_interval: str = "1m",
) -> list[Panel]:  # fmt: skip
    """Every query of ``dashboard`` evaluated over [start, end] (``step``: ~200 points by
    default), with its variables resolved (:func:`resolve_variables`)."""
    values = resolve_variables(dashboard, prom, start, end, overrides, rate_interval)
    step = step or max(1.0, (end - start) / 200)
    results = []
    for target in board_queries(dict(dashboard)):  # the renderer's reading of a board
        query = substitute(target.expr, values)
        series = prom.query_range(query, start, end, step)
        results.append(Panel(target.panel, target.ref, target.expr, query, tuple(series)))
    return results
