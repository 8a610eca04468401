"""Who may do what, case by case: uploads, deletes, approvals, scoped lists and bodies, statements chosen
by query string, authentication. Each asserts the status code and that no other owner's username, file
name, prompt, value or payout appears in the body. Rounds are built directly with the ORM.

The exhaustive part — every URL pattern from the resolver × role × method — is
tests/config/test_isolation_matrix.py.
"""
import io
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from marketplace.models import Contribution, EvalSet, PreferencePair
from marketplace.parsing import UploadRefused
from marketplace.services import contribution_create, eval_set_create
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs, upload
from valuation.models import OwnerValue, Payout, RoundOwner, ValuationRound

ROLES = ("anon", "a", "b", "staff")
# What each owner must never see of the other (A's values/payouts are deliberately distinctive numbers).
A_SECRETS = ("owner_a", "alpha_secret.jsonl", "alpha_free.jsonl", "alpha_refused.jsonl", "alphasecret",
             "0.314159", "31.4159", "31.42", "alpha-only-round")
B_SECRETS = ("owner_b", "bravo_secret.jsonl", "bravosecret", "0.577215", "68.5841", "68.58")
FORBIDDEN = {"anon": A_SECRETS + B_SECRETS, "a": B_SECRETS, "b": A_SECRETS, "staff": ()}


@dataclass
class World:
    a_used: Contribution  # used by round-one: cannot be deleted
    a_free: Contribution  # used by no round
    b_used: Contribution
    round: ValuationRound  # A and B took part
    a_round: ValuationRound  # only A took part
    eval_set: EvalSet


def _contribute(owner, name: str, records) -> Contribution:
    return contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(records)), filename=name)


def _round(name: str, eval_set: EvalSet, status: str) -> ValuationRound:
    return ValuationRound.objects.create(
        name=name, eval_set=eval_set, eval_set_hash=eval_set.sha256, base_model_path="/models/tiny",
        base_model_hash="0" * 64, pool=Decimal("100"), status=status)


def _take_part(valuation_round, owner, index: int, contribution, *, value: float | None = None,
               amount: str | None = None) -> None:
    participation = RoundOwner.objects.create(round=valuation_round, owner=owner, index=index,
                                              n_pairs=contribution.n_pairs, data_hash=f"{index}" * 64)
    participation.contributions.add(contribution)
    if value is not None:
        OwnerValue.objects.create(round=valuation_round, owner=owner, shapley=value, stderr=0.0,
                                  ci_low=value, ci_high=value)
        Payout.objects.create(round=valuation_round, owner=owner, amount=Decimal(amount),
                              share=Decimal(amount) / 100, currency="USD")


@pytest.fixture
def world(owner_a, owner_b, staff_user) -> World:
    a_used = _contribute(owner_a, "alpha_secret.jsonl", make_pairs(3, tag="alphasecret"))
    a_free = _contribute(owner_a, "alpha_free.jsonl", make_pairs(2, tag="alphasecret-free"))
    with pytest.raises(UploadRefused):
        _contribute(owner_a, "alpha_refused.jsonl", [{"prompt": "alphasecret", "chosen": "", "rejected": "x"}])
    b_used = _contribute(owner_b, "bravo_secret.jsonl", make_pairs(3, tag="bravosecret"))
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(4, tag="eval"))),
                               filename="heldout.jsonl", created_by=staff_user)
    both = _round("round-one", eval_set, ValuationRound.Status.DONE)
    _take_part(both, owner_a, 0, a_used, value=0.314159, amount="31.4159")
    _take_part(both, owner_b, 1, b_used, value=0.577215, amount="68.5841")
    a_only = _round("alpha-only-round", eval_set, ValuationRound.Status.DRAFT)
    _take_part(a_only, owner_a, 0, a_used)
    return World(a_used, a_free, b_used, both, a_only, eval_set)


def _user(role, owner_a, owner_b, staff_user):
    return {"anon": None, "a": owner_a.user, "b": owner_b.user, "staff": staff_user}[role]


@pytest.fixture
def web(owner_a, owner_b, staff_user):
    def client_for(role: str) -> Client:
        client = Client()
        user = _user(role, owner_a, owner_b, staff_user)
        if user is not None:
            client.force_login(user)
        return client
    return client_for


@pytest.fixture
def api(owner_a, owner_b, staff_user):
    """API clients that authenticate the way a script does: POST /api/auth/token/, then a Token header."""
    def client_for(role: str) -> APIClient:
        client = APIClient()
        user = _user(role, owner_a, owner_b, staff_user)
        if user is not None:
            response = client.post("/api/auth/token/", {"username": user.username, "password": PASSWORD})
            assert response.status_code == 200, response.content
            client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
        return client
    return client_for


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8")
    return response.content.decode("utf-8")


