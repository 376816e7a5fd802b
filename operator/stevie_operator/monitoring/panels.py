"""The few panel shapes Stevie's boards use, over grafana-foundation-sdk's builders.

Every board is built from these so that the rules hold everywhere without being repeated:
each panel and variable queries ``${datasource}`` (the board's datasource variable, as Ray's
and Kubeflow Trainer's boards do, so a board works with whichever Prometheus Grafana has),
each target has a refId, each panel a unit and an id unique in its board. Dev-time only: the
SDK is a ``dev`` extra and nothing outside :mod:`stevie_operator.monitoring` imports this.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.statetimeline import Panel as StateTimelinePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

__all__ = [
    "DATASOURCE",
    "POD",
    "RES",
    "Layout",
    "Q",
    "board",
    "datasource_variable",
    "label_variable",
    "mean",
    "percentiles",
    "quantile",
    "rate",
    "stat",
    "state_timeline",
    "timeseries",
]

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
ALL = ".*"  # the "All" value: a regex, so an empty option list still matches every series
TAGS = ["stevie"]
RES = 'namespace=~"$namespace", name=~"$name"'
"""Matchers of operator series of the selected resources (their own namespace/name labels)."""
POD = 'namespace=~"$namespace", stevie_name=~"$name"'
"""Matchers of pod series of the selected resources (the PodMonitor's target labels)."""


@dataclass(frozen=True)
class Q:
    """One PromQL target and its legend (``{{label}}`` templates, as Grafana writes them)."""

    expr: str
    legend: str = ""


def datasource_variable() -> DatasourceVariable:
    """The ``datasource`` variable: any Prometheus datasource Grafana knows."""
    return DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, series: str, label_name: str) -> QueryVariable:
    """A multi-value variable over the values of ``label_name`` on ``series`` (with All)."""
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({series}, {label_name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
    )


def rate(metric: str, matchers: str) -> str:
    """``rate()`` of one counter series over Grafana's rate interval."""
    return f"rate({metric}{{{matchers}}}[$__rate_interval])"


def quantile(q: float, histogram: str, matchers: str, by: str = "") -> str:
    """The ``q`` quantile of a histogram's recent observations, per ``by`` labels."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(histogram + '_bucket', matchers)}))"


def percentiles(
    levels: Sequence[float], histogram: str, matchers: str, by: str = "", legend: str = ""
) -> list[Q]:
    """One query per level (``pNN`` legends, then ``legend``, e.g. ``{{kind}}``)."""
    suffix = f" {legend}" if legend else ""
    return [Q(quantile(q, histogram, matchers, by), f"p{round(q * 100)}{suffix}") for q in levels]


def mean(histogram: str, matchers: str, by: str = "") -> str:
    """The mean of a histogram's recent observations (rate of sum over rate of count)."""
    grouping = f" by ({by})" if by else ""
    return (
        f"sum{grouping} ({rate(histogram + '_sum', matchers)})"
        f" / sum{grouping} ({rate(histogram + '_count', matchers)})"
    )


def board(uid: str, title: str, description: str, *variables: QueryVariable) -> Dashboard:
    """A board with Stevie's tags, the last hour, 30 s refresh and the datasource variable
    first, then ``variables``."""
    built = (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([*TAGS, uid.removeprefix("stevie-")])
        .time("now-1h", "now")
        .refresh("30s")
        .editable()
        .with_variable(datasource_variable())
    )
    for variable in variables:
        built = built.with_variable(variable)
    return built


def _targets(queries: Sequence[Q], *, instant: bool = False) -> Iterator[Dataquery]:
    for ref, q in zip("ABCDEFGHIJ", queries, strict=False):
        target = Dataquery().expr(q.expr).legend_format(q.legend or "__auto").ref_id(ref)
        yield target.instant() if instant else target.range()


def _legend(placement: cm.LegendPlacement = cm.LegendPlacement.BOTTOM) -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(placement)
        .show_legend(True)
    )


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    stack: bool = False,
    min_val: float | None = None,
    max_val: float | None = None,
    steps: bool = False,
    width: int = 12,
    height: int = 8,
) -> TimeseriesPanel:
    """A time-series panel: one line per returned series, legend at the bottom."""
    panel = (
        TimeseriesPanel()
        .span(width)
        .height(height)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .legend(_legend())
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI))
        .line_width(1)
        .fill_opacity(30 if stack else 10)
    )
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if steps:
        panel = panel.line_interpolation(cm.LineInterpolation.STEP_AFTER)
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Q],
    *,
    names_only: bool = False,
    width: int = 6,
    height: int = 6,
) -> StatPanel:
    """A stat panel: the last value of each series (or, ``names_only``, its legend)."""
    text = cm.BigValueTextMode.NAME if names_only else cm.BigValueTextMode.VALUE_AND_NAME
    panel = (
        StatPanel()
        .span(width)
        .height(height)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .text_mode(text)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    for target in _targets(queries, instant=True):
        panel = panel.with_target(target)
    return panel


def state_timeline(
    title: str, description: str, queries: Sequence[Q], *, width: int = 24, height: int = 6
) -> StateTimelinePanel:
    """A state timeline (which curriculum stage is active when): one lane per series."""
    panel = (
        StateTimelinePanel()
        .span(width)
        .height(height)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")
        .legend(_legend())
        .merge_values(True)
        .show_value(cm.VisibilityMode.NEVER)
    )
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


AnyPanel = TimeseriesPanel | StatPanel | StateTimelinePanel


class Layout:
    """Rows of panels on the 24-column grid (the SDK places them left to right and wraps),
    each row and panel given an id unique in its board."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self._ids = itertools.count(1)

    def row(self, title: str, *panels: AnyPanel) -> Layout:
        """Add a row titled ``title`` holding ``panels``."""
        self.dashboard = self.dashboard.with_row(Row(title).id(next(self._ids)))
        for panel in panels:
            self.dashboard = self.dashboard.with_panel(panel.id(next(self._ids)))
        return self
