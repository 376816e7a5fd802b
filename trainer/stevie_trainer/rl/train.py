"""Train one TrainingRun: BC pre-training, PPO/DQN, validation, checkpoints, test report.

``train(spec, out)`` is idempotent and resumable: a run whose result.json exists is returned
as is; otherwise the latest complete checkpoint under ``out`` is loaded and training goes on
to ``totalTimesteps``. A run directory belongs to one spec: a different spec is refused.
With ``evaluation.walkForward`` the run trains one agent per fold instead
(:mod:`stevie_trainer.rl.walkforward`, one market or several); without it, this module's
single split, unchanged.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

import stevie_trainer
from stevie_api.changes import changed_paths
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.common.telemetry import TrainerMetrics
from stevie_trainer.env.prepare import Prepared
from stevie_trainer.evaluation.baselines import BASELINES, make_baseline
from stevie_trainer.evaluation.episode import Episode, run_policy
from stevie_trainer.evaluation.performance import annualisation_note, format_table
from stevie_trainer.evaluation.plots import equity_png
from stevie_trainer.evaluation.pooled import pool_metrics
from stevie_trainer.rl.agent import AgentPolicy, load_model, save_model
from stevie_trainer.rl.callbacks import (
    CheckpointCallback,
    ProgressCallback,
    RunState,
    ValidationCallback,
)
from stevie_trainer.rl.session import open_session


class RunConflictError(ValueError):
    """``--out`` already holds a run of another spec (refused: never overwrite work)."""


def spec_json(spec: TrainingRunSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True, exclude_none=True, mode="json")


# Where and how the pods run, not what they train: a run resumed by a Job with another
# image, deadline or node selector (a re-created Job, an upgraded operator) is the same run.
_NOT_TRAINED = frozenset(
    f"spec.{name}"
    for name in (
        "image",
        "imagePullPolicy",
        "resources",
        "nodeSelector",
        "tolerations",
        "backoffLimit",
        "activeDeadlineSeconds",
        "serviceAccountName",
    )
)


def claim(store: RunStore, spec: TrainingRunSpec) -> None:
    """Record the spec under ``out``, or check it trains what the one already there trains.
    Compared normalised (:func:`stevie_api.changes.changed_paths`): a spec.json written
    before a defaulted field was added is the same spec."""
    mine = spec_json(spec)
    theirs = store.read_json("spec.json")
    if theirs is None:
        store.write_json("spec.json", mine)
        return
    changed = changed_paths(theirs, spec, type(spec))
    changed = [p for p in changed if ".".join(p.split(".")[:2]) not in _NOT_TRAINED]
    if changed:
        raise RunConflictError(
            f"{store.out} holds a run of a different spec (differs in: {', '.join(changed)}); "
            "use another --out, or delete it to start over"
        )


def train(
    spec: TrainingRunSpec,
    out: str,
    *,
    name: str | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train (or resume, or return the finished result of) the run under ``out``."""
    say = log or (lambda message: print(message, flush=True))
    store = RunStore(out)
    done = store.read_json("result.json")
    claim(store, spec)
    if done is not None and done.get("status") == "succeeded":
        say(f"{store.out}: already finished; result.json is up to date")
        return done
    if spec.evaluation.walk_forward is not None:  # one agent per fold (rl/walkforward.py)
        from stevie_trainer.rl.walkforward import describe_folds, train_walk_forward

        result = train_walk_forward(spec, store, say, name=name)
        store.write_json("result.json", result)
        say(result_table(result) + "\n" + describe_folds(result))
        return result
    started = time.monotonic()
    # TensorBoard writes local files: straight into a local run folder, or into a scratch
    # folder uploaded under <out>/tensorboard/ at the end for an s3:// run.
    tb_local = storage.local_path(store.uri("tensorboard"))
    tb_dir = tb_local or Path(tempfile.mkdtemp(prefix="stevie-tb-"))
    session = open_session(
        spec, say, name=name, checkpoint=store.latest_checkpoint(), tensorboard_log=str(tb_dir)
    )
    # Labelled by the run (its folder's name: the TrainingRun's, or a trial's), not the market.
    metrics = TrainerMetrics(name or store.out.rstrip("/").rsplit("/", 1)[-1])
    port = metrics.serve()
    if port:
        say(f"metrics on :{port}/metrics")
    state = session.state
    checkpoints = CheckpointCallback(
        store,
        state,
        spec.checkpoint.interval_steps,
        spec.checkpoint.keep,
        lambda: {"bc": session.bc_report},
    )
    curriculum, stage = session.curriculum()
    callbacks: list[BaseCallback] = [
        ValidationCallback(session.prepared, store, state, spec.evaluation.eval_freq),
        checkpoints,
        *curriculum,
        ProgressCallback(store, state, metrics, stage=stage),
    ]
    t0 = time.monotonic()
    if session.learn(callbacks):
        checkpoints.save()
    train_seconds = time.monotonic() - t0
    store.write_bytes("final.zip", save_model(session.model))
    if tb_local is None:
        upload_tree(tb_dir, store.uri("tensorboard"))
    result = report(session.prepared, store, state, session.model, session.bc_report)
    result["timings"] = {
        "total_seconds": round(time.monotonic() - started, 2),
        "train_seconds_this_process": round(train_seconds, 2),
    }
    store.write_json("result.json", result)
    say(result_table(result))
    return result


