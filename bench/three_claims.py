"""The seed project's three "super-training" claims, measured: test Sharpe 0.197 -> 0.451+,
win rate 37.5% -> 55%+, max drawdown 10.6% -> < 8% (Stevie issue 13, second "Must show").

Per market of ``../shared/data``, on the same test split (data.split's default) and in the
same simulator (the default env: same costs, positions and rules for every row):

    default       a TrainingRun spec giving only data (PPO, every other field its default)
    HPO best      the best trial by validation of an HPOStudy (TPE over hpo_efficiency's
                  SEARCH_SPACE), ``--trials`` x ``--steps``
    PBT best      the best checkpoint by validation fitness of a PBTPopulation,
                  ``--members`` x ``--steps`` (``--intervals`` intervals each)
    ensemble      the HPO top ``--ensemble-top`` trials + the PBT best as an Ensemble: weights
                  from validation Sharpe, the voting method with the best validation Sharpe
    expert, buy-and-hold   the RSI/MA expert and buy-and-hold (the default run's report)

Every selection reads validation only; each agent meets the test split once, at the end
(bench/_claims_arms.py says how each arm runs in-process). Columns: test Sharpe
(annualised, as Performance reports it), win rate (Performance's: the share of ROUND-TRIP
trades with a return > 0, a trade being a run of bars holding a position of one sign, an
open one marked to the last close; n/a without a trade), max drawdown (as a positive
percent), total return, orders, turnover, round trips (the win rate's denominator) and the
arm's training compute (timesteps over all its trials / members: PPO trains whole
rollouts, so small budgets are rounded up). Then the
claims: the seed's before -> after beside ours (default -> each super-trained arm, medians
over markets) and on how many markets the claimed after value is reached.

    python bench/three_claims.py [--markets BTCUSDT_1h.csv,SPY_1d.csv,EURUSD_1h.csv]
        [--trials 8] [--members 8] [--intervals 4] [--steps 65536] [--default-steps N]
        [--ensemble-top 3] [--workers 2] [--seed 0] [--out DIR] [--quick]

Needs ../shared/data ($STEVIE_SHARED_DATA overrides the folder). Writes every figure to
``<out>/three_claims.json`` (``--out``: a temporary folder by default).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/ has no __init__ (a namespace package); running this file puts only bench/ on the path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _claims_arms as arms
from bench._shared_data import market_files

MARKETS = "BTCUSDT_1h.csv,SPY_1d.csv,EURUSD_1h.csv"
SUPER = ("HPO best", "PBT best", "ensemble")
ROWS = ("default", *SUPER, "expert", "buy-and-hold")
WIN_RATE = (
    "Performance.win_rate: the share of round-trip trades (runs of bars holding a position of "
    "one sign; an open trade marked to the last close) with a return > 0; undefined (n/a) "
    "without a trade"
)
CLAIMS: dict[str, dict[str, Any]] = {
    "sharpe": {"label": "test Sharpe", "seed": "0.197 -> 0.451+", "before": 0.197,
               "after": 0.451, "higher": True},
    "win_rate": {"label": "win rate", "seed": "37.5% -> 55%+", "before": 0.375,
                 "after": 0.55, "higher": True},
    "max_drawdown": {"label": "max drawdown", "seed": "10.6% -> < 8%", "before": 0.106,
                     "after": 0.08, "higher": False},
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--markets", default=MARKETS, help="files in ../shared/data")
    p.add_argument("--trials", type=int, default=8, help="HPO trials per market")
    p.add_argument("--members", type=int, default=8, help="PBT population size")
    p.add_argument("--intervals", type=int, default=4, help="PBT intervals per member")
    p.add_argument("--steps", type=int, default=65536, help="timesteps per trial / member")
    p.add_argument(
        "--default-steps", type=int, default=None, help="the default run's totalTimesteps "
        "(default: the spec's own, 100,000)",
    )  # fmt: skip
    p.add_argument("--ensemble-top", type=int, default=3, help="HPO trials in the ensemble")
    p.add_argument("--workers", type=int, default=2, help="trainer processes at once")
    p.add_argument("--seed", type=int, default=0, help="template and sampler seed")
    p.add_argument("--out", default=None, help="runs and three_claims.json (default: tmp)")
    p.add_argument("--quick", action="store_true", help="smoke run: SPY_1d, tiny budgets")
    args = p.parse_args(argv)
    if args.quick:
        args.markets, args.trials, args.members, args.intervals = "SPY_1d.csv", 2, 2, 2
        args.steps, args.default_steps, args.ensemble_top = 4096, 2048, 2
    if min(args.trials, args.intervals, args.ensemble_top, args.workers) < 1:
        p.error("--trials, --intervals, --ensemble-top and --workers must be >= 1")
    if args.members < 2 or args.steps < args.intervals:
        p.error("--members must be >= 2 and --steps >= --intervals")
    if args.default_steps is not None and args.default_steps < 1:
        p.error("--default-steps must be >= 1")
    return args


def _arm(what: str, run: Any) -> dict[str, Any]:
    """One arm's result, or its error (printed; the other arms go on)."""
    try:
        result: dict[str, Any] = run()
    except Exception as exc:
        result = {"error": f"{what}: {type(exc).__name__}: {exc}"}
    if "error" in result:
        print(f"  {result['error']}", flush=True)
    return result


