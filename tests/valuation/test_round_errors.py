"""A failed round's recorded error (a traceback, paths, other owners' names) is for staff: an owner reads
a plain line wherever the failure shows — the round API (list and detail), the statement page, the
data-quality and fidelity endpoints."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

from valuation import services
from valuation.engine import synthetic
from valuation.models import DataQualityReport, FidelityReport
from valuation.selectors import OWNER_FAILURE_MESSAGE
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db
SECRET = "CUDA out of memory in /srv/artifacts/owner_models/4f2a while training bob"


def traceback_of(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


@pytest.fixture
def failed(fake_model_dir):
    alice = add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    add_owner("bob", synthetic.owner_pairs("clean_harmless", 6, 2))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(6, 0))
    r = services.round_create(name="doomed", pool="10.00", eval_set=eval_set, base_model_dir=str(fake_model_dir),
                              data_quality=True)
    services.round_fail(round_id=r.pk, exc=traceback_of(SECRET))
    r.refresh_from_db()
    assert r.status == "failed" and "Traceback" in r.error and SECRET in r.error
    return r, alice


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def web_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_owner_reads_a_plain_line_in_the_round_api(failed):
    r, alice = failed
    client = api_as(alice.user)
    detail = client.get(f"/api/rounds/{r.pk}/").json()
    listed = client.get("/api/rounds/").json()["results"]
    for body in (detail, listed[0]):
        assert body["status"] == "failed" and body["error"] == OWNER_FAILURE_MESSAGE
    assert SECRET not in str(detail) + str(listed) and "Traceback" not in str(detail) + str(listed)


def test_staff_read_the_full_error_in_the_round_api(failed, api_staff):
    r, _ = failed
    assert "Traceback" in api_staff.get(f"/api/rounds/{r.pk}/").json()["error"]
    assert SECRET in api_staff.get("/api/rounds/").json()["results"][0]["error"]


def test_the_statement_page_tells_an_owner_plainly_and_staff_in_full(failed, staff_user):
    r, alice = failed
    page = web_as(alice.user).get(f"/rounds/{r.pk}/statement/").content.decode()
    assert OWNER_FAILURE_MESSAGE in page and SECRET not in page and "Traceback" not in page
    page = web_as(staff_user).get(f"/rounds/{r.pk}/statement/?owner=alice").content.decode()
    assert SECRET in page


def test_a_round_that_did_not_fail_shows_no_failure(fake_model_dir):
    alice = add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    r = services.round_create(name="fine", pool="10.00", eval_set=add_eval_set("eval", synthetic.eval_pairs(6, 0)),
                              base_model_dir=str(fake_model_dir))
    assert api_as(alice.user).get(f"/api/rounds/{r.pk}/").json()["error"] == ""
    assert OWNER_FAILURE_MESSAGE not in web_as(alice.user).get(f"/rounds/{r.pk}/statement/").content.decode()


def test_failed_data_quality_and_fidelity_errors_stay_with_staff(failed, api_staff):
    r, alice = failed
    error = f"RuntimeError: {SECRET}\n\nTraceback (most recent call last): ..."
    DataQualityReport.objects.create(round=r, config={}, status=DataQualityReport.Status.FAILED, error=error)
    FidelityReport.objects.create(round=r, n_coalitions=4, status=FidelityReport.Status.FAILED, error=error)
    client = api_as(alice.user)
    quality = client.get(f"/api/rounds/{r.pk}/data-quality/")
    assert quality.status_code == 200 and "error" not in quality.json() and SECRET not in quality.content.decode()
    assert client.get(f"/api/rounds/{r.pk}/fidelity/").status_code == 404  # an owner sees finished checks only
    assert web_as(alice.user).get(f"/rounds/{r.pk}/data-quality/").status_code == 302  # the staff page
    assert SECRET in api_staff.get(f"/api/rounds/{r.pk}/data-quality/").json()["error"]
    assert SECRET in api_staff.get(f"/api/rounds/{r.pk}/fidelity/").json()["error"]
