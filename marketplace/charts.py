"""Charts of the marketplace overview, and the look every chart of the project shares.

Charts are pure functions: selector data in, a plotly Figure out. Views only embed them
(templatetags/charts.py), and every chart sits next to a table that says the same thing:
the table is the accessible fallback, the chart is for looking.

Readable without colour: every bar carries a text label, and a second meaning of colour
(negative, pending) is also a fill pattern and a legend entry.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

ACCENT = "#2456a6"  # matches static/css/site.css --accent
WARN = "#c2410c"  # orange, told apart from the accent blue by colour-blind readers too
MUTED = "#8a93a3"
FONT = 'system-ui, -apple-system, "Segoe UI", sans-serif'
TOP_BARS = 30  # a bar chart of more owners shows the top (and bottom) ones; the table has everyone
AXIS = {"gridcolor": "#eceef2", "zerolinecolor": "#c9ced6", "linecolor": "#c9ced6", "automargin": True}


def base_layout(*, x_title: str, y_title: str, height: int = 360, **extra) -> dict:
    """The shared look: white, axis titles, a legend above the plot (room on a phone).

    A plain dict passed to go.Figure(layout=...) with no plotly template: building a figure then takes
    about a millisecond instead of tens (templates are deep-copied and validated per figure), and plotly.js
    draws its own plain defaults.
    """
    layout = {
        "template": None, "height": height, "paper_bgcolor": "white", "plot_bgcolor": "white",
        "font": {"family": FONT, "size": 13, "color": "#1d2330"}, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "xaxis": dict(AXIS, title={"text": x_title}), "yaxis": dict(AXIS, title={"text": y_title}),
    }
    for key, value in extra.items():
        layout[key] = dict(layout[key], **value) if isinstance(layout.get(key), dict) else value
    return layout


def bar_height(n_bars: int) -> int:
    return 110 + 26 * max(n_bars, 1)


def rounds_over_time(rounds: Sequence[Mapping], *, currency: str) -> go.Figure:
    """Each round as a bar at its creation date (height: what it paid, drafts included), and the running
    count of rounds as a line on a second axis.

    rounds: [{"name", "created": datetime, "pool": Decimal, "paid": Decimal, "status"}], any order.
    """
    ordered = sorted(rounds, key=lambda r: r["created"])
    created = [r["created"] for r in ordered]
    bars = go.Bar(
        name="paid (drafts included)", x=created, y=[float(r["paid"]) for r in ordered],
        text=[r["name"] for r in ordered], textposition="none", marker_color=ACCENT,
        customdata=[[r["status"], float(r["pool"])] for r in ordered],
        hovertemplate="%{text}<br>%{x|%Y-%m-%d %H:%M}<br>paid %{y:,.2f} of %{customdata[1]:,.2f}"
                      f" {currency}<br>%{{customdata[0]}}<extra></extra>")
    count = go.Scatter(
        name="rounds so far", x=created, y=list(range(1, len(ordered) + 1)), mode="lines+markers",
        line={"color": MUTED, "dash": "dot", "shape": "hv"}, marker={"symbol": "diamond"}, yaxis="y2",
        hovertemplate="%{y} rounds by %{x|%Y-%m-%d}<extra></extra>")
    layout = base_layout(x_title="round created", y_title=f"paid in the round ({currency})", yaxis2={
        "title": {"text": "rounds so far"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
        "showgrid": False, "tickformat": "d", "dtick": max(1, math.ceil(len(ordered) / 5))})  # whole rounds
    return go.Figure(data=[bars, count], layout=layout)


def paid_per_owner(owners: Sequence[Mapping], *, currency: str, top: int = TOP_BARS) -> go.Figure:
    """Total paid per owner across rounds, approved and pending (draft) stacked, highest first.

    owners: [{"owner": name, "paid": Decimal (approved), "pending": Decimal (drafts)}].
    """
    ranked = sorted(owners, key=lambda o: (-(o["paid"] + o["pending"]), o["owner"]))[:top]
    names = [o["owner"] for o in ranked]
    approved = go.Bar(name="approved", orientation="h", y=names, x=[float(o["paid"]) for o in ranked],
                      marker_color=ACCENT, hovertemplate="%{y}: %{x:,.2f} approved<extra></extra>")
    pending = go.Bar(
        name="pending approval", orientation="h", y=names, x=[float(o["pending"]) for o in ranked],
        marker={"color": MUTED, "pattern": {"shape": "/"}}, textposition="outside", cliponaxis=False,
        text=[f"{o['paid'] + o['pending']:,.2f} {currency}" for o in ranked],
        hovertemplate="%{y}: %{x:,.2f} pending<extra></extra>")
    widest = max((float(o["paid"] + o["pending"]) for o in ranked), default=0.0) or 1.0
    layout = base_layout(x_title=f"total across rounds ({currency})", y_title="owner", height=bar_height(len(ranked)),
                         barmode="stack", xaxis={"range": [0, 1.5 * widest]},  # room for the total's label
                         yaxis={"categoryorder": "array", "categoryarray": names, "autorange": "reversed"})
    return go.Figure(data=[approved, pending], layout=layout)
