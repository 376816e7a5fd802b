"""Which acting rules should a user get without tuning? Issue 13's "strong default", chosen
by validation and then looked at on the test split.

Each candidate is the default TrainingRun (only ``data`` given, every other field at its
default: PPO, window 20, MLP 64x64, log-return reward, 10 bps fee + 5 bps slippage, 100k
steps in rollouts of 2048 x 8) with its acting rules set: 0.1.0's short/flat/long without
a hold ("as-is"), the cost-aware rules of issue 13 (``minHoldBars``, ``turnoverPenalty``),
long/flat only, and a shorter rollout. Every candidate trains on every market of
``../shared/data`` with ``--seeds`` seeds and the same budget.

The choice reads VALIDATION only: the candidate with the highest median validation Sharpe
over markets x seeds (ties: the smaller median turnover). The test split is then reported
for every candidate, beside buy-and-hold and the RSI/MA expert, to show what the choice
would have been worth and where it fails. A difference between candidates smaller than
the seed spread is noise: the table prints both.

    python bench/defaults.py [--markets BTCUSDT_1h.csv,...] [--seeds 2]
        [--steps 65536] [--candidates as-is,hold-8,...] [--workers 2] [--out DIR]
        [--quick]

Needs ../shared/data ($STEVIE_SHARED_DATA overrides). Writes ``<out>/defaults.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/ has no __init__ (a namespace package); running this file puts only bench/ on the path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._shared_data import MARKETS, SHARED, market_files

SHORT = {"allowShort": True, "minHoldBars": 0}  # 0.1.0's acting defaults
CANDIDATES: dict[str, dict[str, Any]] = {
    "as-is": {"env": SHORT},
    "hold-8": {"env": SHORT | {"minHoldBars": 8}},
    "hold-8+penalty": {"env": SHORT | {"minHoldBars": 8, "turnoverPenalty": 0.001}},
    "long-flat+hold-8": {"env": {"minHoldBars": 8, "allowShort": False}},
    # the default rollout (2048 x 8 envs) gives the default budget only ~6 PPO updates
    "hold-8+rollout-512": {
        "env": SHORT | {"minHoldBars": 8},
        "ppo": {"nSteps": 512, "batchSize": 256},
    },
}
"""Spec fields each candidate sets, every acting rule explicit so that a candidate means
the same whatever the defaults are: "as-is" is 0.1.0's default (short/flat/long, no hold);
the defaults now are long-flat+hold-8, which this bench chose (README, "Defaults")."""
METRICS = ("sharpe", "total_return", "max_drawdown", "win_rate", "orders", "cost_share")


def spec_doc(uri: str, changes: dict[str, Any], seed: int, steps: int | None) -> dict[str, Any]:
    """The default TrainingRun of ``uri`` with ``changes`` (and the budget, if given)."""
    doc: dict[str, Any] = {"data": {"uri": uri}, "seed": seed}
    doc |= {field: dict(value) for field, value in changes.items()}
    if steps is not None:
        doc["totalTimesteps"] = steps
    return doc


def train_one(job: tuple[str, dict[str, Any]]) -> tuple[str, float]:
    """Forked worker: train one run (or find it finished); its folder and seconds."""
    import torch

    from stevie_api.training import TrainingRunSpec
    from stevie_trainer.rl.train import train

    torch.set_num_threads(1)
    out, doc = job
    Path(out).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Path(f"{out}.log").open("a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)  # progress events and SB3/torch warnings: the run's log
        os.dup2(log.fileno(), 2)
        train(TrainingRunSpec.model_validate(doc), out, log=lambda m: print(m, flush=True))
    return out, time.monotonic() - started


def _pick(perf: dict[str, Any]) -> dict[str, float | None]:
    return {k: perf.get(k) for k in METRICS}


def read_run(out: str) -> dict[str, Any]:
    """Validation of the run's best model; test of it, buy-and-hold and the expert."""
    result = json.loads((Path(out) / "result.json").read_text())
    test = result["test"]
    agent = next(k for k in test if k not in ("buy-and-hold", "expert", "random"))
    return {
        "validation": _pick(result.get("validation") or {}),
        "test": _pick(test[agent]),
        "buy-and-hold": _pick(test["buy-and-hold"]),
        "expert": _pick(test["expert"]),
    }


def _median(values: list[Any]) -> float | None:
    clean = [float(v) for v in values if isinstance(v, int | float)]
    return statistics.median(clean) if clean else None


