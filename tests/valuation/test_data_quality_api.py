"""The data-quality results through the REST API: owners read their own pairs only, staff read
everything, request the stage, list clusters and download curated sets."""
import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from marketplace.services import owner_create
from valuation.models import DataQualityReport, PairCluster, PairValue
from tests.valuation.quality_fixtures import make_assessed_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def assessed(fake_model_dir):
    return make_assessed_round(fake_model_dir)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def all_pages(client, url):
    rows = []
    while url:
        body = client.get(url).json()
        rows += body["results"]
        url = body["next"]
    return rows


def test_an_owner_reads_only_their_own_pair_values(assessed):
    r, alice, bob = assessed["round"], assessed["alice"], assessed["bob"]
    mine = all_pages(client_for(alice.user), f"/api/rounds/{r.pk}/pair-values/")
    alice_ids = set(PairValue.objects.filter(owner=alice).values_list("pair_id", flat=True))
    assert {row["pair_id"] for row in mine} == alice_ids and len(mine) == 30
    # Naming another owner changes nothing for a non-staff user: still their own pairs.
    named = all_pages(client_for(alice.user), f"/api/rounds/{r.pk}/pair-values/?owner=bob")
    assert {row["pair_id"] for row in named} == alice_ids
    bobs = all_pages(client_for(bob.user), f"/api/rounds/{r.pk}/pair-values/")
    assert not {row["pair_id"] for row in bobs} & alice_ids and len(bobs) == 30
    assert [row["rank"] for row in bobs] == list(range(1, 31))  # lowest value first
    assert all(row["value"] <= nxt["value"] for row, nxt in zip(bobs, bobs[1:]))


def test_flagged_pairs_come_with_a_value_and_a_plain_reason(assessed):
    r, bob = assessed["round"], assessed["bob"]
    flagged = all_pages(client_for(bob.user), f"/api/rounds/{r.pk}/pair-values/?flagged=true")
    assert flagged and all(row["flagged"] and row["value"] < 0 for row in flagged)
    assert {row["pair_id"] for row in flagged} <= assessed["planted_ids"]
    assert len(flagged) >= 0.5 * len(assessed["planted_ids"])
    swapped = [row for row in flagged if row["reason"] == "reversed"]
    assert swapped and all("swapped" in row["reason_text"] for row in swapped)
    assert set(flagged[0]) >= {"prompt", "chosen", "rejected", "contribution", "row", "stderr", "n_chains"}
    assert not all_pages(client_for(assessed["alice"].user), f"/api/rounds/{r.pk}/pair-values/?flagged=true")


def test_staff_read_everyones_pairs_or_one_owners(assessed, api_staff):
    r = assessed["round"]
    assert len(all_pages(api_staff, f"/api/rounds/{r.pk}/pair-values/")) == 60
    bobs = all_pages(api_staff, f"/api/rounds/{r.pk}/pair-values/?owner=bob")
    assert len(bobs) == 30 and {row["pair_id"] for row in bobs} >= assessed["planted_ids"]
    assert api_staff.get(f"/api/rounds/{r.pk}/pair-values/?owner=nobody").status_code == 404


def test_a_non_participant_sees_nothing_of_the_round(assessed):
    outsider = owner_create(username="outsider")
    client = client_for(outsider.user)
    for path in ("pair-values/", "data-quality/", "clusters/", "curated/?size=3&method=qocs"):
        assert client.get(f"/api/rounds/{assessed['round'].pk}/{path}").status_code in (403, 404), path
    assert APIClient().get(f"/api/rounds/{assessed['round'].pk}/pair-values/").status_code in (401, 403)


def test_report_staff_see_the_owner_table_an_owner_only_their_summary(assessed, api_staff):
    r = assessed["round"]
    staff = api_staff.get(f"/api/rounds/{r.pk}/data-quality/").json()
    assert staff["status"] == "done" and staff["n_pairs"] == 60 and staff["config"]["values"]["chain_size"] == 20
    assert {o["username"] for o in staff["owners"]} == {"alice", "bob"}
    mine = client_for(assessed["bob"].user).get(f"/api/rounds/{r.pk}/data-quality/").json()
    assert "owners" not in mine and "n_pairs" not in mine and "config" not in mine
    assert mine["mine"]["n_pairs"] == 30 and mine["mine"]["flagged"] >= 1
    assert all(set(c) == {"cluster", "mine", "flagged", "my_mean", "value", "size"} for c in mine["mine"]["clusters"])


def test_clusters_are_for_staff_with_examples(assessed, api_staff):
    r = assessed["round"]
    assert client_for(assessed["alice"].user).get(f"/api/rounds/{r.pk}/clusters/").status_code == 403
    clusters = api_staff.get(f"/api/rounds/{r.pk}/clusters/").json()["clusters"]
    assert len(clusters) == 5 and sum(c["size"] for c in clusters) == 60
    assert [c["value"] for c in clusters] == sorted((c["value"] for c in clusters), reverse=True)
    assert all(1 <= len(c["examples"]) <= 3 and c["examples"][0].startswith("Question:") for c in clusters)
    report = DataQualityReport.objects.get(round=r)
    assert sum(c["value"] for c in clusters) == pytest.approx(sum(PairCluster.objects.filter(report=report)
                                                                  .values_list("value", flat=True)))


