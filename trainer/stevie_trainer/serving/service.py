"""The service's state: the ensemble it was started with, loaded once, and what it decided.

Models come only from the ensemble.json the service was started with (its members'
folders); nothing in a request names a model or a path. Loading runs in a background
thread, so liveness answers at once and readiness turns true when the models are loaded
and warmed up (one decision on synthetic bars).

A decision is the ensemble's vote acted on under the ensemble's rules (:mod:`.rules`, the
backtest's: :attr:`Ensemble.env`). The service keeps no state between requests (any replica
answers alike), so the account in the request carries what the rules need: its target
(position), its weight (the band, rebalancing) and the bars since its target changed (the
hold).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from stevie_trainer.common import storage
from stevie_trainer.serving.bars import BarError, Bars
from stevie_trainer.serving.decisions_log import DecisionLog
from stevie_trainer.serving.metrics import ServeMetrics
from stevie_trainer.serving.rules import Acted, ActingRules, act, reason

if TYPE_CHECKING:  # torch and SB3 load in the loader thread, not at import
    from stevie_trainer.ensemble.agent import AccountState
    from stevie_trainer.ensemble.voting import Decision
    from stevie_trainer.serving.engine import Engine, Stats

__all__ = ["ServiceError", "Settings", "State", "read_document"]


class ServiceError(Exception):
    """An HTTP error answered as JSON (status, code, one-line message, where)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        needed: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.index = index
        self.needed = needed

    @classmethod
    def of(cls, err: BarError) -> ServiceError:
        return cls(422, err.code, err.message, field=err.field, index=err.index, needed=err.needed)


@dataclass(frozen=True)
class Settings:
    """How the service runs (the CLI's options)."""

    document: str  # ensemble.json: path or URI
    log_uri: str | None = None  # decision log folder (path or s3://), None: no log
    max_body_bytes: int = 1 << 20
    segment_records: int = 1000
    segment_seconds: float = 60.0
    torch_threads: int | None = 1  # None: leave torch's default
    freeze_gc: bool = False  # gc.freeze() once loaded: a server process's choice (the CLI's)
    fast_features: bool = True


