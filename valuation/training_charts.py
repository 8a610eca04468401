"""Charts of the owners' fine-tunes: one chart per TRL metric (loss, reward accuracy, reward margin), one
line per owner over the training steps. Lines differ by dash as well as colour, and each ends in the owner's
name, so no line is told apart by colour alone. Pure functions: training_selectors data in, Figure out."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from marketplace.charts import base_layout

from .charts import OBJECTIVE_COLOURS

# (TRL's log key, axis title): what each chart shows.
METRICS = (("loss", "DPO loss"),
           ("rewards/accuracies", "reward accuracy (share of pairs with r(chosen) > r(rejected))"),
           ("rewards/margins", "reward margin r(chosen) − r(rejected)"))
DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
STEP_AXIS = "training step"


def _line(row: Mapping, key: str, k: int) -> go.Scatter | None:
    points = [(s["step"], s[key]) for s in row["steps"] if key in s and s.get("step") is not None]
    if not points:
        return None
    steps, values = zip(*points)
    labels = [""] * (len(points) - 1) + [row["owner"]]  # the name at the line's end
    return go.Scatter(name=row["owner"], x=list(steps), y=list(values), mode="lines+text", text=labels,
                      textposition="middle right", cliponaxis=False,
                      line={"color": OBJECTIVE_COLOURS[k % len(OBJECTIVE_COLOURS)], "dash": DASHES[k % len(DASHES)]},
                      hovertemplate=row["owner"] + ": step %{x}, %{y:.4f}<extra></extra>")


def training_curve(rows: Sequence[Mapping], key: str, title: str) -> go.Figure | None:
    """One metric's curves, a line per owner that has a log; None when no owner has one."""
    lines = [line for k, row in enumerate(rows) if (line := _line(row, key, k)) is not None]
    if not lines:
        return None
    extra = {"yaxis": {"range": [-0.02, 1.02]}} if key == "rewards/accuracies" else {}
    return go.Figure(data=lines, layout=base_layout(x_title=STEP_AXIS, y_title=title, height=320,
                                                    margin={"l": 10, "r": 90, "t": 10, "b": 10}, **extra))


def training_curves(rows: Sequence[Mapping]) -> list[dict]:
    """[{"key", "title", "figure"}] for each metric some owner logged."""
    out = []
    for key, title in METRICS:
        figure = training_curve(rows, key, title)
        if figure is not None:
            out.append({"key": key.replace("/", "-"), "title": title, "figure": figure})
    return out
