"""Players are verified payees (issue 24): unverified, suspended and inactive accounts earn nothing, several
accounts of one payee are one player paid once, and each account sees its payee's rows and nobody else's."""
import io
import json
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from marketplace.models import Contribution, DataOwner
from marketplace.payees import owner_set_status
from marketplace.services import contribution_create, owner_create
from tests.conftest import PASSWORD, _api, jsonl_bytes, upload
from tests.dashboards import write_data_quality, write_results
from tests.valuation.conftest import add_eval_set, add_owner, pairs_records
from valuation import services, stages
from valuation.engine import synthetic
from valuation.forms import RoundForm
from valuation.models import Payout, RoundOwner

pytestmark = pytest.mark.django_db


def add_unverified(username: str, pairs, password: str | None = None):
    owner = owner_create(username=username, password=password)
    contribution_create(owner=owner, file=upload(f"{username}.jsonl", jsonl_bytes(pairs_records(pairs))),
                        filename=f"{username}.jsonl")
    return owner


@pytest.fixture
def eval_set():
    return add_eval_set("eval", synthetic.eval_pairs(8, 0))


def create(eval_set, model_dir, name="r1", **overrides):
    return services.round_create(name=name, pool="100.00", eval_set=eval_set, base_model_dir=str(model_dir),
                                 **overrides)


def players(valuation_round) -> list[str]:
    return [p.payee.name for p in valuation_round.participants.select_related("payee").order_by("index")]


def test_an_unverified_account_enters_no_round_and_earns_nothing(eval_set, fake_model_dir):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    mallory = add_unverified("mallory", synthetic.owner_pairs("clean_helpful", 6, 2))
    r = write_results(create(eval_set, fake_model_dir), [0.3])
    assert players(r) == ["alice"]
    assert not RoundOwner.objects.filter(owner=mallory).exists()
    assert not Payout.objects.filter(owner=mallory).exists()
    assert r.payouts.get().amount == Decimal("100.00")


def test_verify_enters_suspend_leaves_and_verify_again_returns(eval_set, fake_model_dir, staff_user):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    bob = add_unverified("bob", synthetic.owner_pairs("noisy", 6, 2))
    assert players(create(eval_set, fake_model_dir, "r1")) == ["alice"]
    payee = owner_set_status(owner=bob, status="verified", changed_by=staff_user)
    assert (payee.name, payee.status, payee.status_changed_by) == ("bob", "verified", staff_user)
    assert payee.status_changed_at is not None
    assert players(create(eval_set, fake_model_dir, "r2")) == ["alice", "bob"]
    owner_set_status(owner=bob, status="suspended")
    assert players(create(eval_set, fake_model_dir, "r3")) == ["alice"]
    owner_set_status(owner=bob, status="verified")
    assert players(create(eval_set, fake_model_dir, "r4")) == ["alice", "bob"]


def test_an_inactive_account_is_not_a_player(eval_set, fake_model_dir):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    bob = add_owner("bob", synthetic.owner_pairs("noisy", 6, 2))
    bob.user.is_active = False
    bob.user.save()
    assert players(create(eval_set, fake_model_dir)) == ["alice"]
    with pytest.raises(ValidationError, match="payee 'bob' has no active account"):
        create(eval_set, fake_model_dir, "r2", owners=["alice", "bob"])
    # An inactive account of a payee with other, active accounts: the payee plays without its data.
    carol = add_unverified("carol", synthetic.owner_pairs("noisy", 4, 3))
    dan = add_unverified("dan", synthetic.owner_pairs("noisy", 3, 4))
    for owner in (carol, dan):
        owner_set_status(owner=owner, status="verified", payee_name="CD")
    dan.user.is_active = False
    dan.user.save()
    with pytest.raises(ValidationError, match="owner 'dan' is inactive"):
        create(eval_set, fake_model_dir, "r3", owners=["dan"])
    r = create(eval_set, fake_model_dir, "r4", owners=["CD"])
    assert players(r) == ["CD"] and r.participants.get().n_pairs == 4


