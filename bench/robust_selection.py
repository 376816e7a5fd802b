"""Does walk-forward selection pick agents that survive the test split better than one
validation split does? Issue 13's first "Must show", measured market by market.

Per market of ``../shared/data`` (all six by default), HPO studies with the same search
space (the seed's PPO space plus the cost-aware rules env.minHoldBars and
env.turnoverPenalty), sampler, sampler seed, trial count and no pruner:

A. single-split selection, one study per market: the objective is the validation split's
   Sharpe;
B. walk-forward selection, one study per market: the same study with
   ``evaluation.walkForward`` (K anchored folds before the test split, score mean or lcb);
   a trial's totalTimesteps is split across its folds, so A and B spend the same timesteps;
C. walk-forward multi-market selection: ONE study over every market (``data.markets``),
   each trial training one policy on all markets' fold windows and scored over folds and
   markets; a trial's budget is the markets' count x --timesteps, what A spends in all.

Each study picks its best trial by validation only. Its model (B, C: the last fold's) is
then backtested once on each market's test split (data.split's, the same for every arm),
beside buy-and-hold and the RSI/MA expert: Sharpe, return, max drawdown, orders, turnover
and the cost share, plus the DSR of each selection (the HPO finish's own, pooled over folds
for B and C). The summary counts, per arm, the markets where the agent beats the expert's
and buy-and-hold's test Sharpe and draws down less than buy-and-hold (the issue's targets).

    python bench/robust_selection.py [--markets BTCUSDT_1h.csv,...] [--trials 8]
        [--timesteps 65536] [--folds 4] [--score mean|lcb] [--seed 0] [--workers 2]
        [--sampler tpe|random] [--arms A,B,C] [--out DIR] [--quick]

Needs ../shared/data (see its README.md; $STEVIE_SHARED_DATA overrides the folder): the
question is about those markets, so no bundled data stands in. Writes every figure to
``<out>/robust_selection.json`` (bench results are not committed: runs live in ``--out``,
a temporary folder by default).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/ has no __init__ (a namespace package, as mypy's explicit package bases name it);
# running this file puts only bench/ itself on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._robust_study import run_study, study_doc
from bench._shared_data import MARKETS, market_files

ARMS = {"A": "single split", "B": "walk-forward", "C": "wf multi-market"}
WINDOW = 32  # env.window's default: warm-up bars and the default purge gap
SPLIT_BEFORE_TEST = 0.85  # data.split's default train + validation fractions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--markets", default=",".join(MARKETS), help="files in ../shared/data")
    p.add_argument("--trials", type=int, default=8, help="trials per study (N)")
    p.add_argument("--timesteps", type=int, default=65536, help="budget per trial (B)")
    p.add_argument("--folds", type=int, default=4, help="walk-forward folds (K >= 2)")
    p.add_argument("--score", choices=("mean", "lcb"), default="mean")
    p.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    p.add_argument("--seed", type=int, default=0, help="template (and sampler) seed")
    p.add_argument("--workers", type=int, default=2, help="trials trained at once")
    p.add_argument("--episode-length", type=int, default=None, help="default: fits fold 1")
    p.add_argument("--arms", default="A,B,C", help="which arms to run (A, B, C)")
    p.add_argument("--out", default=None, help="runs and robust_selection.json (default: tmp)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 2 markets, 2 trials, 2,048 steps, 2 folds"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.markets, args.trials = "BTCUSDT_1d.csv,SPY_1d.csv", 2
        args.timesteps, args.folds = 2048, 2
    if args.folds < 2 or args.trials < 1 or args.timesteps < 1:
        p.error("--folds must be >= 2, --trials and --timesteps >= 1")
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not args.arms or any(a not in ARMS for a in args.arms):
        p.error(f"--arms: a comma-separated subset of {', '.join(ARMS)}")
    return args


def episode_length(path: Path, folds: int) -> int:
    """The longest episode (<= 1,000 bars) that fits the first fold's training window:
    the bars before the test split cut into K + 1 parts, less warm-up and purge."""
    from stevie_trainer.data.ohlcv import load_ohlcv

    rows = len(load_ohlcv(str(path)))
    first = int(rows * SPLIT_BEFORE_TEST / (folds + 1)) - 3 * WINDOW
    return max(32, min(1000, first * 3 // 4 // 10 * 10))


def _common(args: argparse.Namespace, episode: int) -> dict[str, Any]:
    return {
        "steps": args.timesteps, "trials": args.trials, "seed": args.seed,
        "sampler": args.sampler, "episode": episode,
    }  # fmt: skip


def _walk_forward(args: argparse.Namespace) -> dict[str, Any]:
    return {"folds": args.folds, "scheme": "anchored", "score": args.score}


def run_market(path: Path, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The one-market arms (A, B) on one market, side by side."""
    episode = args.episode_length or episode_length(path, args.folds)
    common = _common(args, episode)
    market = path.stem
    arms = {}
    for arm, walk_forward in (("A", None), ("B", _walk_forward(args))):
        if arm not in args.arms:
            continue
        doc = study_doc(str(path), walk_forward=walk_forward, **common)
        print(f"{market}: study {arm} ({ARMS[arm]}), {args.trials} trials ...", flush=True)
        arms[arm] = run_study(root / market, f"{market.lower().replace('_', '-')}-{arm}", doc,
                              args.workers)  # fmt: skip
        for error in arms[arm]["errors"]:
            print(f"  {error}", flush=True)
    return {"market": market, "uri": str(path), "episode_length": episode, "arms": arms}


