"""Every chart function on known data: which traces, which numbers, which axis titles.

Charts are pure (selector data -> Figure), so these need no database.
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from marketplace import charts as market_charts
from valuation import charts

VALUES = [
    {"owner": "bob", "value": 0.10, "ci_low": 0.06, "ci_high": 0.13},
    {"owner": "mallory", "value": -0.05, "ci_low": -0.08, "ci_high": -0.01},
    {"owner": "alice", "value": 0.30, "ci_low": 0.30, "ci_high": 0.30},
]


def _axis_titles(fig):
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_values_bar_sorts_highest_first_with_ci_whiskers_and_a_negative_trace():
    fig = charts.values_bar(VALUES)
    positive, negative, label = fig.data
    assert list(positive.y) == ["alice", "bob"] and list(positive.x) == [0.30, 0.10]
    assert list(positive.error_x.array) == pytest.approx([0.0, 0.03])
    assert list(positive.error_x.arrayminus) == pytest.approx([0.0, 0.04])
    assert list(positive.text) == ["+0.3000", "+0.1000"] and positive.error_x.visible
    assert list(negative.y) == ["mallory"] and list(negative.x) == [-0.05]
    assert list(negative.error_x.array) == pytest.approx([0.04]) and list(negative.error_x.arrayminus) == pytest.approx([0.03])
    # Negative is told apart by colour, by a hatch pattern and by its label (readable without colour).
    assert positive.marker.color != negative.marker.color
    assert negative.marker.pattern.shape == "/" and "negative" in negative.name
    assert list(label.y) == ["mallory"] and list(label.text) == [" -0.0500 (negative)"] and label.mode == "text"
    assert list(fig.layout.yaxis.categoryarray) == ["alice", "bob", "mallory"]
    assert fig.layout.yaxis.autorange == "reversed"  # highest at the top
    low, high = fig.layout.xaxis.range
    assert low < -0.08 and high > 0.30  # every whisker and label inside the plot
    assert _axis_titles(fig) == (charts.VALUE_AXIS, "owner")


def test_values_bar_without_negatives_has_one_trace_and_exact_values_no_whiskers():
    fig = charts.values_bar([{"owner": "a", "value": 0.2, "ci_low": 0.2, "ci_high": 0.2}])
    assert len(fig.data) == 1 and fig.data[0].name == "value ≥ 0"
    assert fig.data[0].error_x.visible is False


def test_values_bar_of_many_owners_draws_top_and_bottom_and_says_so():
    many = [{"owner": f"o{i:03d}", "value": float(i), "ci_low": float(i), "ci_high": float(i)} for i in range(100)]
    fig = charts.values_bar(many)
    drawn = [name for trace in fig.data if trace.type == "bar" for name in trace.y]
    assert len(drawn) == 2 * market_charts.TOP_BARS
    assert drawn[0] == "o099" and drawn[-1] == "o000"
    assert "40 owners in the middle are not drawn" in fig.layout.annotations[0].text


def test_payouts_bar_labels_share_and_amount():
    fig = charts.payouts_bar([
        {"owner": "bob", "amount": Decimal("25.00"), "share": Decimal("0.25")},
        {"owner": "alice", "amount": Decimal("75.00"), "share": Decimal("0.75")},
    ], currency="EUR")
    (bar,) = fig.data
    assert list(bar.y) == ["alice", "bob"] and list(bar.x) == [75.0, 25.0]
    assert list(bar.text) == ["75.0% · 75.00", "25.0% · 25.00"]
    assert fig.layout.xaxis.range[1] > 75
    assert _axis_titles(fig) == ("payout (EUR)", "owner")


def test_coalition_points_put_every_coalition_at_its_size_and_the_mean_per_size():
    coalitions = [{"mask": m, "size": bin(m).count("1"), "value": v, "members": members}
                  for m, v, members in [(0, 0.5, []), (1, 0.6, ["a"]), (2, 0.7, ["b"]), (3, 0.9, ["a", "b"])]]
    fig = charts.coalition_points(coalitions)
    points, mean = fig.data
    assert list(points.customdata) == [0, 1, 1, 2] and list(points.y) == [0.5, 0.6, 0.7, 0.9]
    assert [round(x) for x in points.x] == [0, 1, 1, 2]  # jittered sideways, never into another size
    assert all(abs(x - s) <= 0.3 for x, s in zip(points.x, points.customdata))
    assert list(points.text) == ["∅ (base model)", "a", "b", "a, b"]
    assert list(mean.x) == [0, 1, 2] and list(mean.y) == pytest.approx([0.5, 0.65, 0.9])
    assert _axis_titles(fig) == (charts.SIZE_AXIS, charts.UTILITY_AXIS)


def test_coalition_bands_draw_quantile_bands_median_and_extremes():
    bands = {"size": [0, 1, 2], "count": [1, 13, 78], "min": [0.5, 0.4, 0.45], "q05": [0.5, 0.45, 0.5],
             "q25": [0.5, 0.5, 0.55], "median": [0.5, 0.55, 0.6], "q75": [0.5, 0.6, 0.65],
             "q95": [0.5, 0.65, 0.7], "max": [0.5, 0.7, 0.8]}
    fig = charts.coalition_chart({"kind": "bands", "bands": bands})
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["5–95% of coalitions"].y) == bands["q95"] and by_name["5–95% of coalitions"].fill == "tonexty"
    assert list(by_name["5–95% of coalitions (low)"].y) == bands["q05"]
    assert list(by_name["25–75% of coalitions"].y) == bands["q75"]
    assert list(by_name["median"].y) == bands["median"] and list(by_name["median"].customdata) == bands["count"]
    assert list(by_name["min"].y) == bands["min"] and list(by_name["max"].y) == bands["max"]
    assert _axis_titles(fig) == (charts.SIZE_AXIS, charts.UTILITY_AXIS)


def test_interaction_heatmap_is_centred_at_zero_and_prints_its_numbers():
    matrix = [[0.0, -0.2], [-0.2, 0.0]]
    fig = charts.interaction_heatmap(["a", "b"], matrix)
    (heat,) = fig.data
    assert [list(row) for row in heat.z] == matrix and list(heat.x) == ["a", "b"] and list(heat.y) == ["a", "b"]
    assert heat.zmid == 0 and heat.texttemplate == "%{z:+.3f}"
    assert _axis_titles(fig) == ("owner", "owner")


def test_signature_scatter_names_every_owner_on_two_objective_axes():
    fig = charts.signature_scatter(["a", "b"], [0.1, -0.2], [0.3, 0.4], x_objective="helpful",
                                   y_objective="harmless")
    (points,) = fig.data
    assert list(points.x) == [0.1, -0.2] and list(points.y) == [0.3, 0.4] and list(points.text) == ["a", "b"]
    assert points.mode == "markers+text"
    assert _axis_titles(fig) == ("φ for helpful", "φ for harmless")
    assert list(points.marker.symbol) == ["circle", "x"]  # b hurts helpfulness: marked, not only coloured
    assert points.error_x.visible is False  # exact values: no whiskers


def test_signature_scatter_draws_sampled_values_confidence_intervals():
    fig = charts.signature_scatter(["a", "b"], [0.1, -0.2], [0.3, 0.4], x_objective="helpful",
                                   y_objective="harmless", x_ci=[(0.05, 0.2), (-0.3, -0.15)],
                                   y_ci=[(0.3, 0.3), (0.4, 0.4)])
    (points,) = fig.data
    assert list(points.error_x.array) == pytest.approx([0.1, 0.05])
    assert list(points.error_x.arrayminus) == pytest.approx([0.05, 0.1])
    assert points.error_y.visible is False  # y was exact


def test_objective_bars_group_every_owner_by_objective_with_intervals():
    rows = [{"owner": "a", "values": {"helpful": {"shapley": 0.2, "ci_low": 0.1, "ci_high": 0.3},
                                      "harmless": {"shapley": -0.1, "ci_low": -0.1, "ci_high": -0.1}}},
            {"owner": "b", "values": {"helpful": {"shapley": 0.05, "ci_low": 0.0, "ci_high": 0.1},
                                      "harmless": {"shapley": 0.3, "ci_low": 0.3, "ci_high": 0.3}}}]
    fig = charts.objective_bars(["helpful", "harmless"], rows)
    helpful, harmless = fig.data
    assert helpful.name == "helpful" and list(helpful.y) == ["a", "b"] and list(helpful.x) == [0.2, 0.05]
    assert list(harmless.x) == [-0.1, 0.3] and list(harmless.text) == ["-0.100", "+0.300"]
    assert list(helpful.error_x.array) == pytest.approx([0.1, 0.05])
    assert helpful.marker.pattern.shape != harmless.marker.pattern.shape  # told apart without colour
    assert fig.layout.barmode == "group"


def test_fidelity_scatter_plots_composed_against_trained_with_the_diagonal():
    report = {"metric": "preference accuracy", "rows": [
        {"label": "{a}", "trained": 0.6, "composed": 0.62}, {"label": "{a, b}", "trained": 0.7, "composed": 0.66}]}
    fig = charts.fidelity_scatter(report)
    points, diagonal = fig.data
    assert list(points.x) == [0.6, 0.7] and list(points.y) == [0.62, 0.66] and list(points.text) == ["{a}", "{a, b}"]
    assert list(diagonal.x) == [0.6, 0.7] and list(diagonal.y) == [0.6, 0.7]
    assert _axis_titles(fig) == ("preference accuracy of a model trained on the pooled data",
                                 "preference accuracy by model arithmetic")


def test_owner_history_orders_rounds_by_date_with_value_and_payout_axes():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rounds = [
        {"round": "r2", "created": t0 + timedelta(days=2), "value": -0.01, "ci_low": -0.02, "ci_high": 0.0,
         "amount": Decimal("0.00")},
        {"round": "r1", "created": t0, "value": 0.2, "ci_low": 0.2, "ci_high": 0.2, "amount": Decimal("12.50")},
        {"round": "r3", "created": t0 + timedelta(days=3), "value": None, "ci_low": None, "ci_high": None,
         "amount": None},
    ]
    fig = charts.owner_history(rounds, currency="USD")
    value, amount = fig.data
    assert list(value.x) == ["r1", "r2", "r3"] and list(value.y) == [0.2, -0.01, None]
    assert list(value.error_y.array) == pytest.approx([0.0, 0.01, None], abs=1e-12)
    assert list(amount.y) == [12.5, 0.0, None] and amount.yaxis == "y2" and amount.line.dash == "dash"
    assert _axis_titles(fig) == ("round (oldest first)", "my Shapley value φ")
    assert fig.layout.yaxis2.title.text == "my payout (USD)"


def test_rounds_over_time_bars_per_round_and_a_running_count():
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    rounds = [{"name": "later", "created": t0 + timedelta(days=5), "pool": Decimal("50"), "paid": Decimal("0"),
               "status": "failed"},
              {"name": "first", "created": t0, "pool": Decimal("100"), "paid": Decimal("100"), "status": "done"}]
    fig = market_charts.rounds_over_time(rounds, currency="USD")
    bars, count = fig.data
    assert list(bars.text) == ["first", "later"] and list(bars.y) == [100.0, 0.0]
    assert list(count.y) == [1, 2] and count.yaxis == "y2" and fig.layout.yaxis2.dtick == 1
    assert _axis_titles(fig) == ("round created", "paid in the round (USD)")
    assert fig.layout.yaxis2.title.text == "rounds so far"


def test_paid_per_owner_stacks_approved_and_pending_highest_total_first():
    owners = [{"owner": "a", "paid": Decimal("10"), "pending": Decimal("0")},
              {"owner": "b", "paid": Decimal("5"), "pending": Decimal("20")},
              {"owner": "c", "paid": Decimal("0"), "pending": Decimal("1")}]
    fig = market_charts.paid_per_owner(owners, currency="USD", top=2)
    approved, pending = fig.data
    assert list(approved.y) == ["b", "a"] and list(approved.x) == [5.0, 10.0]
    assert list(pending.x) == [20.0, 0.0] and pending.marker.pattern.shape == "/"
    assert list(pending.text) == ["25.00 USD", "10.00 USD"] and fig.layout.barmode == "stack"
    assert fig.layout.xaxis.range[1] == pytest.approx(37.5)
    assert _axis_titles(fig) == ("total across rounds (USD)", "owner")
