"""The monitored scenario of the real-Prometheus e2e test: everything Stevie exports, live,
scraped by a real Prometheus on loopback, as the chart's monitors would scrape a cluster.

- the operator (kopf against kmock, see :mod:`support.kmock`) serving its /metrics where
  ``STEVIE_METRICS_PORT`` says (the app's own startup handler serves it), job
  ``stevie-operator`` with honor_labels (its namespace/name labels are the resources');
- its Jobs run as local processes by a kubelet (:mod:`support.kubelet`) that gives each one
  a free metrics port (a pod's 9090 would clash here) and registers it as a
  ``stevie-trainer`` target with the labels the PodMonitor derives from the pod's labels,
  removed when the process exits (as a finished pod leaves discovery);
- a TrainingRun with a curriculum (its process serves metrics from the start of training
  to its exit, after the test backtest: long enough for a few scrapes), one whose
  data does not exist (its Job fails), an HPOStudy of 1 trial and a PBTPopulation of
  2 members x 1 interval (every process is a fresh interpreter, as a pod is: the fewer,
  the faster);
- the decision service (the app, in this process) of an Ensemble of the TrainingRun's
  model, target ``stevie-serve``, answering decisions, bad requests and probes.

Range queries over the scenario's window see everything (an instant query after a trainer
exited would not: Prometheus marks a vanished target's series stale).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import kopf
import uvicorn

from stevie_operator.framework.kind import Context
from stevie_operator.framework.pods import KIND_LABEL, NAME_LABEL, ROLE_LABEL
from stevie_operator.framework.registration import context_of
from stevie_operator.local.launcher import LocalLauncher
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble.decide import document
from stevie_trainer.ensemble.members import MemberRef, resolve
from stevie_trainer.serving.app import create_app
from support.kmock import Cluster, operator, wait_for
from support.kubelet import Kubelet
from support.prometheus import Prometheus, Series, Target, free_port
from support.specs import BUNDLED, hpo_study, pbt_population, template

__all__ = ["JOBS", "NAMESPACE", "Scraped", "monitored"]

NAMESPACE = "default"
OPERATOR_NAMESPACE = "stevie-system"
JOBS = {"stevie-operator": True, "stevie-trainer": False, "stevie-serve": False}
ENSEMBLE = "e2e-ens"
TRAINED_JOB = "e2e-tr-train"  # the TrainingRun's Job: started once Prometheus knows its target
API = "/apis/stevie.dev/v1alpha1/namespaces/default"


def resources() -> dict[str, dict[str, Any]]:
    """The resources of the scenario by API path, each small enough to finish in seconds."""
    run = template(
        totalTimesteps=2048,
        evaluation={"evalFreq": 1024},
        curriculum={"enabled": True, "promotion": "steps", "stages": ["stable", "moderate"]},
    )
    broken = template(data={"uri": "pkg://gym_anytrading/datasets/data/NO_SUCH.csv"})
    return {
        f"{API}/trainingruns": {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
                                "metadata": {"name": "e2e-tr"}, "spec": run},
        f"{API}/trainingruns#broken": {"apiVersion": "stevie.dev/v1alpha1", "kind": "TrainingRun",
                                       "metadata": {"name": "e2e-broken"}, "spec": broken},
        f"{API}/hpostudies": hpo_study("e2e-hpo", maxTrials=1, parallelism=1,
                                       significance={"enabled": False}),
        f"{API}/pbtpopulations": pbt_population("e2e-pbt", populationSize=2, parallelism=2,
                                                quantileFraction=0.5,
                                                stopping={"maxIntervals": 1}),
    }  # fmt: skip


def pod_labels(
    labels: Mapping[str, str], namespace: str, pod: str, container: str
) -> dict[str, str]:
    """The target labels the chart's PodMonitors give a pod: namespace, pod, container and
    the stevie.dev/{kind,name,role} pod labels as stevie_{kind,name,role}."""
    found = {"namespace": namespace, "pod": pod, "container": container}
    for label, target in ((KIND_LABEL, "stevie_kind"), (NAME_LABEL, "stevie_name"),
                          (ROLE_LABEL, "stevie_role")):  # fmt: skip
        if label in labels:
            found[target] = labels[label]
    return found


class MetricsLauncher(LocalLauncher):
    """Fresh processes (never forked from a process running kopf), each serving its metrics
    on a port of its own, registered with Prometheus while it runs."""

    def __init__(self, prom: Prometheus, hold: frozenset[str] = frozenset()) -> None:
        super().__init__(fork=False)
        self.prom = prom
        self.hold = hold
        self._port = 0

    def start(self, job: Mapping[str, Any], secrets: Any, log: Path | None) -> None:
        name = str(job["metadata"]["name"])
        if name not in self.processes:
            self._port = free_port()
            template = job["spec"]["template"]
            labels = pod_labels(template["metadata"].get("labels") or {},
                                job["metadata"].get("namespace", NAMESPACE), f"{name}-x7k2p",
                                template["spec"]["containers"][0]["name"])  # fmt: skip
            self.prom.set_target("stevie-trainer", name, Target(f"127.0.0.1:{self._port}", labels))
            if name in self.hold:  # discovery takes up to 5 s: a short process could end first
                self.prom.wait_discovered("stevie-trainer", name)
        super().start(job, secrets, log)

    def _spawn(  # type: ignore[override]  # an instance's: it needs the Job's port
        self, argv: list[str], env: dict[str, str], log: Path | None
    ) -> subprocess.Popen[bytes]:
        return LocalLauncher._spawn(argv, env | {"STEVIE_METRICS_PORT": str(self._port)}, log)


class MetricsKubelet(Kubelet):
    """The kubelet, with :class:`MetricsLauncher`; an exited process leaves discovery."""

    def __init__(self, cluster: Cluster, logs: Path, prom: Prometheus) -> None:
        super().__init__(cluster, logs)
        self.launcher = MetricsLauncher(prom, hold=frozenset({TRAINED_JOB}))
        self.prom = prom
        self._gone: set[str] = set()

    def _tend(self, job: dict[str, Any]) -> None:
        super()._tend(job)
        name = job["metadata"]["name"]
        if name not in self._gone and self.launcher.processes[name].exit_code() is not None:
            self._gone.add(name)
            self.prom.set_target("stevie-trainer", name, None)


@dataclass
class Scraped:
    """What the scenario left in Prometheus: the server (still running), the window the
    scenario ran in, and the final status of each resource by name."""

    prom: Prometheus
    start: float
    end: float
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """The query function dashboards' renderers take (labels, [(t, value)])."""
        return self.prom.query_range(expr, start, end, step)


