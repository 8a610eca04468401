"""Pages of the data-quality stage: an owner's own pairs, the staff report, curated downloads."""
import csv
import io
import json

import pytest
from django.test import Client

from marketplace.services import owner_create
from valuation.models import DataQualityReport, PairValue, ValuationRound
from tests.valuation.quality_fixtures import make_assessed_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def assessed(fake_model_dir):
    return make_assessed_round(fake_model_dir)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_owner_sees_their_flagged_pairs_with_reasons_and_nobody_elses(assessed):
    r, bob, alice = assessed["round"], assessed["bob"], assessed["alice"]
    page = client_for(bob.user).get(f"/rounds/{r.pk}/my-pairs/")
    assert page.status_code == 200
    html = page.content.decode()
    flagged = PairValue.objects.filter(owner=bob, flagged=True).select_related("pair")
    assert flagged.exists() and f"Flagged pairs ({flagged.count()})" in html
    for row in flagged:
        assert row.pair.chosen.strip() in html
    assert "look swapped" in html and 'id="pair-value-chart"' in html
    for prompt in PairValue.objects.filter(owner=alice).values_list("pair__prompt", flat=True):
        assert prompt not in html  # not one of alice's prompts
    assert client_for(bob.user).get(f"/rounds/{r.pk}/my-pairs/?owner=alice").status_code == 404
    assert "None of your pairs is flagged." in client_for(alice.user).get(f"/rounds/{r.pk}/my-pairs/").content.decode()


def test_an_owners_csv_holds_every_value_of_theirs_only(assessed):
    r, bob = assessed["round"], assessed["bob"]
    response = client_for(bob.user).get(f"/rounds/{r.pk}/my-pairs.csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 30 and {int(row["row"]) for row in rows} == set(range(1, 31))
    assert sum(row["flagged"] == "True" for row in rows) == PairValue.objects.filter(owner=bob, flagged=True).count()
    assert client_for(bob.user).get(f"/rounds/{r.pk}/my-pairs.csv?owner=alice").status_code == 404


def test_outsiders_get_404_and_staff_pick_any_owner(assessed, staff_user):
    outsider = owner_create(username="outsider")
    assert client_for(outsider.user).get(f"/rounds/{assessed['round'].pk}/my-pairs/").status_code == 404
    assert client_for(outsider.user).get(f"/rounds/{assessed['round'].pk}/data-quality/").status_code == 302
    staff = client_for(staff_user)
    assert staff.get(f"/rounds/{assessed['round'].pk}/my-pairs/?owner=bob").status_code == 200
    assert staff.get(f"/rounds/{assessed['round'].pk}/my-pairs/").status_code == 404  # staff must name an owner


def test_staff_report_page_shows_owners_clusters_with_examples_and_a_download_form(assessed, staff_user):
    r = assessed["round"]
    html = client_for(staff_user).get(f"/rounds/{r.pk}/data-quality/").content.decode()
    assert 'id="cluster-chart"' in html and 'id="dq-download"' in html and "Run again" in html
    for c in r.data_quality_report.clusters.all():
        assert c.examples[0] in html
    assert "?owner=bob" in html
    detail = client_for(staff_user).get(f"/rounds/{r.pk}/").content.decode()
    assert f"/rounds/{r.pk}/data-quality/" in detail


def test_curated_download_from_the_page_and_its_errors(assessed, staff_user):
    r, staff = assessed["round"], client_for(staff_user)
    response = staff.get(f"/rounds/{r.pk}/curated.jsonl?size=9&method=qwcs&tau=1&seed=0")
    assert response.status_code == 200
    assert len([json.loads(line) for line in response.content.decode().splitlines()]) == 9
    bad = staff.get(f"/rounds/{r.pk}/curated.jsonl?size=999&method=qocs", follow=True)
    assert "1..60" in bad.content.decode()
    assert client_for(assessed["bob"].user).get(f"/rounds/{r.pk}/curated.jsonl?size=3&method=qocs").status_code == 302


def test_statement_links_to_the_owners_pairs(assessed):
    html = client_for(assessed["bob"].user).get(f"/rounds/{assessed['round'].pk}/statement/").content.decode()
    assert 'id="statement-pairs"' in html


def test_the_run_button_queues_the_stage(assessed, staff_user, django_capture_on_commit_callbacks):
    r = assessed["round"]
    DataQualityReport.objects.filter(round=r).update(status=DataQualityReport.Status.FAILED, error="boom")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(staff_user).post(f"/rounds/{r.pk}/data-quality/run/")
    assert response.status_code == 302 and len(callbacks) == 1
    assert DataQualityReport.objects.get(round=r).status == DataQualityReport.Status.QUEUED


def test_the_round_form_opts_in(staff_user, assessed, fake_model_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(staff_user).post("/rounds/new/", {
            "name": "form-opt-in", "pool": "10.00", "currency": "USD", "eval_set": "dq-eval",
            "base_model": str(fake_model_dir), "utility": "preference_accuracy", "composition": "sum",
            "estimator": "auto", "seed": 0, "data_quality": "on"})
    assert response.status_code == 302
    created = ValuationRound.objects.get(name="form-opt-in")
    assert created.data_quality and created.config["data_quality"]["flag_z"] == pytest.approx(1.645)


def test_a_round_without_a_report_offers_to_run_it(assessed, staff_user):
    r = assessed["round"]
    DataQualityReport.objects.filter(round=r).delete()
    html = client_for(staff_user).get(f"/rounds/{r.pk}/data-quality/").content.decode()
    assert 'id="dq-state">not run' in html and "Run the data-quality stage" in html and 'id="dq-download"' not in html
    assert client_for(assessed["bob"].user).get(f"/rounds/{r.pk}/my-pairs/").status_code == 404
