"""Charts of valuation rounds: selector data in, plotly Figure out (views only embed them).

Each chart answers one question an admin or owner asks of a round — who added value and how
sure are we (values with 95% CI whiskers), who gets what (payouts), how utility grows with
coalition size, which owners' data overlap or complement (pairwise interactions), what each
owner's data is good for (objective signature), and how far the arithmetic composition can be
trusted (fidelity). Colour is never the only carrier: negative values are also patterned and
labelled, and every bar has a text label.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from marketplace.charts import ACCENT, MUTED, TOP_BARS, WARN, bar_height, base_layout

VALUE_AXIS = "Shapley value φ (utility units)"
SIZE_AXIS = "coalition size |S| (owners)"
UTILITY_AXIS = "utility v(S)"
POINTS_LIMIT = 12  # every coalition as a point up to 2^12; quantile bands above
ZERO_LINE = {"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
             "line": {"color": MUTED, "width": 1}}


def _top_and_bottom(rows: list, limit: int = TOP_BARS) -> tuple[list, int]:
    """All rows when they fit; otherwise the `limit` highest and `limit` lowest, and how many were left out."""
    if len(rows) <= 2 * limit:
        return rows, 0
    return rows[:limit] + rows[-limit:], len(rows) - 2 * limit


def _omitted_note(omitted: int) -> list[dict]:
    if not omitted:
        return []
    return [{"text": f"{omitted} owners in the middle are not drawn; the table lists everyone", "xref": "paper",
             "yref": "paper", "x": 0, "y": -0.02, "yanchor": "top", "xanchor": "left", "showarrow": False,
             "font": {"color": MUTED, "size": 12}}]


def _padded_range(low: float, high: float, *, pad: float = 0.45) -> list[float]:
    """From `low` to `high` (zero included), with room on the right for the bars' text labels."""
    low, high = min(low, 0.0), max(high, 0.0)
    span = (high - low) or 1.0
    return [low - 0.08 * span if low < 0 else 0.0, high + pad * span]


def _value_bars(rows: list, *, negative: bool) -> list:
    bars = go.Bar(
        name="negative value (hurts the model)" if negative else "value ≥ 0", orientation="h",
        y=[v["owner"] for v in rows], x=[v["value"] for v in rows],
        error_x={"type": "data", "symmetric": False, "color": "#1d2330", "thickness": 1.5,
                 "visible": any(v["ci_high"] > v["ci_low"] for v in rows),  # exact values: no whiskers
                 "array": [max(v["ci_high"] - v["value"], 0.0) for v in rows],
                 "arrayminus": [max(v["value"] - v["ci_low"], 0.0) for v in rows]},
        marker={"color": WARN if negative else ACCENT, "pattern": {"shape": "/" if negative else ""}},
        text=None if negative else [f"{v['value']:+.4f}" for v in rows], textposition="outside", cliponaxis=False,
        customdata=[[v["ci_low"], v["ci_high"]] for v in rows],
        hovertemplate="%{y}: φ = %{x:.5f}<br>95% CI [%{customdata[0]:.5f}, %{customdata[1]:.5f}]<extra></extra>")
    if not negative:
        return [bars]
    # A negative bar's label sits right of zero, where its row is empty, so it never covers the owner names.
    label = go.Scatter(name="negative label", showlegend=False, mode="text", y=[v["owner"] for v in rows],
                       x=[0.0] * len(rows), text=[f" {v['value']:+.4f} (negative)" for v in rows],
                       textposition="middle right", hoverinfo="skip")
    return [bars, label]


def values_bar(values: Sequence[Mapping]) -> go.Figure:
    """Owners' Shapley values, highest first, with 95% CI whiskers; negative values orange, hatched, labelled.

    values: [{"owner": name, "value": φ, "ci_low": float, "ci_high": float}] (ci_low == ci_high when exact).
    """
    ranked = sorted(values, key=lambda v: (-v["value"], v["owner"]))
    shown, omitted = _top_and_bottom(ranked)
    traces = []
    for negative in (False, True):
        rows = [v for v in shown if (v["value"] < 0) == negative]
        traces += _value_bars(rows, negative=negative) if rows else []
    low = min((min(v["ci_low"], v["value"]) for v in shown), default=0.0)
    high = max((max(v["ci_high"], v["value"]) for v in shown), default=0.0)
    layout = base_layout(
        x_title=VALUE_AXIS, y_title="owner", height=bar_height(len(shown)), barmode="overlay",
        xaxis={"range": _padded_range(low, high)}, shapes=[ZERO_LINE], annotations=_omitted_note(omitted),
        yaxis={"categoryorder": "array", "categoryarray": [v["owner"] for v in shown], "autorange": "reversed"})
    return go.Figure(data=traces, layout=layout)