def run_pooled(files: list[Path], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Arm C: ONE walk-forward study over every market (``data.markets``), a trial's budget
    the markets' count x --timesteps (what arm A spends over its one-market studies), two
    environments a market; its selection's test report per market."""
    episode = args.episode_length or min(episode_length(f, args.folds) for f in files)
    common = _common(args, episode) | {"steps": args.timesteps * len(files)}
    markets = [{"uri": str(f), "symbol": f.stem} for f in files]
    doc = study_doc(markets, walk_forward=_walk_forward(args), n_envs=2 * len(files), **common)
    print(f"all markets: study C ({ARMS['C']}), {args.trials} trials ...", flush=True)
    result = run_study(root / "pooled", "all-markets-C", doc, args.workers)
    for error in result["errors"]:
        print(f"  {error}", flush=True)
    return result | {"episode_length": episode}


def market_view(pooled: dict[str, Any], market: str) -> dict[str, Any]:
    """Arm C's result as one market's arm: that market's test report, the study's rest."""
    view = {k: v for k, v in pooled.items() if k != "test_markets"}
    own = (pooled.get("test_markets") or {}).get(market)
    view["test"] = own["test"] if own else None
    view["test_period"] = own["test_period"] if own else None
    return view


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _fmt(v: Any, kind: str) -> str:
    x = _num(v)
    if math.isnan(x):
        return "n/a"
    return {"pct": f"{x:+.1%}", "dd": f"{abs(x):.1%}", "int": f"{x:.0f}", "f2": f"{x:.2f}"}[kind]


def rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any, Any]]:
    """(label, test metrics, validation score, DSR) per agent and baseline."""
    out: list[tuple[str, dict[str, Any], Any, Any]] = []
    base: dict[str, Any] = {}
    for arm, label in ARMS.items():
        r = result["arms"].get(arm) or {}
        if r.get("test"):
            dsr = (r["dsr"] or {}).get("dsr")
            out.append((f"{arm}: {label} agent", r["test"]["agent"],
                        (r["validation"] or {}).get("sharpe"), dsr))  # fmt: skip
            base = base or r["test"]
    for name in ("buy-and-hold", "expert"):
        if name in base:
            out.append((name, base[name], None, None))
    return out


def print_market(result: dict[str, Any]) -> None:
    columns = ("val score", "test Sharpe", "return", "max DD", "orders", "turnover",
               "cost share", "DSR")  # fmt: skip
    print(f"\n{result['market']} (episode length {result['episode_length']})")
    period = next((a.get("test_period") for a in result["arms"].values() if a.get("test")), None)
    if period:
        print(f"test split {period['first_decision']} .. {period['last_bar']}")
    print(f"{'':28s}" + "".join(f"{c:>12s}" for c in columns))
    for label, t, val, dsr in rows(result):
        cells = [_fmt(val, "f2"), _fmt(t.get("sharpe"), "f2"), _fmt(t.get("total_return"), "pct"),
                 _fmt(t.get("max_drawdown"), "dd"), _fmt(t.get("orders"), "int"),
                 _fmt(t.get("turnover"), "f2"), _fmt(t.get("cost_share"), "pct"),
                 _fmt(dsr, "f2")]  # fmt: skip
        print(f"{label:28s}" + "".join(f"{c:>12s}" for c in cells))
    for arm in result["arms"]:
        r = result["arms"][arm]
        best = r.get("best") or {}
        luck = (r["dsr"] or {}).get("sentence") or r["dsr_note"]
        print(f"  {arm}: {r['trials']}, best trial {best.get('trial')}, "
              f"{r['seconds']:.0f} s; {luck}")  # fmt: skip
        if r.get("validation_folds"):
            folds = ", ".join(_fmt(s, "f2") for s in r["validation_folds"])
            print(f"     fold validation Sharpes: {folds}")


