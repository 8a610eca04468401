"""Charts of the data-quality stage: selector data in, plotly Figure out (as valuation/charts.py).

Two questions: how were the clusters of the round's data valued (staff), and how do my pairs'
values spread, which of them are flagged (an owner). Flagged / negative is orange *and*
hatched *and* named in the legend, never colour alone; a table beside each chart has the numbers.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from marketplace.charts import ACCENT, WARN, bar_height, base_layout

from .charts import ZERO_LINE, _padded_range

CLUSTER_AXIS = "proxy Shapley value<br>(held-out classifier accuracy)"  # two lines: fits a phone
PAIR_AXIS = "pair value<br>(held-out classifier accuracy)"


def cluster_values_bar(clusters: Sequence[Mapping]) -> go.Figure:
    """One bar per cluster, highest value first, with ±1.96·stderr whiskers.

    clusters: [{"index": int, "size": int, "value": float, "stderr": float}].
    """
    ranked = sorted(clusters, key=lambda c: (-c["value"], c["index"]))
    labels = [f"cluster {c['index']} ({c['size']} pairs)" for c in ranked]
    traces = []
    for negative in (False, True):
        rows = [(label, c) for label, c in zip(labels, ranked) if (c["value"] < 0) == negative]
        if not rows:
            continue
        traces.append(go.Bar(
            name="negative (hurts held-out accuracy)" if negative else "value ≥ 0", orientation="h",
            y=[label for label, _ in rows], x=[c["value"] for _, c in rows],
            error_x={"type": "data", "array": [1.96 * c["stderr"] for _, c in rows], "color": "#1d2330"},
            marker={"color": WARN if negative else ACCENT, "pattern": {"shape": "/" if negative else ""}},
            text=[f"{c['value']:+.4f}" for _, c in rows], textposition="outside", cliponaxis=False,
            hovertemplate="%{y}: %{x:.5f}<extra></extra>"))
    low = min((c["value"] - 1.96 * c["stderr"] for c in ranked), default=0.0)
    high = max((c["value"] + 1.96 * c["stderr"] for c in ranked), default=0.0)
    layout = base_layout(x_title=CLUSTER_AXIS, y_title="cluster", height=bar_height(len(ranked)), barmode="overlay",
                         xaxis={"range": _padded_range(low, high)}, shapes=[ZERO_LINE],
                         yaxis={"categoryorder": "array", "categoryarray": labels, "autorange": "reversed"})
    return go.Figure(data=traces, layout=layout)


def pair_value_histogram(rows: Sequence[Mapping]) -> go.Figure:
    """How an owner's pair values spread; flagged pairs stacked in their own hatched orange series.

    rows: [{"value": float, "flagged": bool}].
    """
    traces = []
    for flagged in (False, True):
        values = [r["value"] for r in rows if r["flagged"] == flagged]
        if values:
            traces.append(go.Histogram(
                name="flagged (credibly harmful)" if flagged else "not flagged", x=values, nbinsx=40,
                marker={"color": WARN if flagged else ACCENT, "pattern": {"shape": "/" if flagged else ""}},
                hovertemplate="%{x}: %{y} pairs<extra></extra>"))
    layout = base_layout(x_title=PAIR_AXIS, y_title="pairs", barmode="stack", height=300,
                         shapes=[dict(ZERO_LINE)])
    return go.Figure(data=traces, layout=layout)
