"""The staff overview, the owner's contribution list, and the CSV helper every download uses."""
import io
import json
import re
from decimal import Decimal

import pytest
from django.test import Client

from config.csv_export import safe_cell
from marketplace.parsing import UploadRefused
from marketplace.services import contribution_create, eval_set_create, owner_create
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs
from tests.dashboards import round_for, write_results
from valuation import services as valuation_services

pytestmark = pytest.mark.django_db


def figure(html: str, chart_id: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', html, re.S)
    assert match, f"no {chart_id} in the page"
    return json.loads(match.group(1))


def build_market(n_owners: int, n_rounds: int, staff_user):
    team = [owner_create(username=f"o{i:03d}", password=PASSWORD) for i in range(n_owners)]
    for i, owner in enumerate(team):
        contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(make_pairs(i + 1, tag=f"o{i}"))),
                            filename="pairs.jsonl")
    with pytest.raises(UploadRefused):
        contribution_create(owner=team[0], file=io.BytesIO(b'{"prompt": "x", "chosen": "", "rejected": "y"}\n'),
                            filename="bad.jsonl")
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(3, tag="eval"))),
                               filename="heldout.jsonl")
    for k in range(n_rounds):
        r = write_results(round_for(f"round-{k}", eval_set, team), [float(i + 1) for i in range(n_owners)])
        if k == 0:
            valuation_services.payout_approve(valuation_round=r, approved_by=staff_user)
    return team


def staff_client(staff_user) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


def test_overview_totals_charts_and_owner_table(staff_user):
    build_market(3, 2, staff_user)
    html = staff_client(staff_user).get("/overview/").content.decode()
    totals = re.search(r'<ul class="stats" id="overview-totals">(.*?)</ul>', html, re.S).group(1)
    assert re.findall(r"<strong>(\d+)</strong>", totals) == ["3", "6", "3", "1", "2"]  # owners, pairs, up, refused, rounds
    assert "2 done" in totals
    rounds = figure(html, "rounds-chart")
    assert rounds["data"][0]["text"] == ["round-0", "round-1"] and rounds["data"][0]["y"] == [100.0, 100.0]
    paid = figure(html, "paid-chart")
    # Pool 100 split 1:2:3 per round; round-0 approved, round-1 pending.
    assert paid["data"][0]["y"] == ["o002", "o001", "o000"]
    assert paid["data"][0]["x"] == [50.0, 33.33, 16.67] and paid["data"][1]["x"] == [50.0, 33.33, 16.67]
    assert paid["layout"]["xaxis"]["title"]["text"] == "total across rounds (USD)"
    row = re.search(r"<tr><td>o000</td>(.*?)</tr>", html, re.S).group(1)
    cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)
    # pairs, uploads accepted / refused, copies refused (exact / near / eval), rounds, approved, pending
    assert cells == ["1", "1", "1", "0 / 0 / 0", "2", "16.67 USD", "16.67 USD"]


@pytest.mark.parametrize("n_owners, n_rounds", [(2, 1), (8, 4)])
def test_overview_queries_do_not_grow_with_owners_or_rounds(staff_user, n_owners, n_rounds,
                                                            django_assert_max_num_queries):
    build_market(n_owners, n_rounds, staff_user)
    client = staff_client(staff_user)
    with django_assert_max_num_queries(16):  # session, user, nav, 4 for the version, 9 for the numbers
        assert client.get("/overview/").status_code == 200
    with django_assert_max_num_queries(7):  # warm: the version says nothing changed
        assert client.get("/overview/").status_code == 200


def test_overview_is_redrawn_when_something_changes(staff_user):
    team = build_market(2, 1, staff_user)
    client = staff_client(staff_user)
    assert re.findall(r"<strong>(\d+)</strong>", client.get("/overview/").content.decode())[:2] == ["2", "3"]
    contribution_create(owner=team[0], file=io.BytesIO(jsonl_bytes(make_pairs(4, tag="more"))), filename="m.jsonl")
    owner_create(username="newcomer", password=PASSWORD)
    html = client.get("/overview/").content.decode()
    assert re.findall(r"<strong>(\d+)</strong>", html)[:3] == ["3", "7", "3"] and "newcomer" in html


@pytest.mark.parametrize("role, expected", [("anon", 302), ("owner", 302), ("staff", 200)])
def test_overview_is_staff_only(role, expected, staff_user, owner_a):
    client = Client()
    if role != "anon":
        client.force_login(staff_user if role == "staff" else owner_a.user)
    response = client.get("/overview/")
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith("/admin/login/")


def test_overview_of_an_empty_marketplace(staff_user):
    html = staff_client(staff_user).get("/overview/").content.decode()
    assert "No rounds yet." in html and "Nothing paid yet." in html and "No owners yet." in html


def test_contribution_list_shows_the_first_refusal_reason(owner_a):
    with pytest.raises(UploadRefused):
        contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(
            make_pairs(1) + [{"prompt": "p", "chosen": "", "rejected": "r"}, {"prompt": "q", "chosen": "same",
                                                                            "rejected": "same"}])),
            filename="bad.jsonl")
    client = Client()
    client.force_login(owner_a.user)
    html = client.get("/contributions/").content.decode()
    reason = re.search(r'<span class="reason">(.*?)</span>', html, re.S).group(1)
    assert reason.startswith("row 2, chosen:") and "all reasons" in html


@pytest.mark.parametrize("value, expected", [
    ("=SUM(A1)", "'=SUM(A1)"), ("+1", "'+1"), ("-x", "'-x"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("alice", "alice"), ("", ""), (None, ""), (-0.5, -0.5), (Decimal("-1.00"), Decimal("-1.00")), (3, 3),
])
def test_safe_cell_neutralises_formula_text_only(value, expected):
    assert safe_cell(value) == expected