def test_two_accounts_of_one_payee_are_one_player_paid_once(eval_set, fake_model_dir):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    one = add_unverified("sybil1", synthetic.owner_pairs("clean_helpful", 5, 2))
    two = add_unverified("sybil2", synthetic.owner_pairs("clean_helpful", 4, 3))
    call_command("verify_owner", "sybil1", "sybil2", "--payee", "Sybil Ltd", stdout=io.StringIO())
    r = create(eval_set, fake_model_dir)
    assert players(r) == ["alice", "Sybil Ltd"]
    player = r.participants.get(payee__name="Sybil Ltd")
    assert player.n_pairs == 9 and player.owner == one
    assert set(player.contributions.values_list("owner__user__username", flat=True)) == {"sybil1", "sybil2"}
    r = write_results(r, [0.1, 0.3])
    assert r.payouts.count() == 2  # one per payee, not per account
    assert r.payouts.get(owner=one).amount == Decimal("75.00") and not r.payouts.filter(owner=two).exists()
    # Both accounts see the payee's payout (the player's name is the payee's), and only theirs.
    for account in (one, two):
        rows = _api(account.user).get(f"/api/rounds/{r.pk}/payouts/").json()["payouts"]
        assert [(row["amount"], row["owner"]) for row in rows] == [("75.00", "sybil1")]
        page = Client()
        page.force_login(account.user)
        html = page.get("/rounds/my-payouts/").content.decode()
        assert "75.00" in html and "25.00" not in html
        statement = page.get(f"/rounds/{r.pk}/statement/").content.decode()
        assert "Sybil Ltd" in statement and "75.00" in statement
    # The data of a payee is one player whichever account it was uploaded from.
    assert player.data_hash == r.participants.get(payee__name="Sybil Ltd").data_hash


def test_a_payee_owns_its_rows_even_after_an_account_moves(eval_set, fake_model_dir):
    """Moving an account to another payee later does not take the old payee's payouts with it."""
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    one = add_unverified("acc1", synthetic.owner_pairs("clean_helpful", 5, 2))
    two = add_unverified("acc2", synthetic.owner_pairs("noisy", 4, 3))
    for owner in (one, two):
        owner_set_status(owner=owner, status="verified", payee_name="Old Co")
    r = write_results(create(eval_set, fake_model_dir), [0.1, 0.3])
    owner_set_status(owner=one, status="verified", payee_name="New Co")  # acc1, the one the rows name, leaves
    for account, expected in ((one, []), (two, ["75.00"])):
        body = _api(account.user).get(f"/api/rounds/{r.pk}/payouts/")
        rows = body.json()["payouts"] if body.status_code == 200 else []
        assert [row["amount"] for row in rows] == expected


def test_payees_are_isolated(eval_set, fake_model_dir):
    """An account never sees another payee's rows: values, payouts, statements, history."""
    for name, kind, seed in (("x1", "clean_helpful", 1), ("x2", "noisy", 2), ("y1", "clean_helpful", 3),
                             ("y2", "noisy", 4)):
        add_unverified(name, synthetic.owner_pairs(kind, 5, seed), password=PASSWORD)
    for name in ("x1", "x2"):
        owner_set_status(owner=DataOwner.objects.get(user__username=name), status="verified", payee_name="X")
    call_command("verify_owner", "y1", "y2", "--payee", "Y", stdout=io.StringIO())
    r = write_results(create(eval_set, fake_model_dir), [0.123456, 0.654321])
    for account, mine, theirs in (("x2", "0.123456", "0.654321"), ("y2", "0.654321", "0.123456")):
        api = _api(DataOwner.objects.get(user__username=account).user)
        body = json.dumps([api.get(f"/api/rounds/{r.pk}/values/").json(),
                           api.get(f"/api/rounds/{r.pk}/payouts/").json(),
                           api.get(f"/api/rounds/{r.pk}/").json()])
        assert mine in body and theirs not in body
        other = "Y" if account[0] == "x" else "X"
        assert other not in json.dumps(api.get(f"/api/rounds/{r.pk}/payouts/").json())


def test_choosing_an_unverified_suspended_or_unknown_owner_is_refused(eval_set, fake_model_dir):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    add_unverified("pending1", synthetic.owner_pairs("noisy", 6, 2))
    gone = add_owner("gone", synthetic.owner_pairs("noisy", 6, 3))
    owner_set_status(owner=gone, status="suspended")
    for owners, message in ((["alice", "pending1"], "owner 'pending1' is not verified (pending)"),
                            (["gone"], "'gone' (payee 'gone') is suspended: only verified payees are players"),
                            (["nobody"], "'nobody' is neither a data owner nor a payee")):
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            create(eval_set, fake_model_dir, owners=owners)
    assert not RoundOwner.objects.exists()
    r = create(eval_set, fake_model_dir, owners=["alice"])
    assert players(r) == ["alice"]


def test_the_api_refuses_an_unverified_owner(eval_set, fake_model_dir, api_staff):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    add_unverified("pending1", synthetic.owner_pairs("noisy", 6, 2))
    body = {"name": "api-round", "pool": "10.00", "eval_set": "eval", "base_model": str(fake_model_dir),
            "owners": ["alice", "pending1"]}
    response = api_staff.post("/api/rounds/", body, format="json")
    assert response.status_code == 400
    assert "owner 'pending1' is not verified (pending)" in json.dumps(response.json())
    assert not RoundOwner.objects.exists()