def run_market(path: Path, args: argparse.Namespace, root: Path, default: dict[str, Any]) -> Any:
    """HPO, PBT and the ensemble on one market (its default run is trained already)."""
    market, uri = path.stem, str(path)
    name = market.lower().replace("_", "-")
    out: dict[str, Any] = {"market": market, "uri": uri, "default": default}
    print(f"{market}: HPO study, {args.trials} trials x {args.steps:,} steps ...", flush=True)
    doc = arms.hpo_doc(uri, steps=args.steps, trials=args.trials, seed=args.seed)
    out["hpo"] = _arm("HPO", lambda: arms.run_hpo(root / market, doc, args.workers,
                                                  args.ensemble_top))  # fmt: skip
    print(f"{market}: PBT, {args.members} members x {args.steps:,} steps ...", flush=True)
    res = arms.pbt_resource(f"pbt-{name}", uri, members=args.members, intervals=args.intervals,
                            steps=args.steps, seed=args.seed, workers=args.workers)  # fmt: skip
    out["pbt"] = _arm("PBT", lambda: arms.run_pbt(root / market / "pbt", res))
    members = arms.ensemble_members(out["hpo"], out["pbt"])
    print(f"{market}: ensemble of {len(members)} ...", flush=True)
    out["ensemble"] = (
        _arm("ensemble", lambda: arms.run_ensemble_arm(uri, members))
        if members
        else {"error": "ensemble: no member (HPO and PBT both failed)"}
    )
    out["rows"] = rows(out)
    return out


def _metrics(perf: dict[str, Any] | None, steps: Any = None) -> dict[str, Any] | None:
    if not perf:
        return None
    dd = perf.get("max_drawdown")
    keep = ("sharpe", "win_rate", "total_return", "orders", "turnover", "trades", "bars")
    return {k: perf.get(k) for k in keep} | {
        "max_drawdown": None if dd is None else abs(float(dd)),  # positive: 0.1 = a 10% fall
        "timesteps": steps,
    }


