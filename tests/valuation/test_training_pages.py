"""Each owner's training log drawn beside their solo utility: staff see every owner on the round page and in
the API; an owner sees only their own, on their statement and in the API."""
import io
import json
import re

import pytest
from django.test import Client

from marketplace.services import eval_set_create, owner_create
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs
from tests.dashboards import round_for, write_results
from valuation.models import OwnerModel, RoundOwner

pytestmark = pytest.mark.django_db


def log(losses):
    return {"every": 1, "steps": [{"step": k + 1, "epoch": (k + 1) / len(losses), "loss": loss,
                                   "rewards/accuracies": 0.5 + 0.1 * k, "rewards/margins": 0.2 * k}
                                  for k, loss in enumerate(losses)]}


@pytest.fixture
def trained_round():
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(4, tag="eval"))),
                               filename="heldout.jsonl")
    team = [owner_create(username=f"owner{i}", password=PASSWORD) for i in range(2)]
    r = round_for("r-trained", eval_set, team)
    for index, losses in enumerate(([0.69, 0.5, 0.3], [0.69, 0.68, 0.67])):
        model = OwnerModel.objects.create(cache_key=f"k{index}", base_model_hash="b", data_hash="d", config_hash="c",
                                          artifact_path="/x", model_hash=f"m{index}", seconds=3.0 + index,
                                          metrics={"log": log(losses), "tokens": 1000 * (index + 1)})
        RoundOwner.objects.filter(round=r, index=index).update(owner_model=model)
    return write_results(r, [0.2, 0.05]), team  # additive from v(∅) = 0.5: v({0}) = 0.7, v({1}) = 0.55


def figure(html: str, chart_id: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', html, re.S)
    assert match, f"no {chart_id} in the page"
    return json.loads(match.group(1))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_staff_see_every_owners_curves_and_solo_utility(trained_round, staff_user):
    r, team = trained_round
    html = client_for(staff_user).get(f"/rounds/{r.pk}/").content.decode()
    loss = figure(html, "training-loss")["data"]
    assert [line["name"] for line in loss] == ["owner0", "owner1"]
    assert loss[0]["x"] == [1, 2, 3] and loss[0]["y"] == [0.69, 0.5, 0.3] and loss[1]["y"] == [0.69, 0.68, 0.67]
    assert figure(html, "training-rewards-accuracies")["data"][0]["y"] == pytest.approx([0.5, 0.6, 0.7])
    assert figure(html, "training-rewards-margins")["data"][1]["y"] == pytest.approx([0.0, 0.2, 0.4])
    table = html[html.index('id="training-table"'):]
    assert "0.6900 → 0.3000" in table and "0.6900 → 0.6700" in table and "1000" in table
    assert "<td class=\"num\">0.70000</td>" in table and "<td class=\"num\">0.55000</td>" in table  # v({0}), v({1})
    assert "v(∅) = 0.50000" in table


def test_an_owner_sees_only_their_own_curve(trained_round):
    r, team = trained_round
    owner = client_for(team[1].user)
    assert owner.get(f"/rounds/{r.pk}/").status_code == 302  # the round page is staff only, as before
    html = owner.get(f"/rounds/{r.pk}/statement/").content.decode()
    loss = figure(html, "training-loss")["data"]
    assert [line["name"] for line in loss] == ["owner1"] and loss[0]["y"] == [0.69, 0.68, 0.67]
    assert "owner0" not in html and "0.55000" in html and "0.70000" not in html  # their own solo utility only


def test_the_round_api_shows_staff_every_log_and_an_owner_their_own(trained_round, staff_user):
    r, team = trained_round
    staff = client_for(staff_user).get(f"/api/rounds/{r.pk}/").json()["training"]
    assert [row["owner"] for row in staff] == ["owner0", "owner1"]
    assert staff[0]["steps"][2]["loss"] == 0.3 and staff[0]["solo"] == pytest.approx(0.7) and staff[1]["tokens"] == 2000
    mine = client_for(team[0].user).get(f"/api/rounds/{r.pk}/").json()["training"]
    assert [row["owner"] for row in mine] == ["owner0"]


def test_no_training_section_before_any_model_is_trained(staff_user):
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(4, tag="eval"))),
                               filename="heldout.jsonl")
    r = round_for("r-new", eval_set, [owner_create(username="fresh", password=PASSWORD)])
    html = client_for(staff_user).get(f"/rounds/{r.pk}/").content.decode()
    assert 'id="training"' not in html and "training-loss" not in html


def test_a_model_without_log_says_so(trained_round, staff_user):
    r, team = trained_round
    OwnerModel.objects.filter(cache_key="k1").update(metrics={})
    html = client_for(staff_user).get(f"/rounds/{r.pk}/").content.decode()
    assert "no training log recorded" in html
    assert [line["name"] for line in figure(html, "training-loss")["data"]] == ["owner0"]