def test_staff_download_a_curated_set_in_the_upload_format(assessed, api_staff):
    r = assessed["round"]
    response = api_staff.get(f"/api/rounds/{r.pk}/curated/?size=12&method=qocs&seed=3")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/jsonl")
    assert "curated-qocs-12.jsonl" in response["Content-Disposition"]
    records = [json.loads(line) for line in response.content.decode().splitlines()]
    assert len(records) == 12 and all(set(rec) == {"prompt", "chosen", "rejected"} for rec in records)
    again = api_staff.get(f"/api/rounds/{r.pk}/curated/?size=12&method=qocs&seed=3")
    assert again.content == response.content  # same request, same set
    # QOCS took the highest-valued cluster first.
    best = r.data_quality_report.clusters.order_by("-value").first()
    best_prompts = set(PairValue.objects.filter(report=r.data_quality_report, cluster=best.index)
                       .values_list("pair__prompt", flat=True))
    assert len(best_prompts & {rec["prompt"] for rec in records}) == min(12, best.size)
    qwcs = api_staff.get(f"/api/rounds/{r.pk}/curated/?size=20&method=qwcs&tau=0.5")
    assert qwcs.status_code == 200 and len(qwcs.content.decode().splitlines()) == 20


@pytest.mark.parametrize("query, fragment", [("size=61&method=qocs", "1..60"), ("size=0&method=qocs", "size"),
                                             ("size=5&method=best", "method"), ("size=5&method=qwcs&tau=-1", "tau"),
                                             ("method=qocs", "size")])
def test_bad_curated_requests_get_400(assessed, api_staff, query, fragment):
    response = api_staff.get(f"/api/rounds/{assessed['round'].pk}/curated/?{query}")
    assert response.status_code == 400 and fragment in json.dumps(response.json())


def test_owners_cannot_download_curated_sets_or_request_the_stage(assessed):
    client = client_for(assessed["alice"].user)
    r = assessed["round"]
    assert client.get(f"/api/rounds/{r.pk}/curated/?size=5&method=qocs").status_code == 403
    assert client.post(f"/api/rounds/{r.pk}/data-quality/", {}, format="json").status_code == 403


def test_staff_request_the_stage_again_with_new_options(assessed, api_staff, django_capture_on_commit_callbacks):
    r = assessed["round"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        same = api_staff.post(f"/api/rounds/{r.pk}/data-quality/", {}, format="json")
    assert same.status_code == 202 and same.json()["status"] == "done" and not callbacks  # nothing to redo
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        redo = api_staff.post(f"/api/rounds/{r.pk}/data-quality/", {"options": {"chain_size": 10}}, format="json")
    assert redo.status_code == 202 and redo.json()["status"] == "queued" and len(callbacks) == 1
    assert redo.json()["config"]["values"]["chain_size"] == 10
    assert not PairValue.objects.filter(report__round=r).exists()  # old results are gone, not mixed with new
    bad = api_staff.post(f"/api/rounds/{r.pk}/data-quality/", {"options": {"chain_sise": 3}}, format="json")
    assert bad.status_code == 400 and "chain_sise" in bad.json()["detail"]


def test_rounds_opt_in_through_the_api(api_staff, assessed, fake_model_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        created = api_staff.post("/api/rounds/", {"name": "opt-in", "pool": "10.00", "eval_set": "dq-eval",
                                                  "base_model": str(fake_model_dir), "data_quality": True},
                                 format="json")
    assert created.status_code == 201 and created.json()["data_quality"] is True
    assert created.json()["config"]["data_quality"]["values"]["seed"] == 0
    bad = api_staff.post("/api/rounds/", {"name": "opt-in-2", "pool": "10.00", "eval_set": "dq-eval",
                                          "base_model": str(fake_model_dir), "data_quality_options": {"tau": 0}},
                         format="json")
    assert bad.status_code == 400 and "tau" in bad.json()["detail"]


def test_no_report_yet_is_a_clear_404(api_staff, fake_model_dir, assessed):
    r = assessed["round"]
    DataQualityReport.objects.filter(round=r).update(status=DataQualityReport.Status.RUNNING)
    assert api_staff.get(f"/api/rounds/{r.pk}/pair-values/").status_code == 404
    assert api_staff.get(f"/api/rounds/{r.pk}/data-quality/").json()["status"] == "running"
    DataQualityReport.objects.filter(round=r).delete()
    assert api_staff.get(f"/api/rounds/{r.pk}/data-quality/").status_code == 404


def test_staff_users_without_owner_profiles_are_not_owners(assessed):
    viewer = get_user_model().objects.create_user(username="viewer")
    assert client_for(viewer).get(f"/api/rounds/{assessed['round'].pk}/pair-values/").status_code == 404