def _spread(values: list[Any]) -> float | None:
    clean = [float(v) for v in values if isinstance(v, int | float)]
    return statistics.stdev(clean) if len(clean) > 1 else None


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per candidate: medians over markets x seeds, the seed spread, beats per market."""
    out: dict[str, Any] = {}
    for cand, markets in runs.items():
        every = [r for seeds in markets.values() for r in seeds]
        row: dict[str, Any] = {
            f"{split}_{m}": _median([r[split][m] for r in every])
            for split in ("validation", "test")
            for m in METRICS
        }
        # the seed spread: the mean over markets of the stdev of the test Sharpe over seeds
        spreads = [_spread([r["test"]["sharpe"] for r in seeds]) for seeds in markets.values()]
        row["test_sharpe_seed_std"] = _median([s for s in spreads if s is not None])
        per_market = {m: _median([r["test"]["sharpe"] for r in s]) for m, s in markets.items()}
        row["beats_expert"] = sum(
            (v or -1e9) > (markets[m][0]["expert"]["sharpe"] or -1e9) for m, v in per_market.items()
        )
        row["beats_buy_and_hold"] = sum(
            (v or -1e9) > (markets[m][0]["buy-and-hold"]["sharpe"] or -1e9)
            for m, v in per_market.items()
        )
        row["markets"] = len(markets)
        out[cand] = row
    return out


def choose(summary: dict[str, Any]) -> str:
    """Validation only: highest median validation Sharpe, then the smaller turnover."""
    return max(
        summary,
        key=lambda c: (
            summary[c]["validation_sharpe"]
            if summary[c]["validation_sharpe"] is not None
            else -1e9,
            -(summary[c]["validation_orders"] or 0.0),
        ),
    )


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_tables(runs: dict[str, Any], summary: dict[str, Any], chosen: str) -> None:
    markets = list(next(iter(runs.values())))
    print("\nTest Sharpe per market (median over seeds); validation median in brackets")
    print(f"{'candidate':<18}" + "".join(f"{m.removesuffix('.csv'):>18}" for m in markets))
    for cand, by_market in runs.items():
        cells = []
        for m in markets:
            t = _median([r["test"]["sharpe"] for r in by_market[m]])
            v = _median([r["validation"]["sharpe"] for r in by_market[m]])
            cells.append(f"{_fmt(t, '.2f')} ({_fmt(v, '.2f')})".rjust(18))
        print(f"{cand:<18}" + "".join(cells))
    first = next(iter(runs.values()))
    cells = [_fmt(first[m][0]["buy-and-hold"]["sharpe"], ".2f").rjust(18) for m in markets]
    print(f"{'buy-and-hold':<18}" + "".join(cells))
    print("The expert's test Sharpe under each candidate's rules (it trades under them too)")
    for cand, by_market in runs.items():
        cells = [_fmt(by_market[m][0]["expert"]["sharpe"], ".2f").rjust(18) for m in markets]
        print(f"{'expert, ' + cand:<18}"[-18:].rjust(18) + "".join(cells))
    print("\nMedians over markets x seeds (test unless said)")
    head = ("val Sharpe", "Sharpe", "seed std", "return", "maxDD", "win", "orders", "cost/gross")
    print(f"{'candidate':<18}" + "".join(f"{h:>11}" for h in head) + "  >expert  >B&H")
    for cand, row in summary.items():
        cells = [
            _fmt(row["validation_sharpe"], ".2f"), _fmt(row["test_sharpe"], ".2f"),
            _fmt(row["test_sharpe_seed_std"], ".2f"), _fmt(row["test_total_return"], ".1%"),
            _fmt(row["test_max_drawdown"], ".1%"), _fmt(row["test_win_rate"], ".1%"),
            _fmt(row["test_orders"], ".0f"), _fmt(row["test_cost_share"], ".2f"),
        ]  # fmt: skip
        mark = "  <- chosen by validation" if cand == chosen else ""
        n = row["markets"]
        beats = f"  {row['beats_expert']}/{n}  {row['beats_buy_and_hold']}/{n}"
        print(f"{cand:<18}" + "".join(c.rjust(11) for c in cells) + beats + mark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markets", default=",".join(MARKETS))
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="default: the spec's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--quick", action="store_true", help="2 markets, 2 candidates, 16k steps")
    args = parser.parse_args()
    markets, cands = args.markets.split(","), args.candidates.split(",")
    if args.quick:
        markets, cands, args.seeds, args.steps = markets[:2], cands[:2], 1, 16384
    market_files(",".join(markets), "defaults")
    unknown = [c for c in cands if c not in CANDIDATES]
    if unknown:
        sys.exit(f"unknown candidate(s) {', '.join(unknown)}; known: {', '.join(CANDIDATES)}")
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-defaults-"))
    jobs = [
        (str(root / c / m.removesuffix(".csv") / f"seed-{s}"),
         spec_doc(str(SHARED / m), CANDIDATES[c], s, args.steps))
        for c in cands for m in markets for s in range(args.seeds)
    ]  # fmt: skip
    print(f"{len(jobs)} runs ({len(cands)} candidates x {len(markets)} markets x "
          f"{args.seeds} seeds) in {root}", flush=True)  # fmt: skip
    started = time.monotonic()
    seconds: list[float] = []
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        for i, (out, secs) in enumerate(pool.imap_unordered(train_one, jobs), 1):
            seconds.append(secs)
            print(f"  [{i}/{len(jobs)}] {Path(out).relative_to(root)} {secs:.0f} s", flush=True)
    runs = {
        c: {m: [read_run(str(root / c / m.removesuffix(".csv") / f"seed-{s}"))
                for s in range(args.seeds)] for m in markets}
        for c in cands
    }  # fmt: skip
    summary = summarise(runs)
    chosen = choose(summary)
    print_tables(runs, summary, chosen)
    wall = time.monotonic() - started
    print(f"\nchosen by validation: {chosen} {CANDIDATES[chosen]}; {wall:.0f} s wall")
    doc = {
        "args": vars(args), "candidates": {c: CANDIDATES[c] for c in cands}, "runs": runs,
        "summary": summary, "chosen": chosen, "seconds": round(wall, 1),
    }  # fmt: skip
    (root / "defaults.json").write_text(json.dumps(doc, indent=2))
    print(f"wrote {root / 'defaults.json'}")


if __name__ == "__main__":
    main()
