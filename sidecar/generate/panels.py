"""Panel and query helpers shared by the jobpulse dashboards (grafana-foundation-sdk builders).

Every panel and every query points at the ``$datasource`` variable, never at a
``${DS_*}`` import input, so a provisioned dashboard works on any Grafana as it is.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders.common import ReduceDataOptions, StackingConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prom_model

__all__ = [
    "CLUSTER",
    "DATASOURCE",
    "PanelBuilder",
    "Query",
    "bars",
    "dashboard",
    "label_variable",
    "ranking",
    "single_stat",
    "state_mappings",
    "table_panel",
    "targets",
    "timeseries_panel",
    "traces_variable",
    "window_variable",
]

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "jobpulse"
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

Query = tuple[str, str]  # (PromQL, legend format)
CLUSTER = 'cluster=~"$cluster"'  # added to every series: one cluster, or all of them
PanelBuilder = Builder[model.Panel]


def targets(
    queries: list[Query], *, instant: bool = False, exemplar: int | None = None
) -> list[Builder[Dataquery]]:
    """One Prometheus query per (expr, legend), refIds A, B, ... on ``$datasource``;
    ``exemplar``: the index of the one whose exemplars are shown (one query per histogram:
    every quantile of it would show the same points again)."""
    built: list[Builder[Dataquery]] = []
    for index, (expr, legend) in enumerate(queries):
        target = prom.Dataquery().expr(expr).ref_id(_REF_IDS[index]).datasource(DATASOURCE)
        if legend:
            target = target.legend_format(legend)
        if index == exemplar:
            target = target.exemplar(True)
        if instant:
            target = target.instant().format(prom_model.PromQueryFormat.TABLE)
        built.append(target)
    return built


def dashboard(uid: str, title: str, description: str) -> builder.Dashboard:
    """A dashboard with the ``datasource`` variable and links to the other jobpulse boards."""
    return (
        builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone("browser")
        .editable()
        .with_variable(
            builder.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .link(
            builder.DashboardLink("jobpulse")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def label_variable(
    name: str, label: str, query: str, *, multi: bool = True, hide: bool = False
) -> builder.QueryVariable:
    """A variable listing the values of ``label`` of ``query``'s series; "All" matches every
    value and series without the label (``.*``), so a fleet without ``cluster`` still shows."""
    variable = (
        builder.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .multi(multi)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )
    if hide:
        return variable.hide(model.VariableHide.HIDE_VARIABLE)
    return variable.all_value(".*")


def window_variable() -> builder.CustomVariable:
    """``$window``: the statistics windows the sidecar exports, usable as a range too."""
    windows = ("1h", "24h", "7d", "30d")
    return (
        builder.CustomVariable("window")
        .label("Window")
        .values(",".join(windows))
        .current(model.VariableOption(selected=True, text="24h", value="24h"))
        .options([model.VariableOption(selected=w == "24h", text=w, value=w) for w in windows])
    )


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: list[Query],
    *,
    width: int = 12,
    exemplar: int | None = None,
) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .targets(targets(queries, exemplar=exemplar))
    )


def traces_variable() -> builder.DatasourceVariable:
    """``$traces``: the tracing data source the runs' traces are in (Tempo; a Jaeger one is
    picked by changing the variable's type). The Prometheus data source links exemplars to
    it through its ``exemplarTraceIdDestinations`` (docs/integrations.md)."""
    return builder.DatasourceVariable("traces").label("Traces").type("tempo")


def bars(
    title: str, description: str, queries: list[Query], *, width: int = 12
) -> timeseries.Panel:
    """Stacked bars of counts per interval (runs by outcome, missed slots)."""
    return (
        timeseries_panel(title, description, "short", queries, width=width)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    )


def single_stat(
    title: str, description: str, unit: str, expr: str, *, width: int = 4
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(4)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .targets(targets([(expr, "")]))
    )


def ranking(
    title: str, description: str, unit: str, expr: str, legend: str, *, width: int = 12
) -> bargauge.Panel:
    """Horizontal bars, one per series, for top-N lists (slowest jobs)."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .targets(targets([(expr, legend)], instant=True))
    )


def table_panel(
    title: str, description: str, queries: list[Query], *, width: int = 24
) -> table.Panel:
    """Instant queries merged into one row per label set (the fleet's state table)."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(10)
        .targets(targets(queries, instant=True))
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    )


def state_mappings(states: tuple[str, ...], colors: dict[str, str]) -> list[model.ValueMapping]:
    """Value mappings for a state encoded as its 1-based position in ``states``."""
    return [
        model.ValueMap(
            options={
                str(number): model.ValueMappingResult(
                    text=state, color=colors[state], index=number - 1
                )
                for number, state in enumerate(states, start=1)
            }
        )
    ]