def _finished(cluster: Cluster, path: str) -> dict[str, Any] | None:
    status = (cluster.api("GET", path) or {}).get("status") or {}
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def _wait_finished(cluster: Cluster, path: str, name: str) -> dict[str, Any]:
    return wait_for(lambda: _finished(cluster, path), 240, f"{name} to finish")


class Service:
    """The decision service (uvicorn in a thread) on a socket bound before Prometheus
    starts: its target is known from the start (it is down until the service runs)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, ensemble_json: Path) -> None:
        app = create_app(str(ensemble_json), torch_threads=1)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(30)
        self.sock.close()


def _ensemble(run_folder: str, folder: Path) -> Path:
    """ensemble.json of two members sharing the TrainingRun's model."""
    refs = [MemberRef(name=n, source="TrainingRun", uri=run_folder) for n in ("a", "b")]
    doc = document(ENSEMBLE, [resolve(r) for r in refs], "performance_weighted")
    path = folder / "ensemble.json"
    path.write_text(json.dumps(doc))
    return path


def _traffic(url: str) -> None:
    """Probes until ready (503s while the models load), then decisions and bad requests
    spread over a few scrapes."""
    frame = load_ohlcv(BUNDLED).iloc[-200:]
    bars = [{"time": t.isoformat().replace("+00:00", "Z"), "open": b.open, "high": b.high,
             "low": b.low, "close": b.close, "volume": b.volume}
            for t, b in zip(frame.index, frame.itertuples(index=False), strict=True)]  # fmt: skip
    with httpx.Client(base_url=url, timeout=30) as client:
        wait_for(lambda: client.get("/v2/health/ready").status_code == 200, 60, "service ready")
        for i in range(24):
            answer = client.post("/v1/decide", json={"bars": bars[i:]})
            assert answer.status_code == 200, answer.text
            if i % 8 == 0:
                assert client.post("/v1/decide", json={"bars": []}).status_code == 422
            time.sleep(0.15)