def upload_tree(folder: Path, uri: str) -> None:
    """Copy every file under ``folder`` to ``uri`` (same relative paths), then remove it."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        storage.write_bytes(storage.join(uri, *path.relative_to(folder).parts), path.read_bytes())
    shutil.rmtree(folder, ignore_errors=True)


def report(
    prepared: Prepared,
    store: RunStore,
    state: RunState,
    model: BaseAlgorithm,
    bc_report: dict[str, Any] | None,
) -> dict[str, Any]:
    """Test-split evaluation of the best model beside the baselines; result.json content."""
    spec = prepared.spec
    best = load_model(spec, storage.read_bytes(store.uri("model.zip")))
    test = test_backtest(prepared, best, store) if not prepared.parts else None
    markets: dict[str, Any] = {}
    if test is None:
        test, markets = test_markets(prepared, best, store)
    result = {
        "status": "succeeded",
        "finished_at": iso_now(),
        "timesteps": int(model.num_timesteps),
        "algorithm": spec.algorithm,
        "data": data_block(prepared),
        "annualisation": test["annualisation"],
        "validation": state.best_validation,
        "best_timesteps": state.best_timesteps,
        "evaluations": state.evaluations,
        "test_period": test["test_period"],
        "test": test["test"],
        "behaviour_cloning": bc_report,
        "augmentation": prepared.augmentation or None,
        "curriculum": state.curriculum,
        "resumed_from": state.resumed_from,
        "artifacts": {
            "model": store.uri("model.zip"),
            "final_model": store.uri("final.zip"),
            "equity_plot": test["equity_plot"],
            "tensorboard": store.uri("tensorboard"),
        },
        "versions": versions(),
    }
    if markets:
        result["validation_markets"] = state.best_validation_markets
        result["test_markets"] = markets
    return result


def data_block(prepared: Prepared) -> dict[str, Any]:
    """result.json's ``data``: the market's URI and name, or every market's."""
    if not prepared.parts:
        return {"uri": prepared.spec.data.uri, "name": prepared.market.name}
    return {
        "uri": None,
        "name": " + ".join(p.market.name for p in prepared.parts),
        "markets": [{"uri": p.data.uri if p.data else None, "name": p.market.name}
                    for p in prepared.parts],
    }  # fmt: skip