def assert_no_foreign_data(role: str, body: str) -> None:
    leaked = [s for s in FORBIDDEN[role] if s in body]
    assert not leaked, f"{role} saw {leaked}"


# Expected per role: a status code, or (302, where the redirect must point).
LOGIN = (302, "/login/?next=")
ADMIN_LOGIN = (302, "/admin/login/?next=")
OWN_PAGE = {"anon": LOGIN, "a": 200, "b": 404, "staff": 200}  # A's object; B gets a 404, not a 403

# Every URL pattern × role × method (status, leaks, 404-not-403, no writes) is in
# tests/config/test_isolation_matrix.py, enumerated from the resolver. What it cannot enumerate are query
# strings: whose statement a page shows is chosen by ?owner=.
STATEMENT_QUERIES = [
    ("statement-of-a", "/rounds/{round}/statement/?owner=owner_a", OWN_PAGE),
    ("statement-csv-of-a", "/rounds/{round}/statement.csv?owner=owner_a", OWN_PAGE),
    ("statement-of-b-for-staff", "/rounds/{round}/statement/?owner=owner_b", {"anon": LOGIN, "a": 404, "b": 200,
                                                                              "staff": 200}),
    ("a-round-statement", "/rounds/{a_round}/statement/", OWN_PAGE),
    ("a-round-statement-csv", "/rounds/{a_round}/statement.csv", {"anon": LOGIN, "a": 200, "b": 404,
                                                                   "staff": 404}),
    ("missing-round", "/api/rounds/999999/", {"anon": 401, "a": 404, "b": 404, "staff": 404}),
]


def _path(template: str, world: World) -> str:
    return template.format(a_used=world.a_used.pk, a_free=world.a_free.pk, b_used=world.b_used.pk,
                           round=world.round.pk, a_round=world.a_round.pk)