def payouts_bar(payouts: Sequence[Mapping], *, currency: str) -> go.Figure:
    """Each owner's payout, largest first, labelled with its share and amount.

    payouts: [{"owner": name, "amount": Decimal, "share": Decimal (0–1)}].
    """
    ranked = sorted(payouts, key=lambda p: (-p["amount"], p["owner"]))
    shown, omitted = _top_and_bottom(ranked)
    bars = go.Bar(
        name="payout", orientation="h", y=[p["owner"] for p in shown], x=[float(p["amount"]) for p in shown],
        marker_color=ACCENT, textposition="outside", cliponaxis=False,
        text=[f"{float(p['share']) * 100:.1f}% · {p['amount']:,.2f}" for p in shown],
        hovertemplate="%{y}: %{text} " + currency + "<extra></extra>")
    widest = max((float(p["amount"]) for p in shown), default=0.0)
    layout = base_layout(x_title=f"payout ({currency})", y_title="owner", height=bar_height(len(shown)),
                         showlegend=False, yaxis={"autorange": "reversed"}, annotations=_omitted_note(omitted),
                         xaxis={"range": _padded_range(0.0, widest, pad=0.55)})
    return go.Figure(data=[bars], layout=layout)


def _jitter(mask: int) -> float:
    """A fixed horizontal offset in [-0.3, 0.3) per coalition, so equal utilities do not hide each other."""
    return ((mask * 2654435761) % 4096) / 4096 * 0.6 - 0.3


def coalition_points(coalitions: Sequence[Mapping]) -> go.Figure:
    """Every coalition as a point at its size (n ≤ 12), plus the mean utility per size.

    coalitions: [{"mask": int, "size": int, "value": v(S), "members": [names]}].
    """
    points = go.Scatter(
        name="one coalition", mode="markers", x=[c["size"] + _jitter(c["mask"]) for c in coalitions],
        y=[c["value"] for c in coalitions], customdata=[c["size"] for c in coalitions],
        text=[", ".join(c["members"]) or "∅ (base model)" for c in coalitions],
        marker={"color": ACCENT, "size": 8, "opacity": 0.6, "line": {"width": 0}},
        hovertemplate="|S| = %{customdata}: %{text}<br>v(S) = %{y:.5f}<extra></extra>")
    by_size: dict[int, list[float]] = {}
    for c in coalitions:
        by_size.setdefault(c["size"], []).append(c["value"])
    sizes = sorted(by_size)
    mean = go.Scatter(
        name="mean per size", mode="lines+markers", x=sizes, y=[sum(by_size[s]) / len(by_size[s]) for s in sizes],
        line={"color": "#1d2330", "dash": "dash"}, marker={"symbol": "diamond", "size": 8},
        hovertemplate="|S| = %{x}: mean v(S) = %{y:.5f}<extra></extra>")
    return go.Figure(data=[points, mean], layout=base_layout(x_title=SIZE_AXIS, y_title=UTILITY_AXIS,
                                                             xaxis={"dtick": 1}))