def test_markets(
    prepared: Prepared, model: BaseAlgorithm, store: RunStore, name: str = "agent"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A multi-market run's test report: the pooled block (the keys of
    :func:`test_backtest`'s, each policy's metrics pooled by
    :func:`~stevie_trainer.evaluation.pooled.pool_metrics`) and each market's own (its
    plot ``equity-<k>.png``); ``name``: the agent's column."""
    markets = {
        p.market.name: test_backtest(p, model, store, name, plot=f"equity-{k}.png")
        for k, p in enumerate(prepared.parts)
    }
    first = next(iter(markets.values()))
    policies = list(first["test"])
    periods = [m["test_period"] for m in markets.values()]
    rates = {m["annualisation"]["bars_per_year"] for m in markets.values()}
    pooled = {
        "test": {
            name: pool_metrics({k: m["test"][name] for k, m in markets.items()})
            for name in policies
        },
        "test_period": {
            "first_decision": min(str(p["first_decision"]) for p in periods),
            "last_bar": max(str(p["last_bar"]) for p in periods),
        },
        "annualisation": {
            "bars_per_year": rates.pop() if len(rates) == 1 else None,
            "note": f"pooled over {len(markets)} markets (each market's mean, counts "
            "summed; each annualised by its own bars per year: see test_markets)",
        },
        "equity_plot": first["equity_plot"],
    }
    return pooled, markets


def versions() -> dict[str, str]:
    """Versions that decide what a result means (reported beside it)."""
    return {
        "stevie": stevie_trainer.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def test_backtest(
    prepared: Prepared,
    model: BaseAlgorithm,
    store: RunStore,
    name: str = "agent",
    *,
    plot: str = "equity.png",
) -> dict[str, Any]:
    """``model`` on the test split beside the baselines: metrics per policy, the period, the
    annualisation note, and the equity plot (``plot``) under ``store``."""
    spec = prepared.spec
    data = prepared.data or spec.data
    bounds = prepared.splits.test
    policies = [AgentPolicy(model, name)] + [
        make_baseline(b, prepared.market.features.indicators, spec.expert, seed=spec.seed)
        for b in BASELINES
    ]
    episodes: dict[str, Episode] = {
        p.name: run_policy(prepared.market, spec.env, bounds, p, split_name="test split")
        for p in policies
    }
    source = "set in spec" if data.bars_per_year else "measured from data"
    note = annualisation_note(
        prepared.market.bars_per_year, prepared.market.bar_size, source=source
    )
    plot_uri = store.write_bytes(
        plot,
        equity_png(episodes, title=f"{prepared.market.name}: {name} on the test split", note=note),
    )
    first, last = episodes[name].timestamps[[0, -1]]
    return {
        "test": {k: ep.performance().to_dict() for k, ep in episodes.items()},
        "test_period": {"first_decision": str(first), "last_bar": str(last)},
        "annualisation": {"bars_per_year": prepared.market.bars_per_year, "note": note},
        "equity_plot": plot_uri,
    }


def result_table(result: dict[str, Any]) -> str:
    """The test table of a result.json (agent beside the baselines) plus validation."""
    from stevie_trainer.evaluation.performance import Performance

    def perf(d: dict[str, Any]) -> Performance:
        values: dict[str, Any] = {k: (np.nan if v is None else v) for k, v in d.items()}
        return Performance(**values)

    columns = {k: perf(v) for k, v in result["test"].items()}
    period = result["test_period"]
    title = f"Test split, {period['first_decision']} .. {period['last_bar']}"
    lines = [format_table(columns, title=title, note=result["annualisation"]["note"])]
    val = result.get("validation") or {}
    sharpe, ret = val.get("sharpe"), val.get("total_return")
    lines.append(
        "validation (model selection): Sharpe "
        + ("n/a" if sharpe is None else f"{sharpe:.2f}")
        + ", total return "
        + ("n/a" if ret is None else f"{ret:+.2%}")
        + f", best model at {result.get('best_timesteps')} timesteps"
    )
    return "\n".join(lines)