def assert_status(response, expected) -> None:
    code, where = (expected, None) if isinstance(expected, int) else expected
    assert response.status_code == code, (response.status_code, body_of(response)[:300])
    if where is not None:
        assert response["Location"].startswith(where), response["Location"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name, template, expected", STATEMENT_QUERIES, ids=[q[0] for q in STATEMENT_QUERIES])
def test_statement_queries(name, template, expected, role, world, web, api):
    client = api(role) if template.startswith("/api/") else web(role)
    response = client.get(_path(template, world))
    assert_status(response, expected[role])
    assert_no_foreign_data(role, body_of(response))


@pytest.mark.parametrize("role, expected", [("anon", 401), ("a", 201), ("b", 201), ("staff", 403)])
def test_api_upload_access(role, expected, world, api):
    data = jsonl_bytes(make_pairs(2, tag=f"fresh-{role}"))
    response = api(role).post("/api/contributions/", {"file": upload("fresh.jsonl", data)}, format="multipart")
    assert response.status_code == expected
    assert_no_foreign_data(role, body_of(response))
    assert PreferencePair.objects.filter(prompt__startswith="fresh").count() == (2 if expected == 201 else 0)
    if expected == 201:
        assert response.json()["owner"] == {"a": "owner_a", "b": "owner_b"}[role]


@pytest.mark.parametrize("role, expected", [("anon", 401), ("a", 403), ("b", 403), ("staff", 201)])
def test_api_eval_set_upload_access(role, expected, world, api):
    data = jsonl_bytes(make_pairs(2, tag="new-eval"))
    response = api(role).post("/api/eval-sets/", {"name": "new-eval", "file": upload("e.jsonl", data)},
                              format="multipart")
    assert response.status_code == expected
    assert EvalSet.objects.filter(name="new-eval").count() == (1 if expected == 201 else 0)


@pytest.mark.parametrize("role, expected", [("anon", 401), ("a", 403), ("b", 403), ("staff", 400)])
def test_api_round_create_is_staff_only(role, expected, world, api):
    # Staff pass the permission check and reach validation (an empty body is a 400, not a round).
    response = api(role).post("/api/rounds/", {}, format="json")
    assert response.status_code == expected
    assert ValuationRound.objects.count() == 2


@pytest.mark.parametrize("role, expected", [("anon", 401), ("a", 403), ("b", 403), ("staff", 200)])
def test_api_round_approve_is_staff_only(role, expected, world, api):
    response = api(role).post(f"/api/rounds/{world.round.pk}/approve/")
    assert response.status_code == expected
    approved = Payout.objects.filter(status=Payout.Status.APPROVED).count()
    if expected == 200:
        assert response.json() == {"round": world.round.pk, "approved": 2} and approved == 2
        again = api(role).post(f"/api/rounds/{world.round.pk}/approve/")
        assert again.status_code == 400 and "already approved" in again.json()["detail"]
    else:
        assert approved == 0


def test_api_approve_of_an_unfinished_round_is_a_400(world, api):
    response = api("staff").post(f"/api/rounds/{world.a_round.pk}/approve/")
    assert response.status_code == 400
    assert response.json()["detail"] == "only a finished round's payouts can be approved (this one is draft)"


@pytest.mark.parametrize("role, expected", [("anon", ADMIN_LOGIN), ("a", ADMIN_LOGIN), ("b", ADMIN_LOGIN),
                                            ("staff", (302, "/rounds/"))])
def test_web_round_approve_is_staff_only(role, expected, world, web):
    response = web(role).post(f"/rounds/{world.round.pk}/approve/")
    assert_status(response, expected)
    approved = Payout.objects.filter(status=Payout.Status.APPROVED).count()
    assert approved == (2 if role == "staff" else 0)


@pytest.mark.parametrize("role, expected", [("anon", 401), ("a", 204), ("b", 404), ("staff", 403)])
def test_api_delete_access(role, expected, world, api):
    response = api(role).delete(f"/api/contributions/{world.a_free.pk}/")
    assert response.status_code == expected
    assert_no_foreign_data(role, body_of(response))
    assert Contribution.objects.filter(pk=world.a_free.pk).exists() == (expected != 204)
    assert PreferencePair.objects.filter(contribution_id=world.a_free.pk).count() == (0 if expected == 204 else 2)


@pytest.mark.parametrize("role, expected", [("anon", LOGIN), ("a", (302, "/contributions/")), ("b", 404),
                                            ("staff", 403)])
def test_web_delete_access(role, expected, world, web):
    response = web(role).post(f"/contributions/{world.a_free.pk}/delete/")
    assert_status(response, expected)
    assert_no_foreign_data(role, body_of(response))
    assert Contribution.objects.filter(pk=world.a_free.pk).exists() == (role != "a")


def test_web_delete_needs_a_post(world, web):
    assert web("a").get(f"/contributions/{world.a_free.pk}/delete/").status_code == 405
    assert Contribution.objects.filter(pk=world.a_free.pk).exists()


# --- deleting data a round has used ---------------------------------------------

def test_api_delete_of_a_contribution_used_by_a_round_is_refused(world, api):
    pairs_before = PreferencePair.objects.count()
    response = api("a").delete(f"/api/contributions/{world.a_used.pk}/")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "this contribution was used by a valuation round and can no longer be deleted")
    assert Contribution.objects.filter(pk=world.a_used.pk).exists()
    assert PreferencePair.objects.count() == pairs_before
    assert RoundOwner.objects.filter(contributions=world.a_used).count() == 2


def test_web_delete_of_a_contribution_used_by_a_round_is_refused(world, web):
    client = web("a")
    response = client.post(f"/contributions/{world.a_used.pk}/delete/", follow=True)
    assert response.redirect_chain == [(f"/contributions/{world.a_used.pk}/", 302)]
    assert "used by a valuation round and can no longer be deleted" in body_of(response)
    assert Contribution.objects.filter(pk=world.a_used.pk).exists()
    assert PreferencePair.objects.filter(contribution=world.a_used).count() == 3


# --- what each role sees in the bodies it may read ---------------------------------

def _names(payload) -> list[str]:
    return sorted(item["original_name"] for item in payload["results"])


def test_contribution_lists_are_scoped(world, api):
    assert _names(api("a").get("/api/contributions/").json()) == [
        "alpha_free.jsonl", "alpha_refused.jsonl", "alpha_secret.jsonl"]
    assert _names(api("b").get("/api/contributions/").json()) == ["bravo_secret.jsonl"]
    assert _names(api("staff").get("/api/contributions/").json()) == [
        "alpha_free.jsonl", "alpha_refused.jsonl", "alpha_secret.jsonl", "bravo_secret.jsonl"]


def test_downloads_contain_only_the_owners_pairs(world, api, web):
    for body in (body_of(api("a").get(f"/api/contributions/{world.a_used.pk}/download/")),
                 body_of(web("a").get(f"/contributions/{world.a_used.pk}/download/"))):
        assert body.count("\n") == 3 and body.count("alphasecret question") == 3