def targets(result: dict[str, Any], arm: str) -> dict[str, bool | None]:
    """The issue's three targets for one arm on one market (None: no selected agent)."""
    r = result["arms"].get(arm) or {}
    if not r.get("test"):
        return {"beats_expert": None, "beats_buy_and_hold_sharpe": None, "smaller_drawdown": None}
    agent, bh, expert = (r["test"][k] for k in ("agent", "buy-and-hold", "expert"))
    return {
        "beats_expert": _num(agent["sharpe"]) > _num(expert["sharpe"]),
        "beats_buy_and_hold_sharpe": _num(agent["sharpe"]) > _num(bh["sharpe"]),
        # max_drawdown is reported as a negative fraction (-0.2 = a 20% fall): compare sizes
        "smaller_drawdown": abs(_num(agent["max_drawdown"])) < abs(_num(bh["max_drawdown"])),
    }


def summary(results: list[dict[str, Any]], arms: list[str]) -> dict[str, dict[str, int]]:
    """Per arm: on how many markets each target is met (of the markets with an agent)."""
    out: dict[str, dict[str, int]] = {}
    for arm in arms:
        marks = [targets(r, arm) for r in results]
        out[arm] = {k: sum(m[k] is True for m in marks) for k in marks[0]} if marks else {}
        out[arm]["markets"] = sum(m["beats_expert"] is not None for m in marks)
    return out


def print_summary(counts: dict[str, dict[str, int]], n: int) -> None:
    print(f"\nSummary over {n} market(s): markets where the selected agent's TEST ...")
    labels = {
        "beats_expert": "Sharpe beats the expert's (target: all)",
        "beats_buy_and_hold_sharpe": "Sharpe beats buy-and-hold's (target: >= half)",
        "smaller_drawdown": "max drawdown < buy-and-hold's (target: all)",
    }
    print(f"{'':48s}" + "".join(f"{ARMS[a]:>16s}" for a in counts))
    for key, label in labels.items():
        cells = "".join(f"{counts[a][key]:>11d} of {counts[a]['markets']:<2d}" for a in counts)
        print(f"{label:48s}{cells}")


def per_trial_seconds(results: list[dict[str, Any]]) -> float:
    """Wall seconds per trial over every study (trials run --workers at a time); arm C is
    one study, shown in every market's result."""
    arms = [a for r in results for k, a in r["arms"].items() if k != "C"]
    arms += [results[0]["arms"]["C"]] if results and "C" in results[0]["arms"] else []
    trials = sum(n for a in arms for k, n in a["trials"].items() if k != "timesteps")
    return sum(a["seconds"] for a in arms) / max(1, trials) if trials else float("nan")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    files = market_files(args.markets, "robust_selection")
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-robust-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{len(files)} market(s); {args.trials} trials x {args.timesteps:,} timesteps per "
          f"study; walk-forward {args.folds} anchored folds, score {args.score}; sampler "
          f"{args.sampler}, seed {args.seed}; {args.workers} at a time; in {root}")  # fmt: skip
    t0 = time.monotonic()
    results = [run_market(f, args, root) for f in files]
    if "C" in args.arms:
        pooled = run_pooled(files, args, root)
        for r in results:
            r["arms"]["C"] = market_view(pooled, r["market"])
    for result in results:
        print_market(result)
    counts = summary(results, args.arms)
    print_summary(counts, len(results))
    wall = time.monotonic() - t0
    per_trial = per_trial_seconds(results)
    print(f"\nwall {wall:.0f} s; {per_trial:.1f} s wall per trial at {args.workers} at a time")
    doc = {
        "args": vars(args),
        "markets": [r | {"targets": {a: targets(r, a) for a in args.arms}} for r in results],
        "summary": counts,
        "wall_seconds": round(wall, 1),
        "wall_seconds_per_trial": round(per_trial, 2),
    }
    out = root / "robust_selection.json"
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"every figure: {out}")


if __name__ == "__main__":
    main()
