"""The ensemble's backtest report (report.json) and its comparison table (table.txt).

report.json::

    status, finished_at, name, inputs (what decides the result: resume compares it)
    method, weight_metric, reweight_window, data {uri, name, source}, annualisation
    simulator         the rules every run shares (the first member's), the ensemble's grid
                      and its no-trade band and minimum hold (each member alone: its own)
    members           ResolvedMember.to_dict() of each, with voting_weight (static) and the
                      validation metric it came from
    weights           {member: static voting weight} (dynamic weights: splits.*.ensemble)
    splits.<split>    validation and test: period, policies {ensemble, members, baselines:
                      Performance.to_dict()}, methods {every voting method: metrics},
                      ensemble {method, mean_consensus, mean_confidence, agreement per member,
                      mean weight per member}
    best_member       the member with the best VALIDATION Sharpe (in the shared simulator)
    comparison        ensemble vs that member and vs buy-and-hold, on the test split
    method_by_validation   the voting method validation would choose, and its test result
    best_member_on_test    hindsight, for comparison only (never for a choice)
    verdict, data_warnings, artifacts, versions
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from stevie_api.ensemble import EnsembleSpec
from stevie_trainer.common import storage
from stevie_trainer.common.artifacts import RunStore, iso_now
from stevie_trainer.data.ohlcv import load_ohlcv
from stevie_trainer.ensemble.agent import load_member
from stevie_trainer.ensemble.backtest import (
    ENSEMBLE,
    RULES,
    SPLITS,
    Backtest,
    Record,
    comparison,
    run_backtest,
    split_summary,
)
from stevie_trainer.ensemble.decide import Ensemble, document
from stevie_trainer.ensemble.members import MemberRef, ResolvedMember, resolve
from stevie_trainer.ensemble.plots import consensus_png, run_equity_png, weights_png
from stevie_trainer.evaluation.baselines import BASELINES
from stevie_trainer.evaluation.performance import Performance, format_table
from stevie_trainer.rl.train import versions

__all__ = [
    "build_report",
    "decision_line",
    "ensemble_backtest",
    "inputs_of",
    "load_ensemble",
    "report_table",
]

Log = Callable[[str], None]


def _num(value: Any, kind: str = "ratio") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "share":
        return f"{value:.0%}"
    return f"{value:+.2%}" if kind == "pct" else f"{value:.2f}"


def _versus(ens: float | None, other: float | None) -> str:
    if ens is None or other is None:
        return "cannot be compared with"
    return "beat" if ens > other else "matched" if ens == other else "did not beat"


def verdict(report: Mapping[str, Any]) -> str:
    """One sentence: the ensemble against its best member and buy-and-hold on test."""
    c = report["comparison"]
    best = report["best_member"]["name"]
    ens, mem, bh = c["ensemble"], c["best_member"], c["buy_and_hold"]
    return (
        f"On the test split the ensemble ({report['method']}) "
        f"{_versus(ens['sharpe'], mem['sharpe'])} its best member by validation "
        f"({best}) on Sharpe ({_num(ens['sharpe'])} vs {_num(mem['sharpe'])}) and "
        f"{_versus(ens['sharpe'], bh['sharpe'])} buy-and-hold "
        f"({_num(bh['sharpe'])}); total return {_num(ens['total_return'], 'pct')} vs "
        f"{_num(mem['total_return'], 'pct')} and {_num(bh['total_return'], 'pct')}."
    )


def data_warnings(members: Sequence[ResolvedMember], uri: str | None, split: Any) -> list[str]:
    """Members trained on other data or another split: their training bars may overlap."""
    out = []
    for m in members:
        if m.spec.data.uri != uri or m.spec.data.split != split:
            trained_on = m.spec.data.uri or "several markets"
            out.append(
                f"member {m.name!r} was trained on {trained_on} with another split: the "
                "backtest's validation and test bars may overlap its training data"
            )
    return out


def build_report(
    bt: Backtest,
    resolved: Sequence[ResolvedMember],
    *,
    name: str,
    weight_metric: str,
    inputs: dict[str, Any],
    data_source: str,
    artifacts: dict[str, str],
    versions: dict[str, str],
) -> dict[str, Any]:
    """report.json (see the module docstring)."""
    ens = bt.ensemble
    names = ens.names
    splits = {s: split_summary(bt.splits[s], names) for s in SPLITS}
    rules = ens.members[0].env
    report: dict[str, Any] = {
        "status": "succeeded",
        "finished_at": iso_now(),
        "name": name,
        "inputs": inputs,
        "method": ens.method,
        "weight_metric": weight_metric,
        "reweight_window": ens.reweight_window,
        "data": {"uri": bt.data.uri, "name": bt.label, "source": data_source},
        "annualisation": {
            "bars_per_year": bt.bars_per_year,
            "note": bt.annualisation_note,
        },
        "simulator": {
            "rules_from": names[0],
            **{k: getattr(rules, k) for k in RULES},
            "ensemble_positions": [float(x) for x in ens.grid],
            "ensemble_no_trade_band": ens.no_trade_band,
            "ensemble_min_hold_bars": ens.min_hold_bars,
            "baselines": list(BASELINES),
        },
        "members": [
            m.to_dict() | {"voting_weight": float(w), "weight_metric": m.metric(weight_metric)}
            for m, w in zip(resolved, ens.static, strict=True)
        ],
        "weights": {n: float(w) for n, w in zip(names, ens.static, strict=True)},
        "splits": splits,
    }
    report |= comparison(splits, names, ens.method)
    report["verdict"] = verdict(report)
    report["data_warnings"] = data_warnings(resolved, bt.data.uri, bt.data.split)
    report["artifacts"] = artifacts
    report["versions"] = versions
    return report


def decision_line(
    record: Record, names: Sequence[str], grid: Sequence[float], held: float
) -> dict[str, Any]:
    """One line of decisions.jsonl: the vote (``target``) and what the account then held
    (``held``: the vote's target unless noTradeBand or minHoldBars kept the last one)."""
    d = record.decision
    return {
        "bar": record.bar,
        "time": record.time.isoformat(),
        "target": d.level,
        "held": held,
        "confidence": d.confidence,
        "consensus": d.consensus,
        "votes": dict(zip(names, d.votes, strict=True)),
        "weights": dict(zip(names, d.weights, strict=True)),
        "distribution": {f"{g:g}": p for g, p in zip(grid, d.distribution, strict=True)},
    }


def _perf(d: dict[str, Any]) -> Performance:
    values: dict[str, Any] = {k: (np.nan if v is None else v) for k, v in d.items()}
    return Performance(**values)


def _compact(rows: Mapping[str, Sequence[str]], header: Sequence[str]) -> list[str]:
    """A small left-aligned name column and right-aligned value columns."""
    table = [list(header), *([k, *v] for k, v in rows.items())]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return [
        "  ".join(
            [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        )
        for r in table
    ]


def report_table(report: Mapping[str, Any]) -> str:
    """table.txt: the test table (ensemble, members, baselines), every voting method, a short
    validation table, the weights, consensus and agreement, and the verdict."""
    test, val = report["splits"]["test"], report["splits"]["validation"]
    names = [m["name"] for m in report["members"]]
    period = test["period"]
    title = (
        f"Ensemble {report['name']} ({report['method']}) on {report['data']['name']}: "
        f"test split, {period['first_decision']} .. {period['last_bar']}"
    )
    columns = {k: _perf(v) for k, v in test["policies"].items()}
    lines = [format_table(columns, title=title, note=report["annualisation"]["note"]), ""]
    lines.append("Voting methods (* the spec's; validation would choose, test only reports):")
    rows = {
        m + (" *" if m == report["method"] else ""): [
            _num(val["methods"][m]["sharpe"]),
            _num(test["methods"][m]["sharpe"]),
            _num(test["methods"][m]["total_return"], "pct"),
            _num(test["methods"][m]["max_drawdown"], "pct"),
            str(test["methods"][m]["trades"]),
        ]
        for m in test["methods"]
    }
    lines += _compact(rows, ["method", "val Sharpe", "test Sharpe", "return", "max DD", "trades"])
    vp = val["period"]
    lines += ["", f"Validation split, {vp['first_decision']} .. {vp['last_bar']}:"]
    rows = {
        k: [_num(v["sharpe"]), _num(v["total_return"], "pct"), _num(v["max_drawdown"], "pct")]
        for k, v in val["policies"].items()
    }
    lines += _compact(rows, ["policy", "Sharpe", "return", "max DD"])
    lines += ["", *_summary_lines(report, names)]
    return "\n".join(lines)


def _summary_lines(report: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    test = report["splits"]["test"]["ensemble"]
    window = report["reweight_window"]
    how = f"dynamic, over {window} bars" if window else f"static, from {report['weight_metric']}"
    weights = ", ".join(f"{m['name']} {m['voting_weight']:.2f}" for m in report["members"])
    agreement = ", ".join(f"{n} {_num(test['agreement'][n], 'share')}" for n in names)
    s = report["simulator"]
    chosen = report["method_by_validation"]
    return [
        f"Weights ({how}): {weights}",
        f"Test: mean consensus {_num(test['mean_consensus'])}, mean confidence "
        f"{_num(test['mean_confidence'])}; members agreeing with the ensemble: {agreement}",
        f"Every run: fee {s['fee_bps']:g} + slippage {s['slippage_bps']:g} bps, borrow "
        f"{s['borrow_bps']:g} bps/year, rebalance {s['rebalance']} (the rules of "
        f"{s['rules_from']}); the ensemble trades {s['ensemble_positions']} with no-trade "
        f"band {s['ensemble_no_trade_band']:g} and minimum hold {s['ensemble_min_hold_bars']} "
        "bars (each member alone: its own)",
        f"Validation would choose {chosen['method']} (validation Sharpe "
        f"{_num(chosen['validation_sharpe'])}, test {_num(chosen['test_sharpe'])})",
        report["verdict"],
        *report["data_warnings"],
    ]


# --- the backtest command: inputs, resume, outputs -----------------------------------------


def inputs_of(spec: EnsembleSpec, refs: Sequence[MemberRef], name: str) -> dict[str, Any]:
    """What decides a backtest's result (a finished report with the same inputs is reused)."""
    keep = {"members", "method", "weight_metric", "reweight_window", "data", "no_trade_band",
            "min_hold_bars"}  # fmt: skip
    doc = spec.model_dump(by_alias=True, exclude_none=True, mode="json", include=keep)
    refs_doc = [{k: v for k, v in asdict(r).items() if v is not None} for r in refs]
    value: dict[str, Any] = json.loads(json.dumps({"name": name, "spec": doc, "members": refs_doc}))
    return value


def load_ensemble(
    spec: EnsembleSpec, refs: Sequence[MemberRef], say: Log
) -> tuple[Ensemble, list[ResolvedMember]]:
    """Resolve and load every member (a MemberError names the first that cannot be used)."""
    reserved = {ENSEMBLE, *BASELINES}
    clash = sorted(r.name for r in refs if r.name in reserved)
    if clash:
        raise ValueError(f"member names {', '.join(clash)} are reserved for the report's policies")
    resolved = []
    for ref in refs:
        member = resolve(ref)
        say(f"member {ref.name}: {member.spec.algorithm} model in {member.folder}")
        resolved.append(member)
    members = [load_member(r) for r in resolved]
    ensemble = Ensemble(
        members,
        spec.method,
        weight_metric=spec.weight_metric,
        reweight_window=spec.reweight_window,
        no_trade_band=spec.no_trade_band,
        min_hold_bars=spec.min_hold_bars,
    )
    return ensemble, resolved


def ensemble_backtest(
    spec: EnsembleSpec,
    refs: Sequence[MemberRef],
    out: str,
    *,
    name: str | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Backtest the ensemble and write its report under ``out``; a finished report with the
    same inputs is returned as is. ``refs`` in the spec's member order (the first member's
    costs and rules are everyone's, but for the band and the hold: see Ensemble.env)."""
    say = log or (lambda message: print(message, flush=True))
    name = name or "ensemble"
    store = RunStore(out)
    inputs = inputs_of(spec, refs, name)
    done = store.read_json("report.json")
    if done is not None and done.get("status") == "succeeded" and done.get("inputs") == inputs:
        say(f"{store.out}: already finished; report.json is up to date")
        return done
    if done is not None:
        say(f"{store.out}: the inputs changed since its report: backtesting again")
    if not refs:
        raise ValueError("an ensemble needs at least one member (--members-json is empty)")
    ensemble, resolved = load_ensemble(spec, refs, say)
    data = spec.data or resolved[0].spec.data
    source = "spec.data" if spec.data else f"the data of member {resolved[0].name!r}"
    if data.uri is None:  # a member trained on several markets, and no spec.data
        raise ValueError(
            f"an Ensemble backtests one market, and {source} lists several: set the "
            "Ensemble's spec.data.uri"
        )
    label = data.symbol or storage.basename(data.uri)
    say(f"backtest data: {data.uri} ({source})")
    frame = load_ohlcv(data.uri)
    bt = run_backtest(ensemble, frame, data, label, log=say)
    report = build_report(
        bt,
        resolved,
        name=name,
        weight_metric=spec.weight_metric,
        inputs=inputs,
        data_source=source,
        artifacts=write_outputs(store, bt, name, resolved, spec),
        versions=versions(),
    )
    table = report_table(report)
    store.write_bytes("table.txt", (table + "\n").encode())
    store.write_json("report.json", report)
    say(table)
    return report


def write_outputs(
    store: RunStore,
    bt: Backtest,
    name: str,
    resolved: Sequence[ResolvedMember],
    spec: EnsembleSpec,
) -> dict[str, str]:
    """decisions.jsonl, the plots and ensemble.json (report.json and table.txt come last)."""
    ens = bt.ensemble
    test = bt.splits["test"]
    grid = [float(g) for g in ens.grid]
    held = test.episodes[ENSEMBLE].targets
    if len(held) != len(test.decisions):
        raise RuntimeError(f"{len(test.decisions)} decisions but {len(held)} steps held")
    lines = [
        json.dumps(decision_line(r, ens.names, grid, float(h))) + "\n"
        for r, h in zip(test.decisions, held, strict=True)
    ]
    what = f"{bt.label}, test split"
    note = bt.annualisation_note
    doc = document(
        name,
        resolved,
        ens.method,
        weight_metric=spec.weight_metric,
        reweight_window=spec.reweight_window,
        no_trade_band=spec.no_trade_band,
        min_hold_bars=spec.min_hold_bars,
    )
    return {
        "decisions": store.write_bytes("decisions.jsonl", "".join(lines).encode()),
        "equity_plot": store.write_bytes(
            "equity.png",
            run_equity_png(
                test, ens.names, title=f"{what}: ensemble ({ens.method}) vs members", note=note
            ),
        ),
        "weights_plot": store.write_bytes(
            "weights.png", weights_png(test, ens.names, title=f"{what}: member weights")
        ),
        "consensus_plot": store.write_bytes(
            "consensus.png", consensus_png(test, title=f"{what}: consensus and confidence")
        ),
        "ensemble": store.write_json("ensemble.json", doc),
        "table": store.uri("table.txt"),
        "report": store.uri("report.json"),
    }