def coalition_bands(bands: Mapping) -> go.Figure:
    """Utility quantiles per coalition size (n > 12): 5–95% and 25–75% bands, the median, min and max.

    bands: {"size": [k…], "min", "q05", "q25", "median", "q75", "q95", "max": [one float per size], "count": [int]}.
    """
    sizes = list(bands["size"])
    traces = []
    for low, high, name, fill in (("q05", "q95", "5–95% of coalitions", "rgba(36,86,166,0.15)"),
                                  ("q25", "q75", "25–75% of coalitions", "rgba(36,86,166,0.35)")):
        traces.append(go.Scatter(x=sizes, y=list(bands[low]), mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip", name=f"{name} (low)"))
        traces.append(go.Scatter(x=sizes, y=list(bands[high]), mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=fill, name=name, hoverinfo="skip"))
    traces.append(go.Scatter(name="median", x=sizes, y=list(bands["median"]), mode="lines+markers",
                             line={"color": ACCENT}, customdata=list(bands["count"]),
                             hovertemplate="|S| = %{x}: median %{y:.5f} of %{customdata} coalitions<extra></extra>"))
    for key in ("min", "max"):
        traces.append(go.Scatter(name=key, x=sizes, y=list(bands[key]), mode="lines",
                                 line={"color": MUTED, "dash": "dot", "width": 1}))
    return go.Figure(data=traces, layout=base_layout(x_title=SIZE_AXIS, y_title=UTILITY_AXIS))


def coalition_chart(data: Mapping) -> go.Figure:
    """The coalition chart a round's selector data calls for: {"kind": "points"|"bands", ...}."""
    return coalition_points(data["points"]) if data["kind"] == "points" else coalition_bands(data["bands"])


def interaction_heatmap(names: Sequence[str], matrix: Sequence[Sequence[float]]) -> go.Figure:
    """Pairwise Shapley interaction index: < 0 the two owners' data are redundant, > 0 complementary.

    Cells carry their number (n ≤ 12), so the chart reads without the diverging colour scale.
    """
    n = len(names)
    heat = go.Heatmap(
        z=[list(row) for row in matrix], x=list(names), y=list(names), colorscale="RdBu", zmid=0,
        texttemplate="%{z:+.3f}" if n <= POINTS_LIMIT else None, xgap=1, ygap=1,
        colorbar={"title": {"text": "interaction<br>− redundant<br>+ complementary"}},
        hovertemplate="%{y} × %{x}: %{z:+.5f}<extra></extra>")
    return go.Figure(data=[heat], layout=base_layout(x_title="owner", y_title="owner", height=max(320, 120 + 34 * n),
                                                     yaxis={"autorange": "reversed"}))


def _ci_error(values: Sequence[float], ci: Sequence[Sequence[float]] | None) -> dict:
    if not ci or not any(high > low for low, high in ci):
        return {"visible": False}
    return {"type": "data", "symmetric": False, "color": MUTED, "thickness": 1.2,
            "array": [max(high - v, 0.0) for v, (_, high) in zip(values, ci)],
            "arrayminus": [max(v - low, 0.0) for v, (low, _) in zip(values, ci)]}


def signature_scatter(names: Sequence[str], x_values: Sequence[float], y_values: Sequence[float], *,
                      x_objective: str, y_objective: str, x_ci: Sequence[Sequence[float]] | None = None,
                      y_ci: Sequence[Sequence[float]] | None = None) -> go.Figure:
    """Each owner's data signature: its Shapley value under two objectives, one named point per owner.

    Zero lines split the plane into what an owner's data does for each objective (the seed paper's
    helpfulness/harmlessness figure); a point left of or below zero made that objective worse, and is
    drawn as an orange cross as well as placed there. Whiskers are 95% CIs when the values were sampled.
    """
    hurts = [x < 0 or y < 0 for x, y in zip(x_values, y_values)]
    points = go.Scatter(
        name="owner", mode="markers+text", x=list(x_values), y=list(y_values), text=list(names),
        textposition="top center", error_x=_ci_error(x_values, x_ci), error_y=_ci_error(y_values, y_ci),
        marker={"color": [WARN if h else ACCENT for h in hurts], "size": 11,
                "symbol": ["x" if h else "circle" for h in hurts]},
        hovertemplate="%{text}<br>" + x_objective + " φ %{x:.5f}<br>" + y_objective + " φ %{y:.5f}<extra></extra>")
    axes = [dict(ZERO_LINE), dict(ZERO_LINE, xref="paper", yref="y", x0=0, x1=1, y0=0, y1=0)]
    return go.Figure(data=[points], layout=base_layout(
        x_title=f"φ for {x_objective}", y_title=f"φ for {y_objective}", height=460, showlegend=False, shapes=axes,
        xaxis={"range": _plane_range(x_values, x_ci)}, yaxis={"range": _plane_range(y_values, y_ci, top=0.18)}))


def _plane_range(values: Sequence[float], ci, *, top: float = 0.08) -> list[float]:
    """Both signs' extremes (zero included, CIs too), with room for the owner names above the points."""
    lows = [min(v, low) for v, (low, _) in zip(values, ci)] if ci else list(values)
    highs = [max(v, high) for v, (_, high) in zip(values, ci)] if ci else list(values)
    low, high = min(lows + [0.0]), max(highs + [0.0])
    span = (high - low) or 1.0
    return [low - 0.08 * span, high + top * span]


OBJECTIVE_PATTERNS = ("", ".", "x", "-", "|", "+", "/", "\\")  # one per objective: bars differ beyond colour
# Objective colours: never the orange that marks a negative value elsewhere on the page.
OBJECTIVE_COLOURS = (ACCENT, "#0f766e", "#7c3aed", "#4b5563", "#0369a1", "#15803d", "#a16207", "#be185d")


def objective_bars(objectives: Sequence[str], rows: Sequence[Mapping]) -> go.Figure:
    """Every owner's Shapley value under every objective of a reward round, grouped by owner, with 95% CIs.

    rows: [{"owner": name, "values": {objective: {"shapley", "ci_low", "ci_high"}}}] (participant order).
    """
    owners = [r["owner"] for r in rows]
    traces = []
    for k, name in enumerate(objectives):
        values = [r["values"].get(name, {}) for r in rows]
        x = [v.get("shapley") for v in values]
        ci = [(v.get("ci_low", 0.0), v.get("ci_high", 0.0)) for v in values]
        traces.append(go.Bar(
            name=name, orientation="h", y=owners, x=x, error_x=_ci_error([v or 0.0 for v in x], ci),
            marker={"color": OBJECTIVE_COLOURS[k % len(OBJECTIVE_COLOURS)],
                    "pattern": {"shape": OBJECTIVE_PATTERNS[k % len(OBJECTIVE_PATTERNS)]}},
            text=[None if v is None else f"{v:+.3f}" for v in x], textposition="outside", cliponaxis=False,
            hovertemplate="%{y}: " + name + " φ = %{x:.5f}<extra></extra>"))
    height = 110 + 22 * max(len(owners), 1) * max(len(objectives), 1)
    return go.Figure(data=traces, layout=base_layout(
        x_title=VALUE_AXIS, y_title="owner", height=height, barmode="group", shapes=[ZERO_LINE],
        yaxis={"categoryorder": "array", "categoryarray": owners, "autorange": "reversed"}))


def fidelity_scatter(report: Mapping) -> go.Figure:
    """How closely the composed coalition model tracks a model trained on the coalition's pooled data.

    report: {"metric": name, "rows": [{"label": coalition, "trained": v, "composed": v}], ...}; points on
    the dashed diagonal mean the arithmetic composition is faithful.
    """
    rows = list(report["rows"])
    metric = report.get("metric", "utility")
    trained, composed = [r["trained"] for r in rows], [r["composed"] for r in rows]
    traces = [go.Scatter(
        name="coalition", mode="markers+text", x=trained, y=composed, text=[r["label"] for r in rows],
        textposition="top center", marker={"color": ACCENT, "size": 9, "symbol": "circle"},
        hovertemplate="%{text}<br>trained %{x:.5f}<br>composed %{y:.5f}<extra></extra>")]
    if rows:
        low, high = min(trained + composed), max(trained + composed)
        traces.append(go.Scatter(name="perfect agreement (y = x)", mode="lines", x=[low, high], y=[low, high],
                                 line={"color": MUTED, "dash": "dash"}, hoverinfo="skip"))
    return go.Figure(data=traces, layout=base_layout(
        x_title=f"{metric} of a model trained on the pooled data", y_title=f"{metric} by model arithmetic",
        height=420))


def owner_history(rounds: Sequence[Mapping], *, currency: str) -> go.Figure:
    """One owner's value (left axis, with CI whiskers) and payout (right axis) in every round, in date order.

    rounds: [{"round": name, "created": datetime, "value": φ|None, "ci_low", "ci_high", "amount": Decimal|None}].
    """
    ordered = sorted(rounds, key=lambda r: r["created"])
    names = [r["round"] for r in ordered]
    value = go.Scatter(
        name="my value φ (solid, circles)", mode="lines+markers", x=names, y=[r["value"] for r in ordered],
        line={"color": ACCENT}, marker={"symbol": "circle", "size": 8},
        error_y={"type": "data", "symmetric": False, "color": ACCENT,
                 "array": [None if r["value"] is None else max(r["ci_high"] - r["value"], 0.0) for r in ordered],
                 "arrayminus": [None if r["value"] is None else max(r["value"] - r["ci_low"], 0.0) for r in ordered]},
        hovertemplate="%{x}: φ = %{y:.5f}<extra></extra>")
    amount = go.Scatter(
        name=f"my payout in {currency} (dashed, squares)", mode="lines+markers", x=names, yaxis="y2",
        y=[None if r["amount"] is None else float(r["amount"]) for r in ordered],
        line={"color": WARN, "dash": "dash"}, marker={"symbol": "square", "size": 8},
        hovertemplate="%{x}: %{y:,.2f} " + currency + "<extra></extra>")
    layout = base_layout(x_title="round (oldest first)", y_title="my Shapley value φ", xaxis={"type": "category"},
                         yaxis2={"title": {"text": f"my payout ({currency})"}, "overlaying": "y", "side": "right",
                                 "rangemode": "tozero", "showgrid": False, "tickmode": "auto", "tickformat": ",.2f"})
    return go.Figure(data=[value, amount], layout=layout)