def read_document(uri: str) -> dict[str, Any]:
    """The ensemble.json document (raises ValueError naming the problem)."""
    try:
        doc = json.loads(storage.read_text(uri))
    except (storage.StorageError, FileNotFoundError) as err:
        raise ValueError(f"cannot read the ensemble document {uri}: {err}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"the ensemble document {uri} is not JSON: {err}") from None
    if not isinstance(doc, dict) or not doc.get("members") or "method" not in doc:
        raise ValueError(f"{uri} is not an ensemble.json (needs method and members)")
    return doc


class State:
    """One replica: the document, the loaded engine, statistics, metrics and the log."""

    def __init__(self, settings: Settings, metrics: ServeMetrics) -> None:
        self.settings = settings
        self.doc = read_document(settings.document)
        self.name = str(self.doc.get("name") or "ensemble")
        self.version = str(self.doc.get("version") or "unversioned")
        self.method = str(self.doc["method"])
        self.member_names = [str(m.get("name")) for m in self.doc["members"]]
        self.metrics = metrics
        metrics.info.labels(self.name, self.version, self.method).set(1)
        self.engine: Engine | None = None
        self.levels: list[float] = []
        self.rules = ActingRules()
        self.stats: Stats | None = None
        self.error: str | None = None
        self.loaded_in: float | None = None
        self.log: DecisionLog | None = None
        self._loader: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def start(self) -> None:
        """Open the log and load the models in the background."""
        if self.settings.log_uri:
            self.log = DecisionLog(
                self.settings.log_uri,
                segment_records=self.settings.segment_records,
                segment_seconds=self.settings.segment_seconds,
            )
        self._loader = threading.Thread(target=self.load, name="ensemble-loader", daemon=True)
        self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        if self._loader is not None:
            self._loader.join(timeout)
        return self.ready

    def load(self) -> None:
        """Load the members from the document's folders, check the fast features, warm up."""
        started = time.perf_counter()
        try:
            if self.settings.torch_threads:
                import torch

                torch.set_num_threads(self.settings.torch_threads)
            from stevie_trainer.ensemble.decide import from_document
            from stevie_trainer.serving.engine import Engine, Stats

            engine = Engine(from_document(self.doc), use_fast=self.settings.fast_features)
            for problem in engine.problems:
                print(f"decision service: using compute_features: {problem}", file=sys.stderr)
            warm = synthetic_bars(engine.bars_needed)
            from stevie_trainer.ensemble.agent import FLAT

            for _ in range(3):
                engine.decide(warm, FLAT)
            self.stats = Stats(engine.ensemble.names)
            self.levels = [float(x) for x in engine.ensemble.grid]
            self.rules = ActingRules.of(engine.ensemble.env)
            if self.settings.freeze_gc:  # the models, torch, pandas: never garbage, so the
                gc.collect()  # collector stops walking them (~80 us a request otherwise)
                gc.freeze()
            self.engine = engine
            self.loaded_in = time.perf_counter() - started
            self.metrics.ready.set(1)
        except Exception as err:  # a member that cannot load: not ready, and why
            self.error = f"{type(err).__name__}: {err}"
            print(f"decision service: cannot load the ensemble: {self.error}", file=sys.stderr)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def require(self) -> tuple[Engine, Stats]:
        if self.engine is None or self.stats is None:
            why = f"the ensemble failed to load: {self.error}" if self.error else "models loading"
            raise ServiceError(503, "not_ready", why)
        return self.engine, self.stats

    def decide(
        self, bars: Bars, account: AccountState, request_id: str, since: int | None = None
    ) -> tuple[Decision, Acted, str | None]:
        """Check the bars, decide, act on the vote (``since``: bars since the account's
        target changed, None: unknown), count and log it; also why the rules changed it."""
        engine, stats = self.require()
        try:
            bars.check(engine.bars_needed)
        except BarError as err:
            raise ServiceError.of(err) from None
        if bars.volume is None and engine.needs_volume:
            raise ServiceError(
                422, "missing_volume", "this ensemble's members observe volume: send volume"
            )
        try:
            decision = engine.decide(bars, account)
        except BarError as err:
            raise ServiceError.of(err) from None
        acted = act(account.position, account.weight, decision.level, since, self.rules)
        why = reason(acted, decision.level, account.position, since, self.rules)
        stats.add(decision, acted)
        weights = dict(zip(self.member_names, decision.weights, strict=True))
        self.metrics.decision(acted.target, decision.consensus, decision.confidence, weights)
        if self.log is not None:
            self.log.record(self._entry(decision, bars, request_id, weights) | _acted(acted, why))
        return decision, acted, why

    def _entry(
        self, decision: Decision, bars: Bars, request_id: str, weights: dict[str, float]
    ) -> dict[str, Any]:
        return {
            "requestId": request_id,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "barTime": bars.last_time(),
            "bars": len(bars),
            "votes": dict(zip(self.member_names, decision.votes, strict=True)),
            "weights": weights,
            "proposed": decision.level,
            "confidence": decision.confidence,
            "consensus": decision.consensus,
            "version": self.version,
        }

    def snapshot(self) -> dict[str, Any]:
        _, stats = self.require()
        assert self.engine is not None
        return {
            "name": self.name,
            "version": self.version,
            "method": self.method,
            **stats.snapshot(),
            "features": self.engine.features_mode,
            "log": None if self.log is None else self.log.snapshot(),
        }


def _acted(acted: Acted, why: str | None) -> dict[str, Any]:
    """The decision log's fields of the acted decision (``action`` is the target held)."""
    return {
        "action": acted.target,
        "trade": acted.trade,
        "held": acted.held,
        "holdLeft": acted.hold_left,
        "reason": why,
    }


def synthetic_bars(n: int, seed: int = 0) -> Bars:
    """A random walk of ``n`` daily bars (warm-up decisions)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    t = (np.arange(n, dtype=np.int64) + 18_000) * 86_400 * 1_000_000_000
    vol = rng.lognormal(10.0, 1.0, n)
    return Bars(t, close, close * 1.01, close * 0.99, close, vol)