def test_round_values_and_payouts_are_scoped_to_the_caller(world, api):
    path = f"/api/rounds/{world.round.pk}"
    values = {role: api(role).get(f"{path}/values/").json()["values"] for role in ("a", "b", "staff")}
    assert [(v["owner"], v["shapley"]) for v in values["a"]] == [("owner_a", 0.314159)]
    assert [(v["owner"], v["shapley"]) for v in values["b"]] == [("owner_b", 0.577215)]
    assert [(v["owner"], v["shapley"]) for v in values["staff"]] == [("owner_b", 0.577215), ("owner_a", 0.314159)]
    payouts = {role: api(role).get(f"{path}/payouts/").json() for role in ("a", "b", "staff")}
    assert [(p["owner"], p["amount"]) for p in payouts["a"]["payouts"]] == [("owner_a", "31.42")]
    assert [(p["owner"], p["amount"]) for p in payouts["b"]["payouts"]] == [("owner_b", "68.58")]
    assert len(payouts["staff"]["payouts"]) == 2
    totals = payouts["a"]["totals"]  # round totals only: no other owner's row
    assert (Decimal(totals["pool"]), Decimal(totals["paid"]), totals["currency"], totals["n_owners"]) == (
        Decimal("100"), Decimal("100"), "USD", 2)


def test_round_lists_are_scoped(world, api):
    names = {role: sorted(r["name"] for r in api(role).get("/api/rounds/").json()["results"])
             for role in ("a", "b", "staff")}
    assert names == {"a": ["alpha-only-round", "round-one"], "b": ["round-one"],
                     "staff": ["alpha-only-round", "round-one"]}


def test_my_payouts_page_shows_only_my_payout(world, web):
    a_page, b_page = body_of(web("a").get("/rounds/my-payouts/")), body_of(web("b").get("/rounds/my-payouts/"))
    assert "round-one" in a_page and "31.42 USD" in a_page and "0.31416" in a_page
    assert "round-one" in b_page and "68.58 USD" in b_page


def test_statements_show_only_the_owners_own_row(world, web):
    a_page = body_of(web("a").get(f"/rounds/{world.round.pk}/statement/"))
    assert "0.314159" in a_page and "31.42 USD" in a_page and "100.00 USD" in a_page  # mine, and the totals
    b_csv = body_of(web("b").get(f"/rounds/{world.round.pk}/statement.csv")).splitlines()
    assert len(b_csv) == 2 and b_csv[1].startswith("round-one,owner_b,") and "68.58" in b_csv[1]
    staff_of_b = body_of(web("staff").get(f"/rounds/{world.round.pk}/statement/?owner=owner_b"))
    assert "68.58 USD" in staff_of_b and "owner_a" not in staff_of_b


def test_staff_see_every_owner_in_round_pages(world, web):
    detail = body_of(web("staff").get(f"/rounds/{world.round.pk}/"))
    assert "owner_a" in detail and "owner_b" in detail and "100.00 of 100.00 USD" in detail
    csv_lines = body_of(web("staff").get(f"/rounds/{world.round.pk}/payouts.csv")).splitlines()
    assert csv_lines[0] == "round,owner,shapley,share,amount,currency,status"
    assert sorted(line.split(",")[1] for line in csv_lines[1:]) == ["owner_a", "owner_b"]


# --- authentication ---------------------------------------------------------------

def test_token_login(owner_a):
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "owner_a", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["token"] == Token.objects.get(user=owner_a.user).key
    again = client.post("/api/auth/token/", {"username": "owner_a", "password": PASSWORD})
    assert again.json() == response.json()  # one token per user
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/contributions/").status_code == 200


def test_token_login_with_a_wrong_password_or_token(owner_a):
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "owner_a", "password": "wrong"})
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    assert not Token.objects.exists()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/contributions/")
    assert response.status_code == 401 and response.json() == {"detail": "Invalid token."}


def test_session_auth_works_for_the_api_and_enforces_csrf(owner_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner_a.user)
    assert client.get("/api/contributions/").status_code == 200
    response = client.post("/api/contributions/", {"file": upload("p.jsonl", jsonl_bytes(make_pairs(1)))})
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert Contribution.objects.count() == 0


def test_a_token_does_not_log_into_web_pages(owner_a):
    token = Token.objects.create(user=owner_a.user)
    response = Client().get("/contributions/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_schema_documents_every_fixed_endpoint(api):
    response = api("anon").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {"/api/auth/token/", "/api/contributions/", "/api/contributions/{contribution_id}/",
            "/api/contributions/{contribution_id}/download/", "/api/eval-sets/", "/api/rounds/",
            "/api/rounds/{round_id}/", "/api/rounds/{round_id}/values/", "/api/rounds/{round_id}/payouts/",
            "/api/rounds/{round_id}/approve/"} <= paths
    assert set(response.json()["paths"]["/api/contributions/{contribution_id}/"]) >= {"get", "delete"}