def test_run_round_refuses_an_unverified_owner(eval_set, fake_model_dir):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    add_unverified("pending1", synthetic.owner_pairs("noisy", 6, 2))
    with pytest.raises(CommandError, match="owner 'pending1' is not verified"):
        call_command("run_round", "--name", "cli", "--pool", "10", "--base-model", str(fake_model_dir),
                     "--eval-set", "eval", "--owner", "alice", "--owner", "pending1", stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert not RoundOwner.objects.exists()


def test_the_round_form_defaults_to_all_verified_payees_and_refuses_others(eval_set, fake_model_dir, staff_user):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    add_owner("bob", synthetic.owner_pairs("noisy", 6, 2))
    add_unverified("pending1", synthetic.owner_pairs("noisy", 6, 3))
    gone = add_owner("gone", synthetic.owner_pairs("noisy", 6, 4))
    owner_set_status(owner=gone, status="suspended")
    withdrew = add_owner("withdrew", synthetic.owner_pairs("noisy", 6, 5))
    Contribution.objects.filter(owner=withdrew).delete()  # verified, but holds no data now
    form = RoundForm()
    assert sorted(form["owners"].initial) == ["alice", "bob"]  # the default never names a payee without data
    assert sorted(label for _, label in form.fields["owners"].choices) == \
        ["alice", "bob", "gone (suspended)", "withdrew"]
    client = Client()
    client.force_login(staff_user)
    post = {"name": "web", "pool": "10.00", "currency": "USD", "eval_set": "eval", "base_model": str(fake_model_dir),
            "utility": "preference_accuracy", "composition": "sum", "estimator": "auto", "seed": "0"}
    html = client.get("/rounds/new/").content.decode()
    assert 'value="alice" selected' in html and 'value="gone"' in html and 'value="gone" selected' not in html
    refused = client.post("/rounds/new/", {**post, "owners": ["alice", "gone"]})
    assert refused.status_code == 400 and "only verified payees are players" in refused.content.decode()
    assert not RoundOwner.objects.exists()
    chosen = client.post("/rounds/new/", {**post, "owners": ["bob"]})
    assert chosen.status_code == 302
    assert [p.payee.name for p in RoundOwner.objects.select_related("payee")] == ["bob"]


def test_splitting_data_over_accounts_of_one_payee_is_the_same_player_as_one_account(eval_set, fake_model_dir):
    """The issue's Sybil: 40 pairs over three accounts. Unverified, the accounts earn nothing; verified as
    one payee, the engine sees exactly the data of one account (same pairs, same order, same hash), so
    the split earns what one account earns, once."""
    add_owner("honest", synthetic.owner_pairs("clean_helpful", 20, 1))
    pairs = synthetic.owner_pairs("clean_helpful", 40, 2)
    accounts = [add_unverified(f"sybil{i}", pairs[start:start + 14]) for i, start in enumerate((0, 14, 28))]
    assert players(create(eval_set, fake_model_dir, "unverified")) == ["honest"]
    for owner in accounts:
        owner_set_status(owner=owner, status="verified", payee_name="S")
    r = create(eval_set, fake_model_dir, "verified")
    assert players(r) == ["honest", "S"]
    player = r.participants.get(payee__name="S")
    assert player.n_pairs == 40 and player.data_hash == stages.pairs_digest(pairs)


def test_every_account_of_a_payee_sees_the_payees_pairs_and_no_one_elses(eval_set, fake_model_dir):
    alice = add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    one = add_unverified("acc1", synthetic.owner_pairs("noisy", 5, 2))
    two = add_unverified("acc2", synthetic.owner_pairs("noisy", 4, 3))
    for owner in (one, two):
        owner_set_status(owner=owner, status="verified", payee_name="P")
    r = write_results(create(eval_set, fake_model_dir), [0.2, 0.1])
    write_data_quality(r, [alice, one], [0.0111, 0.0707])
    for account, mine, theirs in ((two, "0.0707", "0.0111"), (alice, "0.0111", "0.0707")):
        api = _api(account.user)
        values = json.dumps(api.get(f"/api/rounds/{r.pk}/pair-values/").json())
        assert mine in values and theirs not in values
        summary = api.get(f"/api/rounds/{r.pk}/data-quality/").json()["mine"]
        assert summary["n_pairs"] == 3
        page = Client()
        page.force_login(account.user)
        html = page.get(f"/rounds/{r.pk}/my-pairs/").content.decode()
        assert mine in html and theirs not in html


def test_a_payee_suspended_after_the_round_was_created_blocks_approval(eval_set, fake_model_dir, staff_user):
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 1))
    bob = add_owner("bob", synthetic.owner_pairs("noisy", 6, 2))
    r = write_results(create(eval_set, fake_model_dir), [0.2, 0.1])
    owner_set_status(owner=bob, status="suspended")
    with pytest.raises(ValidationError, match="payee\\(s\\) bob are no longer verified"):
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    r.refresh_from_db()
    assert r.approved_at is None and not r.payouts.filter(status="approved").exists()
    owner_set_status(owner=bob, status="verified")
    assert services.payout_approve(valuation_round=r, approved_by=staff_user) == 2
