"""Creating and starting rounds through the REST API and the web form (no training: the
Celery task is queued in memory, not run)."""
import pytest

from valuation.engine import synthetic
from valuation.models import ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def market():
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 8, 1))
    return add_eval_set("eval", synthetic.eval_pairs(6, 0))


def payload(model_dir, **overrides):
    data = {"name": "api-round", "pool": "250.00", "eval_set": "eval", "base_model": str(model_dir)}
    data.update(overrides)
    return data


def test_staff_creates_and_queues_a_round(api_staff, market, fake_model_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = api_staff.post("/api/rounds/", payload(fake_model_dir, utility="bt_loglik", seed=5), format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["status"] == "queued" and body["utility"] == "bt_loglik" and body["seed"] == 5
    assert body["n_owners"] == 1 and body["pool"] == "250.0000"
    assert (body["currency"], body["decimals"]) == ("USD", 2)
    assert len(callbacks) == 1  # the Celery task is sent only after the transaction commits
    detail = api_staff.get(f"/api/rounds/{body['id']}/").json()
    assert detail["progress"] == {s: {"done": 0, "total": 0} for s in ("training", "scoring", "valuing")}


@pytest.mark.parametrize("overrides, status, fragment", [
    ({"pool": "-5"}, 400, "pool"),
    ({"eval_set": "nope"}, 400, "eval_set"),
    ({"utility": "vibes"}, 400, "utility"),
    ({"estimator": "exact", "budget": 1}, 400, "needs 2^1 = 2 utility evaluations"),
    ({"budget": 0}, 400, "budget"),
    ({"base_model": "/does/not/exist"}, 400, "no registered base model '/does/not/exist'"),
    ({"base_model": "nope"}, 400, "no registered base model 'nope' (registered: fake)"),
    ({"training": {"epochz": 1}}, 400, "unknown training option"),
    ({"training": {"batch_size": 0}}, 400, "training option 'batch_size': must be between 1 and 4,096, got 0"),
    ({"training": {"epochs": "four"}}, 400, "training option 'epochs': must be an integer"),
    ({"training": {"learning_rate": -1}}, 400, "training option 'learning_rate'"),
    ({"training": {"loss_types": ["sigmoid", "nope"], "loss_weights": [1, 1]}}, 400, "unknown loss 'nope'"),
    ({"utility": "reward", "objectives": ["helpfulness"], "decoding": {"temperature": "hot"}}, 400,
     "decoding temperature must be a number"),
    ({"utility": "reward", "objectives": ["helpfulness"], "decoding": {"greedy": "yes"}}, 400,
     "decoding greedy must be true or false"),
    ({"utility": "reward", "objectives": ["helpfulness"], "decoding": {"max_new_tokens": 0}}, 400,
     "decoding max_new_tokens must be a positive integer"),
    ({"pool": "99999999999999.99"}, 400, "over the largest amount that can be stored exactly"),
    ({"pool": "12345678901234.57"}, 400, "over the largest amount that can be stored exactly"),
    ({"pool": "1234567890123456789"}, 400, "pool"),
    ({"pool": "10.5", "currency": "JPY"}, 400, "more than 0 decimal places"),
    ({"currency": "<b>"}, 400, "not an ISO 4217 currency code"),
])
def test_bad_round_requests_get_400_and_write_nothing(api_staff, market, fake_model_dir, overrides, status,
                                                      fragment):
    r = api_staff.post("/api/rounds/", payload(fake_model_dir, **overrides), format="json")
    assert r.status_code == status
    assert fragment in str(r.json())
    assert ValuationRound.objects.count() == 0


def test_owner_cannot_create_rounds(api_a, market, fake_model_dir):
    r = api_a.post("/api/rounds/", payload(fake_model_dir), format="json")
    assert r.status_code == 403 and ValuationRound.objects.count() == 0


def test_web_form_creates_round_and_shows_errors(client, staff_user, market, fake_model_dir):
    client.force_login(staff_user)
    bad = client.post("/rounds/new/", {**payload(fake_model_dir, base_model="/nowhere"), "currency": "USD",
                                      "utility": "preference_accuracy", "composition": "sum",
                                      "estimator": "auto", "seed": 0})
    assert bad.status_code == 400 and b"no registered base model" in bad.content
    ok = client.post("/rounds/new/", {**payload(fake_model_dir), "currency": "USD", "utility": "preference_accuracy",
                                     "composition": "sum", "estimator": "auto", "seed": 0})
    assert ok.status_code == 302
    created = ValuationRound.objects.get()
    assert created.status == "queued" and ok["Location"] == f"/rounds/{created.pk}/"
    page = client.get(ok["Location"])
    assert page.status_code == 200 and b"alice" in page.content and b"queued" in page.content


@pytest.mark.parametrize("pool, currency, says", [
    ("99999999999999.99", "USD", "over the largest amount that can be stored exactly, 9,999,999,999,999.99 USD"),
    ("12345678901234.57", "USD", "over the largest amount"),
    ("10.5", "JPY", "more than 0 decimal places"),
    ("100", "<b>", "Select a valid choice"),
])
def test_the_web_form_refuses_pools_and_currencies_that_cannot_be_paid_exactly(client, staff_user, market,
                                                                              fake_model_dir, pool, currency, says):
    client.force_login(staff_user)
    form = {**payload(fake_model_dir, pool=pool), "currency": currency,
            "utility": "preference_accuracy", "composition": "sum", "estimator": "auto", "seed": 0}
    response = client.post("/rounds/new/", form)
    assert response.status_code == 400 and says in response.content.decode()
    assert ValuationRound.objects.count() == 0


def test_a_yen_round_is_created_in_whole_yen_and_shown_so(client, staff_user, market, fake_model_dir):
    client.force_login(staff_user)
    ok = client.post("/rounds/new/", {**payload(fake_model_dir, pool="1000"), "currency": "JPY",
                                     "utility": "preference_accuracy", "composition": "sum", "estimator": "auto",
                                     "seed": 0})
    assert ok.status_code == 302
    created = ValuationRound.objects.get()
    assert (created.currency, created.decimals) == ("JPY", 0)
    assert "<dd>1000 JPY</dd>" in client.get(ok["Location"]).content.decode()


def test_a_dinar_round_through_the_api_takes_three_decimals(api_staff, market, fake_model_dir):
    r = api_staff.post("/api/rounds/", payload(fake_model_dir, pool="12.345", currency="kwd"), format="json")
    assert r.status_code == 201, r.json()
    assert (r.json()["currency"], r.json()["decimals"], r.json()["pool"]) == ("KWD", 3, "12.3450")