def rows(result: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Test metrics of each row (None: the arm failed); baselines from the first report."""
    d, h, p, e = (result[k] for k in ("default", "hpo", "pbt", "ensemble"))
    base: dict[str, Any] = next((r["test"] for r in (d, h, p) if "test" in r), {})
    hpo_steps = (h.get("trials") or {}).get("timesteps")
    return {
        "default": _metrics((d.get("test") or {}).get("agent"), d.get("timesteps")),
        "HPO best": _metrics((h.get("test") or {}).get("agent"), hpo_steps),
        "PBT best": _metrics((p.get("test") or {}).get("best member"), p.get("timesteps")),
        "ensemble": _metrics((e.get("test") or {}).get("ensemble")),
        "expert": _metrics(base.get("expert")),
        "buy-and-hold": _metrics(base.get("buy-and-hold")),
    }


def _fmt(v: Any, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return {
        "pct": f"{v:.1%}",
        "ret": f"{v:+.1%}",
        "int": f"{v:,.0f}",
        "f2": f"{v:.2f}",
        "f3": f"{v:.3f}",
    }[kind]


COLUMNS = (("Sharpe", "sharpe", "f2"), ("win rate", "win_rate", "pct"),
           ("max DD", "max_drawdown", "pct"), ("return", "total_return", "ret"),
           ("orders", "orders", "int"), ("turnover", "turnover", "f2"),
           ("trades", "trades", "int"), ("arm steps", "timesteps", "int"))  # fmt: skip


def print_market(result: dict[str, Any]) -> None:
    periods = {
        k: (result[k].get("test_period") or {}).get("first_decision")
        for k in ("default", "hpo", "pbt", "ensemble")
    }
    first = next((v for v in periods.values() if v), None)
    print(f"\n{result['market']}: test split from {first}")
    if len({v for v in periods.values() if v}) > 1:
        print(f"  WARNING: the arms' test splits start at different bars: {periods}")
    print(f"{'':14s}" + "".join(f"{c:>11s}" for c, _, _ in COLUMNS))
    for label in ROWS:
        m = result["rows"][label]
        cells = [_fmt(m.get(k) if m else None, kind) for _, k, kind in COLUMNS]
        print(f"{label:14s}" + "".join(f"{c:>11s}" for c in cells))
    e = result["ensemble"]
    if "method" in e:
        weights = ", ".join(f"{m['name']} {m['weight']:.2f}" for m in e["members"])
        print(f"  ensemble: voting by {e['method']} (best validation Sharpe); weights {weights}")


def _median(values: list[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.median(finite) if finite else None


def _reached(value: Any, claim: dict[str, Any]) -> bool:
    if value is None:
        return False
    after = float(claim["after"])
    return float(value) >= after if claim["higher"] else float(value) < after


def claims(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per claim: the seed's numbers, our default's median, each super-trained arm's median
    and on how many markets it reaches the claimed value (and beats our default)."""
    out: dict[str, Any] = {}
    for key, claim in CLAIMS.items():
        value = {r: [(res["rows"][r] or {}).get(key) for res in results] for r in ROWS}
        per_arm = {}
        for arm in SUPER:
            better = [
                a is not None and d is not None and (a > d if claim["higher"] else a < d)
                for a, d in zip(value[arm], value["default"], strict=True)
            ]
            per_arm[arm] = {
                "median": _median(value[arm]),
                "reached": sum(_reached(v, claim) for v in value[arm]),
                "beats_default": sum(better),
                "markets": sum(v is not None for v in value[arm]),
            }
        sign = 1.0 if claim["higher"] else -1.0
        ranked = [a for a in SUPER if per_arm[a]["median"] is not None]
        best = max(ranked, key=lambda a: sign * per_arm[a]["median"]) if ranked else None
        out[key] = claim | {
            "target": f"{'>=' if claim['higher'] else '<'} {claim['after']:g}",
            "default_median": _median(value["default"]),
            "reference_medians": {r: _median(value[r]) for r in ("expert", "buy-and-hold")},
            "arms": per_arm,
            "best_arm": best,
            "best_arm_note": "the arm with the best median on TEST: hindsight, the reading "
            "most favourable to the claim",
        }
    return out


def print_claims(found: dict[str, Any], n: int) -> None:
    print(f"\nClaims (medians over {n} market(s), test split; win rate per round trip):")
    head = ("claim", "seed", "ours: default -> best arm", "claimed value reached on")
    print(f"{head[0]:14s}{head[1]:<17s}{head[2]:<36s}{head[3]}")
    for key, c in found.items():
        kind = "f2" if key == "sharpe" else "pct"
        best = c["best_arm"]
        arm = c["arms"].get(best) or {}
        ours = f"{_fmt(c['default_median'], kind)} -> {_fmt(arm.get('median'), kind)} ({best})"
        reached = f"{arm.get('reached', 0)} of {arm.get('markets', 0)} markets"
        print(f"{c['label']:14s}{c['seed']:<17s}{ours:<36s}{reached}")
        target = f"{'>=' if c['higher'] else '<'} {_fmt(c['after'], kind.replace('2', '3'))}"
        for name, a in c["arms"].items():
            print(f"    {name:10s} median {_fmt(a['median'], kind):>7s}; {target} on "
                  f"{a['reached']} of {a['markets']} market(s); beats the default on "
                  f"{a['beats_default']}")  # fmt: skip
    print("(best arm: the best median on test, hindsight: the reading most favourable to the "
          "claims; a drawdown under 8% with 0 orders is an agent that never traded)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    files = market_files(args.markets, "three_claims")
    root = Path(args.out or tempfile.mkdtemp(prefix="stevie-claims-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{len(files)} market(s); default run {args.default_steps or 'spec default'} steps; "
          f"HPO {args.trials} trials, PBT {args.members} members x {args.intervals} intervals, "
          f"{args.steps:,} steps each; ensemble top {args.ensemble_top} + PBT best; "
          f"{args.workers} at a time; seed {args.seed}; in {root}")  # fmt: skip
    t0 = time.monotonic()
    print(f"default TrainingRun on {len(files)} market(s) ...", flush=True)
    jobs = [(str(root / f.stem / "default"), arms.default_doc(str(f), args.default_steps,
             args.seed)) for f in files]  # fmt: skip
    defaults = arms.train_defaults(jobs, args.workers)
    for d in defaults:
        if "error" in d:
            print(f"  {d['error']}", flush=True)
    results = [run_market(f, args, root, d) for f, d in zip(files, defaults, strict=True)]
    for result in results:
        print_market(result)
    found = claims(results)
    print_claims(found, len(results))
    wall = time.monotonic() - t0
    doc = {"args": vars(args), "win_rate": WIN_RATE, "markets": results, "claims": found,
           "wall_seconds": round(wall, 1)}  # fmt: skip
    out = root / "three_claims.json"
    out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"\nwall {wall:.0f} s; every figure: {out}")


if __name__ == "__main__":
    main()
