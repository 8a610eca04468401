"""Round pages, owner pages and statements: what they show, what they never show, how many queries.

Results are written with the ORM (tests/dashboards.py); the charts' JSON is read back out of the
HTML, so these assert the numbers a browser would draw.
"""
import csv
import io
import json
import re
from decimal import Decimal

import numpy as np
import pytest
from django.test import Client

from marketplace.services import eval_set_create, owner_create
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs
from tests.dashboards import additive_table, round_for, write_objective_values, write_results
from valuation import ledger, selectors, services
from valuation.models import Payout, ValuationRound

pytestmark = pytest.mark.django_db


@pytest.fixture
def eval_set():
    return eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(4, tag="eval"))),
                           filename="heldout.jsonl")


def owners(n: int, prefix: str = "owner"):
    return [owner_create(username=f"{prefix}{i:02d}", password=PASSWORD) for i in range(n)]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def figure(html: str, chart_id: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', html, re.S)
    assert match, f"no {chart_id} in the page"
    return json.loads(match.group(1))


def body(response) -> str:
    return response.content.decode()


@pytest.fixture
def done_round(eval_set):
    team = owners(3)
    r = round_for("r-done", eval_set, team)
    return write_results(r, [0.2, -0.05, 0.1], interactions=[[0, -0.1, 0.2], [-0.1, 0, 0.0], [0.2, 0.0, 0]]), team


# --- the admin round page ----------------------------------------------------------------

def test_round_page_draws_values_payouts_coalitions_and_interactions(done_round, staff_user):
    r, team = done_round
    html = body(client_for(staff_user).get(f"/rounds/{r.pk}/"))
    values = figure(html, "values-chart")
    assert values["data"][0]["y"] == ["owner00", "owner02"] and values["data"][0]["x"] == [0.2, 0.1]
    assert values["data"][1]["y"] == ["owner01"] and values["data"][1]["x"] == [-0.05]
    assert values["layout"]["xaxis"]["title"]["text"].startswith("Shapley value")
    payouts = figure(html, "payouts-chart")["data"][0]
    assert payouts["y"] == ["owner00", "owner02", "owner01"]
    assert payouts["text"] == ["66.7% · 66.67", "33.3% · 33.33", "0.0% · 0.00"]
    points = figure(html, "coalitions-chart")["data"][0]
    assert points["y"] == pytest.approx(additive_table([0.2, -0.05, 0.1])) and len(points["x"]) == 8
    heat = figure(html, "interactions-chart")["data"][0]
    assert heat["z"] == [[0, -0.1, 0.2], [-0.1, 0, 0.0], [0.2, 0.0, 0]] and heat["x"] == ["owner00", "owner01", "owner02"]
    assert "signature-chart" not in html and "fidelity-chart" not in html  # no such data in this round
    assert 'src="/static/plotly/plotly.min.js"' in html and "cdn." not in html.lower()  # "cdn" alone can occur in a CSRF token
    assert "-0.05000 (negative)" in html and "Approve payouts" in html and "100.00 of 100.00 USD" in html
    assert 'data-active="0"' in html and "3/3 (100%)" in html and "12.5 s" in html


def test_round_page_of_an_active_round_polls_and_has_no_results_yet(eval_set, staff_user):
    r = round_for("r-live", eval_set, owners(2), status=ValuationRound.Status.TRAINING)
    ValuationRound.objects.filter(pk=r.pk).update(progress={"training": {"done": 1, "total": 2}},
                                                  timings={"training": 4.0})
    html = body(client_for(staff_user).get(f"/rounds/{r.pk}/"))
    assert 'data-active="1"' in html and f'data-url="/api/rounds/{r.pk}/"' in html
    assert 'id="p-training" value="1" max="2"' in html and "1/2 (50%)" in html and "4.0 s" in html
    assert 'id="p-scoring" value="0" max="1"' in html and "0/0 (0%)" in html
    assert "values-chart" not in html and "Approve payouts" not in html
    assert "/static/js/round_progress.js" in html and 'id="status-labels"' in html


def test_signature_and_fidelity_appear_when_the_round_has_them(eval_set, staff_user):
    fidelity = {"metric": "preference accuracy", "note": "composed vs. trained on pooled data",
                "summary": {"spearman": 0.9}, "rows": [{"label": "{owner00}", "trained": 0.6, "composed": 0.61}]}
    r = round_for("r-obj", eval_set, owners(2), config={"beta": 0.1, "fidelity": fidelity})
    write_results(r, [0.2, 0.1])
    write_objective_values(r, {"helpful": [0.3, -0.1], "harmless": [0.05, 0.2]}, payout={"helpful": 0.25, "harmless": 0.75})
    html = body(client_for(staff_user).get(f"/rounds/{r.pk}/"))
    signature = figure(html, "signature-chart")
    assert signature["data"][0]["x"] == [0.3, -0.1] and signature["data"][0]["y"] == [0.05, 0.2]
    assert signature["layout"]["xaxis"]["title"]["text"] == "φ for helpful"
    assert signature["data"][0]["marker"]["symbol"] == ["circle", "x"]  # owner01 hurts helpfulness
    bars = figure(html, "objectives-chart")
    assert [t["name"] for t in bars["data"]] == ["helpful", "harmless"] and bars["data"][1]["x"] == [0.05, 0.2]
    assert "<dd>0.25 × helpful + 0.75 × harmless</dd>" in html and "An approximation." in html and "token-level arithmetic" in html
    assert figure(html, "fidelity-chart")["data"][0]["y"] == [0.61]
    assert "composed vs. trained on pooled data" in html and "spearman" in html


def test_coalition_bands_from_the_npy_table_above_twelve_owners(eval_set, staff_user, tmp_path):
    team = owners(13)
    values = [0.01 * (i + 1) for i in range(13)]
    r = write_results(round_for("r-big", eval_set, team), values, coalition_rows=False)
    path = tmp_path / "utilities.npy"
    np.save(path, np.array(additive_table(values)))
    ValuationRound.objects.filter(pk=r.pk).update(utilities_path=str(path), utilities_hash="f" * 64)
    r.refresh_from_db()
    names = {i: o.name for i, o in enumerate(team)}
    bands = selectors.round_coalition_data(valuation_round=r, names=names)["bands"]
    assert bands["size"] == list(range(14)) and bands["count"][1] == 13 and bands["count"][6] == 1716
    assert bands["min"][1] == pytest.approx(0.51) and bands["max"][1] == pytest.approx(0.63)
    assert bands["median"][13] == pytest.approx(0.5 + sum(values))
    html = body(client_for(staff_user).get(f"/rounds/{r.pk}/"))
    chart = figure(html, "coalitions-chart")
    median = next(t for t in chart["data"] if t["name"] == "median")
    assert median["y"] == pytest.approx(bands["median"])


def test_a_done_round_page_is_served_from_cache_until_payouts_are_approved(done_round, staff_user,
                                                                          django_assert_max_num_queries):
    r, _ = done_round
    client = client_for(staff_user)
    first = body(client.get(f"/rounds/{r.pk}/"))
    # session, user, round, payout totals (2), latest fidelity id, semantic screen (not cached); no results
    with django_assert_max_num_queries(8):
        second = body(client.get(f"/rounds/{r.pk}/"))
    assert figure(first, "values-chart") == figure(second, "values-chart")
    services.payout_approve(valuation_round=r, approved_by=staff_user)
    after = body(client.get(f"/rounds/{r.pk}/"))
    assert "draft — not approved yet" not in after and "Approve payouts" not in after
    assert after.count("<td>approved</td>") == 3


def test_a_payout_correction_shows_on_the_cached_round_page_at_once(done_round, staff_user):
    r, team = done_round
    client = client_for(staff_user)
    services.payout_approve(valuation_round=r, approved_by=staff_user)
    before = body(client.get(f"/rounds/{r.pk}/"))
    paid = {p.owner.user.username: p.amount for p in Payout.objects.active().filter(round=r)}
    first, second = team[0].user.username, team[2].user.username
    moved = {first: paid[first] - Decimal("7.00"), second: paid[second] + Decimal("7.00")}
    assert f"{moved[first]:.2f} USD" not in before
    ledger.payout_correct(valuation_round=r, amounts={k: str(v) for k, v in moved.items()}, reason="misattributed")
    after = body(client.get(f"/rounds/{r.pk}/"))
    assert f"{moved[first]:.2f} USD" in after and f"{moved[second]:.2f} USD" in after
    assert f"{paid[first]:.2f} USD" not in after


@pytest.mark.parametrize("n_owners", [3, 12])
def test_round_page_queries_do_not_grow_with_owners(eval_set, staff_user, n_owners,
                                                    django_assert_max_num_queries):
    from valuation.models import OwnerScreen, ScreenReport

    r = write_results(round_for(f"r{n_owners}", eval_set, owners(n_owners)), [0.01] * n_owners)
    report = ScreenReport.objects.create(round=r, status="done", config={"screen": {"pair_threshold": 0.95,
                                                                                     "share_threshold": 0.1}})
    OwnerScreen.objects.bulk_create(OwnerScreen(report=report, owner=p.owner, n_pairs=1, n_eval=0, n_owner=0,
                                                share_eval=0, share_owner=0, max_eval=0, max_owner=0)
                                    for p in r.participants.all())
    client = client_for(staff_user)
    # +1: latest fidelity report id in the cache key; +2: the semantic screen and its rows (not cached);
    # +1: the solo utilities v({i}) beside the training curves
    with django_assert_max_num_queries(15):
        response = client.get(f"/rounds/{r.pk}/")
    assert response.status_code == 200 and body(response).count("<td>draft</td>") == n_owners
    assert body(response).count("<td>no</td>") == n_owners  # one screen row per owner, none flagged


def test_a_large_rounds_owner_table_is_paged_and_its_charts_show_the_extremes(eval_set, staff_user):
    team = owners(130)
    r = write_results(round_for("r-large", eval_set, team, pool="1000.00"),
                      [0.001 * (i - 10) for i in range(130)], stderr=0.0005, coalition_rows=False)
    client = client_for(staff_user)
    first, second = body(client.get(f"/rounds/{r.pk}/")), body(client.get(f"/rounds/{r.pk}/?page=2"))
    assert first.count("<td>draft</td>") == 100 and second.count("<td>draft</td>") == 30
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert first.index("owner129") < first.index("owner100")  # highest value first
    values = figure(first, "values-chart")
    drawn = [name for trace in values["data"] if trace["type"] == "bar" for name in trace["y"]]
    assert len(drawn) == 60 and drawn[0] == "owner129" and drawn[-1] == "owner00"
    assert values["data"][0]["error_x"]["visible"] is True  # sampled: CI whiskers drawn
    assert "70 owners in the middle are not drawn" in values["layout"]["annotations"][0]["text"]
    assert "[0.11802, 0.11998]" in first  # owner129's CI: 0.119 ± 1.96 × 0.0005


# --- payouts CSV -------------------------------------------------------------------------

def test_payouts_csv_neutralises_formulas_and_keeps_numbers(eval_set, staff_user):
    evil = owner_create(username="evil", password=PASSWORD, display_name="=HYPERLINK(\"http://x\")")
    r = write_results(round_for("+round", eval_set, [evil, *owners(1)]), [-0.05, 0.1])
    rows = list(csv.reader(io.StringIO(body(client_for(staff_user).get(f"/rounds/{r.pk}/payouts.csv")))))
    assert rows[0] == ["round", "owner", "shapley", "share", "amount", "currency", "status"]
    by_owner = {row[1]: row for row in rows[1:]}
    assert by_owner["'=HYPERLINK(\"http://x\")"][0] == "'+round"
    assert by_owner["'=HYPERLINK(\"http://x\")"][2] == "-0.05"  # a negative number is not a formula
    assert by_owner["owner00"][4] == "100.00" and by_owner["owner00"][6] == "draft"


# --- owner pages and statements ------------------------------------------------------------

def test_my_payouts_draws_my_value_and_payout_in_every_round(eval_set):
    me, other = owners(2)
    for k in range(3):
        write_results(round_for(f"r{k}", eval_set, [me, other]), [0.1 * (k + 1), 0.3])
    write_results(round_for("not-mine", eval_set, [other]), [0.5])
    html = body(client_for(me.user).get("/rounds/my-payouts/"))
    history = figure(html, "history-chart")
    assert history["data"][0]["x"] == ["r0", "r1", "r2"]
    assert history["data"][0]["y"] == pytest.approx([0.1, 0.2, 0.3])
    assert history["data"][1]["y"] == pytest.approx([25.0, 40.0, 50.0])
    assert "not-mine" not in html and html.count("statement.csv") == 3


@pytest.mark.parametrize("n_rounds", [2, 10])
def test_my_payouts_queries_do_not_grow_with_rounds(eval_set, n_rounds, django_assert_max_num_queries):
    me, other = owners(2)
    for k in range(n_rounds):
        write_results(round_for(f"r{k}", eval_set, [me, other]), [0.1, 0.3])
    client = client_for(me.user)
    with django_assert_max_num_queries(6):
        assert client.get("/rounds/my-payouts/").status_code == 200


def test_an_owner_statement_shows_only_their_own_numbers_and_the_totals(done_round):
    r, (a, b, c) = done_round
    html = body(client_for(a.user).get(f"/rounds/{r.pk}/statement/"))
    assert "66.67 USD" in html and "0.200000" in html and "exact (every coalition evaluated)" in html
    assert "100.00 USD" in html and "<dd>3</dd>" in html  # totals: paid and owners in the round
    assert "owner01" not in html and "owner02" not in html and "33.33" not in html
    rows = list(csv.DictReader(io.StringIO(body(client_for(a.user).get(f"/rounds/{r.pk}/statement.csv")))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["round"], row["owner"], row["my_amount"], row["my_shapley"], row["exact"]) == (
        "r-done", "owner00", "66.67", "0.2", "True")
    assert (row["pool"], row["paid_in_round"], row["owners_in_round"], row["payout_status"]) == (
        "100.00", "100.00", "3", "draft")
    assert "owner01" not in json.dumps(rows)


def test_a_reward_round_statement_shows_the_owners_own_signature_only(done_round):
    r, (a, b, c) = done_round
    write_objective_values(r, {"helpfulness": [0.123456, -0.5, 0.7], "harmlessness": [0.25, 0.9, -0.3]},
                           payout={"harmlessness": 1.0})
    html = body(client_for(a.user).get(f"/rounds/{r.pk}/statement/"))
    assert "Your data signature" in html and "0.123456" in html and "0.250000" in html
    assert "-0.500000" not in html and "0.900000" not in html and "0.700000" not in html  # others' values
    assert "the payout uses harmlessness" in html


def test_an_owner_cannot_read_another_owners_statement(done_round):
    r, (a, b, c) = done_round
    client = client_for(a.user)
    assert client.get(f"/rounds/{r.pk}/statement/?owner=owner01").status_code == 404
    assert client.get(f"/rounds/{r.pk}/statement.csv?owner=owner01").status_code == 404
    assert client.get(f"/rounds/{r.pk}/statement/?owner=owner00").status_code == 200


def test_staff_choose_an_owner_and_read_any_statement(done_round, staff_user):
    r, (a, b, c) = done_round
    client = client_for(staff_user)
    chooser = body(client.get(f"/rounds/{r.pk}/statement/"))
    assert chooser.count("?owner=owner0") == 6  # three owners, HTML and CSV each
    html = body(client.get(f"/rounds/{r.pk}/statement/?owner=owner01"))
    assert "-0.050000 (negative" in html and "0.00 USD" in html
    assert client.get(f"/rounds/{r.pk}/statement.csv").status_code == 404  # whose? name one
    assert client.get(f"/rounds/{r.pk}/statement/?owner=nobody").status_code == 404


def test_a_statement_of_an_unfinished_round_says_so(eval_set):
    me = owners(1)[0]
    r = round_for("pending", eval_set, [me], status=ValuationRound.Status.SCORING)
    html = body(client_for(me.user).get(f"/rounds/{r.pk}/statement/"))
    assert "not computed yet" in html and "pending" in html


def test_statement_queries_are_constant(done_round, django_assert_max_num_queries):
    r, (a, b, c) = done_round
    client = client_for(a.user)
    with django_assert_max_num_queries(11):  # 11th: the owner's solo utility v({i}) beside their training curve
        assert client.get(f"/rounds/{r.pk}/statement/").status_code == 200


def test_approved_payouts_show_as_approved_on_the_statement(done_round, staff_user):
    r, (a, b, c) = done_round
    services.payout_approve(valuation_round=r, approved_by=staff_user)
    assert Payout.objects.filter(round=r, status=Payout.Status.APPROVED).count() == 3
    html = body(client_for(a.user).get(f"/rounds/{r.pk}/statement/"))
    assert "approved on" in html
    row = next(csv.DictReader(io.StringIO(body(client_for(a.user).get(f"/rounds/{r.pk}/statement.csv")))))
    assert row["payout_status"] == "approved" and row["approved_at"]


# --- static files, offline -------------------------------------------------------------------

def test_plotly_js_is_served_from_the_projects_static_files(client):
    response = client.get("/static/plotly/plotly.min.js")
    assert response.status_code == 200
    head = b"".join(response.streaming_content)[:400].decode("utf-8", "replace")
    assert "plotly.js" in head


def test_api_docs_use_no_cdn(client):
    html = body(client.get("/api/docs/"))
    assert "swagger-ui-dist" in html and "cdn." not in html.lower() and "https://" not in html
    assert client.get(re.search(r'src="([^"]*swagger-ui-bundle\.js)"', html).group(1)).status_code == 200


@pytest.mark.parametrize("currency, decimals, pool", [("KWD", 3, "100.000"), ("JPY", 0, "1000")])
def test_amounts_show_in_the_currencys_minor_unit_on_every_page_and_export(eval_set, staff_user, currency,
                                                                          decimals, pool):
    team = owners(3)
    r = round_for("r-money", eval_set, team, pool=pool)
    ValuationRound.objects.filter(pk=r.pk).update(currency=currency, decimals=decimals)
    r.refresh_from_db()
    r = write_results(r, [0.2, 0.1, 0.1])
    payouts = {p.owner_id: f"{p.amount.quantize(r.minor_unit)} {currency}" for p in Payout.objects.filter(round=r)}
    paid = list(payouts.values())
    client = client_for(staff_user)
    page = body(client.get(f"/rounds/{r.pk}/"))
    assert all(a in page for a in paid) and f"{Decimal(pool)} of {Decimal(pool)} {currency}" in page
    assert f"{Decimal(pool)} {currency}" in body(client.get("/rounds/"))
    assert f"{Decimal(pool)} {currency}" in body(client.get("/overview/"))
    statement = body(client_for(team[0].user).get(f"/rounds/{r.pk}/statement/"))
    assert f"<dd>{Decimal(pool)} {currency}</dd>" in statement and payouts[team[0].pk] in statement
    rows = list(csv.reader(io.StringIO(body(client.get(f"/rounds/{r.pk}/payouts.csv")))))
    amounts = [row[rows[0].index("amount")] for row in rows[1:]]
    assert sorted(amounts) == sorted(a.split()[0] for a in paid)
    assert all(len(a.partition(".")[2]) == decimals for a in amounts)
