"""Backtests of baseline policies over a chronological split, with a report and a plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stevie_api.market import DataSpec, EnvSpec, ExpertSpec
from stevie_trainer.common import storage
from stevie_trainer.data.splits import summarize
from stevie_trainer.env.market import MarketData
from stevie_trainer.env.prepare import data_splits, load_market
from stevie_trainer.evaluation.baselines import BASELINES, Policy, make_baseline
from stevie_trainer.evaluation.episode import Episode, run_policy
from stevie_trainer.evaluation.performance import Performance, annualisation_note, format_table
from stevie_trainer.evaluation.plots import equity_png

SPLITS = ("train", "validation", "test", "all")


@dataclass
class BacktestReport:
    """Metrics of a policy and of every baseline over one split of one market."""

    name: str
    policy: str
    split: str
    data: dict[str, Any]
    env: dict[str, Any]
    bars_per_year: float
    note: str
    episodes: dict[str, Episode] = field(default_factory=dict)
    results: dict[str, Performance] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        first, last = self.period
        title = f"{self.name}: {self.split} split, {first} .. {last}"
        return format_table(self.results, title=title, note=self.note)

    @property
    def period(self) -> tuple[str, str]:
        ep = next(iter(self.episodes.values()))
        return str(ep.timestamps[0]), str(ep.timestamps[-1])

    def to_dict(self) -> dict[str, Any]:
        first, last = self.period
        return {
            "name": self.name,
            "policy": self.policy,
            "split": self.split,
            "period": {"first_decision": first, "last_bar": last},
            "data": self.data,
            "env": self.env,
            "annualisation": {"bars_per_year": self.bars_per_year, "note": self.note},
            "metrics": {k: v.to_dict() for k, v in self.results.items()},
            "checks": self.checks,
        }


def buy_and_hold_check(market: MarketData, episode: Episode, cost_rate: float) -> dict[str, Any]:
    """Buy-and-hold's return against the prices themselves (a sanity check in every report).

    Buying at the first decision fills at the next bar's open and pays costs once; holding to
    the last close then returns last_close / fill_open * (1 - costs) - 1, which is within the
    first bar's gap of last_close / first_close - 1 minus costs.
    """
    first = market.index.get_loc(episode.timestamps[0])
    last = market.index.get_loc(episode.timestamps[-1])
    assert isinstance(first, int) and isinstance(last, int)
    expected = market.close[last] / market.open[first + 1] * (1.0 - cost_rate) - 1.0
    return {
        "close_to_close_return": float(market.close[last] / market.close[first] - 1.0),
        "expected_return_with_costs": float(expected),
        "buy_and_hold_return": float(episode.equity[-1] - 1.0),
        "cost_rate": cost_rate,
    }


def run_backtest(
    data: DataSpec,
    env: EnvSpec,
    expert: ExpertSpec,
    *,
    policy: str = "expert",
    split: str = "test",
    seed: int = 0,
    name: str | None = None,
) -> BacktestReport:
    """Backtest ``policy`` next to every baseline over ``split`` of ``data``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    frame, market = load_market(data, env, name)
    bounds = data_splits(market, data).get(split)
    order = [policy] + [b for b in BASELINES if b != policy]
    policies: list[Policy] = [
        make_baseline(p, market.features.indicators, expert, seed=seed) for p in order
    ]
    source = "set in spec" if data.bars_per_year else "measured from data"
    report = BacktestReport(
        name=market.name,
        policy=policy,
        split=split,
        data=summarize(frame) | {"uri": data.uri},
        env=env.model_dump(by_alias=True, mode="json"),
        bars_per_year=market.bars_per_year,
        note=annualisation_note(market.bars_per_year, market.bar_size, source=source)
        + f"; costs {env.fee_bps:g} bps fee + {env.slippage_bps:g} bps slippage per trade"
        + "; orders fill at the next bar's open",
    )
    for p in policies:
        ep = run_policy(market, env, bounds, p, split_name=f"{split} split")
        report.episodes[p.name] = ep
        report.results[p.name] = ep.performance()
    cost_rate = (env.fee_bps + env.slippage_bps) / 1e4
    report.checks["buy_and_hold"] = buy_and_hold_check(
        market, report.episodes["buy-and-hold"], cost_rate
    )
    return report


def write_report(report: BacktestReport, out: str) -> dict[str, str]:
    """Write backtest.json and equity.png under ``out`` (any storage URI); return their URIs."""
    json_uri = storage.join(out, "backtest.json")
    png_uri = storage.join(out, "equity.png")
    body = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    storage.write_text(json_uri, body + "\n")
    title = f"{report.name} ({report.split} split): {report.policy} vs buy-and-hold"
    storage.write_bytes(png_uri, equity_png(report.episodes, title=title, note=report.note))
    return {"report": json_uri, "plot": png_uri}
