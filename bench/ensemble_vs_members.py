"""Do ensembles reduce the variance of results? The seed project claimed "ensemble methods
reduce prediction variance by 60%". Measured here on real markets, test split only.

Per market: PPO and DQN agents, ``--seeds`` each (small budgets), trained as TrainingRuns
(``stevie_trainer.rl.train.train``) in 2 processes. Then, in the same simulator as the
ensemble backtest (same bars, fees and fills for everyone):

1. one ensemble of ALL the agents: each agent alone and each voting method on the test split
   (Sharpe, return, max drawdown), and the method validation would have chosen;
2. the spread of test returns across seeds: single agents vs ensembles built from DISJOINT
   seed groups (so every ensemble is an independent draw, as every single agent is): pairs
   {PPO seed s, DQN seed s}, quads {PPO s, s+1, DQN s, s+1}, and same-algorithm pairs.
   Variance reduction = 1 - var(ensembles) / var(the singles they are built from), with an
   F-test p-value (one-sided: ensembles less variable).

    python bench/ensemble_vs_members.py [--markets BTCUSDT_1h.csv,ETHUSDT_1h.csv,SPY_1d.csv]
        [--seeds 8] [--ppo-steps 65536] [--dqn-steps 65536] [--workers 2] [--out DIR]

Without ../shared/data, bundled data stands in (GOOGL dailies, EUR/USD hourly), with a note.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BUNDLED = {
    "1h": "pkg://gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv",
    "1d": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv",
}
METRICS = ("sharpe", "total_return", "max_drawdown", "exposure")


def data_uri(name: str) -> tuple[str, str]:
    """The shared file, or bundled data of the same bar size (and a note saying so)."""
    if (SHARED / name).is_file():
        return str(SHARED / name), ""
    uri = BUNDLED["1h" if "_1h" in name else "1d"]
    return uri, f"{SHARED / name} is absent: bundled {uri.rsplit('/', 1)[-1]} stands in"


def spec_doc(uri: str, algo: str, seed: int, steps: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "data": {"uri": uri},
        "algorithm": algo,
        "seed": seed,
        "env": {"episodeLength": 1000},
        "policy": {"netArch": [64, 64]},
        "totalTimesteps": steps,
        "nEnvs": 8,
        "evaluation": {"evalFreq": max(steps // 8, 1024)},
        "checkpoint": {"intervalSteps": steps},
    }
    if algo == "PPO":
        doc["ppo"] = {"nSteps": 256, "batchSize": 256, "nEpochs": 4}
    else:
        doc["dqn"] = {"learningStarts": 1000, "bufferSize": 50000, "batchSize": 64}
    return doc


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def train_one(job: tuple[str, dict[str, Any]]) -> str:
    """Train (or find finished) one agent; its folder."""
    from stevie_api.training import TrainingRunSpec
    from stevie_trainer.rl.train import train

    out, doc = job
    train(TrainingRunSpec.model_validate(doc), out, log=lambda _: None)
    return out


def agent_names(seeds: int) -> list[str]:
    return [f"{a}-{s}" for a in ("ppo", "dqn") for s in range(seeds)]


def groups(seeds: int) -> dict[str, list[list[str]]]:
    """Disjoint seed groups: every agent is in at most one ensemble of a kind."""
    half = range(0, seeds - 1, 2)
    return {
        "pair PPO+DQN": [[f"ppo-{s}", f"dqn-{s}"] for s in range(seeds)],
        "quad PPO+DQN": [[f"ppo-{s}", f"ppo-{s + 1}", f"dqn-{s}", f"dqn-{s + 1}"] for s in half],
        "pair PPO": [[f"ppo-{s}", f"ppo-{s + 1}"] for s in half],
        "pair DQN": [[f"dqn-{s}", f"dqn-{s + 1}"] for s in half],
    }


def reference(kind: str) -> str:
    """The singles an ensemble kind is drawn from."""
    return {"pair PPO": "single PPO", "pair DQN": "single DQN"}.get(kind, "single (all)")


def _metrics(perf: dict[str, Any]) -> dict[str, float]:
    return {k: float("nan") if perf[k] is None else float(perf[k]) for k in METRICS}


def evaluate_market(job: tuple[str, str, dict[str, str]]) -> dict[str, Any]:
    """Full ensemble (both splits, every method) and the disjoint-group ensembles (test)."""
    from stevie_trainer.data.ohlcv import load_ohlcv
    from stevie_trainer.ensemble.agent import load_member
    from stevie_trainer.ensemble.backtest import run_backtest, run_split
    from stevie_trainer.ensemble.decide import Ensemble
    from stevie_trainer.ensemble.members import MemberRef, resolve
    from stevie_trainer.ensemble.voting import METHODS
    from stevie_trainer.env.prepare import data_splits

    label, uri, folders = job
    started = time.monotonic()
    loaded = {
        n: load_member(resolve(MemberRef(name=n, source="TrainingRun", uri=f)))
        for n, f in folders.items()
    }
    data = next(iter(loaded.values())).spec.data
    frame = load_ohlcv(uri)
    full = Ensemble(list(loaded.values()), "performance_weighted")
    bt = run_backtest(full, frame, data, label)
    test, val = bt.splits["test"], bt.splits["validation"]
    perf = {k: ep.performance().to_dict() for k, ep in test.episodes.items()}
    out: dict[str, Any] = {
        "label": label,
        "bars": test.episodes["ensemble"].performance().bars,
        "singles": {n: _metrics(perf[n]) for n in loaded},
        "baselines": {b: _metrics(perf[b]) for b in ("buy-and-hold", "expert", "random")},
        "full": {m: _metrics(ep.performance().to_dict()) for m, ep in test.methods.items()},
        "full_validation": {
            m: _metrics(ep.performance().to_dict()) for m, ep in val.methods.items()
        },
        "validation_sharpe": {
            n: _metrics(val.episodes[n].performance().to_dict())["sharpe"] for n in loaded
        },
        "ensembles": {},
    }
    markets = full.markets(frame, data.bars_per_year)
    bounds = data_splits(markets[0], data).test
    seeds = len(loaded) // 2
    for kind, members in groups(seeds).items():
        rows: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
        for names in members:
            ens = Ensemble([loaded[n] for n in names], "performance_weighted")
            mk = [markets[list(loaded).index(n)] for n in names]
            run = run_split(ens, mk, bounds, "test", baselines=())
            for m, ep in run.methods.items():
                rows[m].append(_metrics(ep.performance().to_dict()))
        out["ensembles"][kind] = rows
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def spread(values: Sequence[float]) -> tuple[float, float]:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1))


def f_test(ens: Sequence[float], ref: Sequence[float]) -> float:
    """One-sided p-value of var(ens) < var(ref) (normal samples); nan with < 2 of either."""
    from scipy import stats

    a = np.asarray([v for v in ens if np.isfinite(v)])
    b = np.asarray([v for v in ref if np.isfinite(v)])
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    ratio = float(np.var(a, ddof=1) / np.var(b, ddof=1))
    return float(stats.f.cdf(ratio, len(a) - 1, len(b) - 1))


def singles_by(result: dict[str, Any], metric: str) -> dict[str, list[float]]:
    value = {n: m[metric] for n, m in result["singles"].items()}
    return {
        "single PPO": [v for n, v in value.items() if n.startswith("ppo")],
        "single DQN": [v for n, v in value.items() if n.startswith("dqn")],
        "single (all)": list(value.values()),
    }


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:+.1%}"


def _num(v: float, spec: str) -> str:
    return "n/a" if not np.isfinite(v) else format(v, spec)


Cell = tuple[str, str, str, float, float]  # market, kind, method, variance cut, p


def print_policies(result: dict[str, Any], note: str) -> None:
    print(f"\n=== {result['label']}: test split, {result['bars']} bars ({result['seconds']} s)")
    if note:
        print(f"    note: {note}")
    print(f"{'policy':<44}{'Sharpe':>8}{'return':>10}{'max DD':>10}")
    rows = {**result["singles"], **result["baselines"]}
    rows |= {f"ensemble of all ({m})": v for m, v in result["full"].items()}
    for name, m in rows.items():
        print(f"{name:<44}{_num(m['sharpe'], '.2f'):>8}{_pct(m['total_return']):>10}"
              f"{_pct(m['max_drawdown']):>10}")  # fmt: skip
    val = result["full_validation"]
    chosen = max(val, key=lambda k: np.nan_to_num(val[k]["sharpe"], nan=-np.inf))
    vs = result["validation_sharpe"]
    best = max(vs, key=lambda k: np.nan_to_num(vs[k], nan=-np.inf))
    print(f"validation would choose method {chosen} (test Sharpe "
          f"{_num(result['full'][chosen]['sharpe'], '.2f')}) and member {best} (test Sharpe "
          f"{_num(result['singles'][best]['sharpe'], '.2f')})")  # fmt: skip


def print_spread(result: dict[str, Any], metric: str) -> list[Cell]:
    """Spread of ``metric`` across seeds: singles, then each ensemble kind and method."""
    singles = singles_by(result, metric)
    fmt = ".2f" if metric == "sharpe" else ".1%"
    exposure = singles_by(result, "exposure")
    print(f"\n{'test ' + metric + ' across seeds':<44}{'n':>3}{'mean':>9}{'std':>9}"
          f"{'var cut':>9}{'p':>6}{'exposure':>10}")  # fmt: skip
    for kind, values in singles.items():
        mean, std = spread(values)
        held = spread(exposure[kind])[0]
        print(f"{kind:<44}{len(values):>3}{_num(mean, fmt):>9}{_num(std, fmt):>9}"
              f"{'':>15}{_num(held, '.0%'):>10}")  # fmt: skip
    found = []
    for kind, methods in result["ensembles"].items():
        ref = singles[reference(kind)]
        for method, rows in methods.items():
            values = [r[metric] for r in rows]
            mean, std = spread(values)
            cut = 1.0 - std**2 / spread(ref)[1] ** 2
            p = f_test(values, ref)
            found.append((result["label"], kind, method, cut, p))
            held = spread([r["exposure"] for r in rows])[0]
            print(f"{kind + ' ' + method:<44}{len(values):>3}{_num(mean, fmt):>9}"
                  f"{_num(std, fmt):>9}{_num(cut, '+.0%'):>9}{_num(p, '.2f'):>6}"
                  f"{_num(held, '.0%'):>10}")  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markets", default="BTCUSDT_1h.csv,ETHUSDT_1h.csv,SPY_1d.csv")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--ppo-steps", type=int, default=65536)
    parser.add_argument("--dqn-steps", type=int, default=65536)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-ensemble-bench-"))
    started = time.monotonic()
    markets = {name.removesuffix(".csv"): data_uri(name) for name in args.markets.split(",")}
    jobs: list[tuple[str, dict[str, Any]]] = []
    folders: dict[str, dict[str, str]] = {}
    for label, (uri, _) in markets.items():
        folders[label] = {}
        for name in agent_names(args.seeds):
            algo, seed = name.split("-")
            steps = args.ppo_steps if algo == "ppo" else args.dqn_steps
            out = str(root / label / name)
            folders[label][name] = out
            jobs.append((out, spec_doc(uri, algo.upper(), int(seed), steps)))
    os.environ["OMP_NUM_THREADS"] = "1"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_one_thread) as pool:
        list(pool.map(train_one, jobs))
        trained = time.monotonic() - started
        evals = [(label, uri, folders[label]) for label, (uri, _) in markets.items()]
        results = list(pool.map(evaluate_market, evals))
    print(f"{len(jobs)} agents ({args.seeds} seeds x PPO {args.ppo_steps} / DQN "
          f"{args.dqn_steps} steps) trained in {trained:.0f} s; runs in {root}")  # fmt: skip
    found: dict[str, list[Cell]] = {"total_return": [], "sharpe": []}
    for result in results:
        print_policies(result, markets[result["label"]][1])
        for metric, cells in found.items():
            cells += print_spread(result, metric)
    verdict(found, results, time.monotonic() - started)


def verdict(found: dict[str, list[Cell]], results: list[dict[str, Any]], seconds: float) -> None:
    """Median variance cut per metric, how many cells are significant, and the mean effect."""
    print("\nVerdict (variance cut = 1 - var(ensembles) / var(single agents), test split):")
    for metric, cells in found.items():
        cuts = np.array([c for *_, c, _ in cells if np.isfinite(c)])
        sig = sum(p < 0.05 for *_, p in cells if np.isfinite(p))
        if not len(cuts):
            print(f"  {metric}: no ensemble kind has 2 or more ensembles (use more --seeds)")
            continue
        pairs = [c for _, k, m, c, _ in cells if k == "pair PPO+DQN" and m == "majority"]
        print(
            f"  {metric}: median cut {np.median(cuts):+.0%} over {len(cuts)} (market, kind, "
            f"method) cells (range {cuts.min():+.0%} .. {cuts.max():+.0%}); {sig} significant "
            f"at 5% (one-sided F-test); PPO+DQN pairs voting by majority: "
            + ", ".join(f"{c:+.0%}" for c in pairs)
        )
    wins = [
        (r["label"], m, v["sharpe"] > np.nanmedian([s["sharpe"] for s in r["singles"].values()]))
        for r in results
        for m, v in r["full"].items()
    ]
    beat = sum(w for *_, w in wins)
    median = float(np.median([c for *_, c, _ in found["total_return"] if np.isfinite(c)] or [0]))
    print(
        f"  the ensemble of all agents beat the median single agent's test Sharpe in {beat} of "
        f"{len(wins)} (market, method) cells. The claimed 60% variance cut is "
        f"{'met' if median >= 0.6 else 'not met'} in the median for test returns. "
        f"({seconds:.0f} s in all)"
    )


if __name__ == "__main__":
    main()