@contextlib.contextmanager
def _operator(cluster: Cluster, contexts: list[Context]) -> Iterator[None]:
    """The operator (every kind), its context kept to close its metrics server after."""
    runner = operator()

    @kopf.on.startup(registry=runner.registry)
    def keep(memo: kopf.Memo, **_: Any) -> None:
        contexts.append(context_of(memo))

    with runner:
        yield
        cluster.settle()


@contextlib.contextmanager
def monitored(folder: Path, monkeypatch: Any) -> Iterator[Scraped]:
    """Run the scenario under a real Prometheus (1 s scrapes); yield what it scraped. The
    server keeps running until the caller leaves the context (queries of the window)."""
    operator_port, service, t0 = free_port(), Service(), time.time()
    prom = Prometheus(JOBS, folder / "prometheus", interval=1.0)
    labels = {"namespace": OPERATOR_NAMESPACE, "pod": "stevie-operator-5c7d9-q2x4z",
              "container": "operator", "endpoint": "metrics"}  # fmt: skip
    prom.set_target("stevie-operator", "operator", Target(f"127.0.0.1:{operator_port}", labels))
    serve_labels = {KIND_LABEL: "Ensemble", NAME_LABEL: ENSEMBLE, ROLE_LABEL: "serve"}
    pod = pod_labels(serve_labels, NAMESPACE, f"{ENSEMBLE}-serve-6f8b4-k9s2d", "decision-service")
    prom.set_target("stevie-serve", "service", Target(service.url.removeprefix("http://"), pod))
    contexts: list[Context] = []
    with prom, Cluster() as cluster:
        scraped = Scraped(prom, t0, t0)
        monkeypatch.setenv("STEVIE_KUBE_SERVER", cluster.url)
        monkeypatch.setenv("STEVIE_STORAGE_URI", (folder / "data").as_uri())
        monkeypatch.setenv("STEVIE_METRICS_PORT", str(operator_port))
        try:
            with MetricsKubelet(cluster, folder / "logs", prom), _operator(cluster, contexts):
                _run(cluster, service, folder, scraped)
        finally:
            service.stop()
            for ctx in contexts:
                ctx.metrics.close()
        yield scraped


def _run(cluster: Cluster, service: Service, folder: Path, scraped: Scraped) -> None:
    """Apply the resources, serve the TrainingRun's model once trained, wait for the rest."""
    docs = resources()
    for path, doc in docs.items():
        cluster.api("POST", path.split("#")[0], doc)
    paths = {doc["metadata"]["name"]: f"{path.split('#')[0]}/{doc['metadata']['name']}"
             for path, doc in docs.items()}  # fmt: skip
    trained = _wait_finished(cluster, paths["e2e-tr"], "e2e-tr")
    scraped.timings["trainingrun"] = time.time() - scraped.start
    assert trained["phase"] == "Succeeded", trained
    service.start(_ensemble(trained["artifacts"]["uri"], folder))
    _traffic(service.url)
    scraped.timings["served"] = time.time() - scraped.start
    for name, path in paths.items():
        scraped.statuses[name] = _wait_finished(cluster, path, name)
    scraped.timings["finished"] = time.time() - scraped.start
    for job in ("stevie-operator", "stevie-serve"):  # the final state is in Prometheus
        scraped.prom.wait_scraped(job, scrapes=2)
    scraped.end = time.time()
