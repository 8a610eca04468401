"""Owner verification (payees), `manage.py verify_owner`, the admin actions, the owner's status page, and
the signup defences: rate limit per address, confusable and mixed-script usernames refused."""
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from marketplace.models import DataOwner, Payee
from marketplace.payees import owner_set_status
from marketplace.services import owner_create
from marketplace.usernames import skeleton
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()


def verify(*args) -> str:
    out = io.StringIO()
    call_command("verify_owner", *args, stdout=out)
    return out.getvalue()


# --- verify_owner -----------------------------------------------------------------------------------

def test_verify_owner_gives_each_account_its_own_payee():
    alice, bob = owner_create(username="alice"), owner_create(username="bob")
    assert alice.verification == "pending"
    out = verify("alice", "bob")
    assert "alice: payee 'alice' verified" in out and "bob: payee 'bob' verified" in out
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.payee.name == "alice" and bob.payee.name == "bob" and alice.payee != bob.payee
    assert alice.verification == bob.verification == "verified"
    assert alice.payee.status_changed_at is not None


def test_verify_owner_groups_accounts_under_one_payee_and_suspends_it():
    for name in ("acc1", "acc2", "acc3"):
        owner_create(username=name)
    verify("acc1", "acc2", "--payee", "Acme")
    verify("acc3", "--payee", "Acme")
    payee = Payee.objects.get(name="Acme")
    assert sorted(payee.accounts.values_list("user__username", flat=True)) == ["acc1", "acc2", "acc3"]
    assert "payee 'Acme' suspended" in verify("acc2", "--suspend")
    assert all(o.verification == "suspended" for o in DataOwner.objects.all())  # the payee's status, for all
    verify("acc1")
    assert Payee.objects.get(name="Acme").status == "verified"


def test_verify_owner_refuses_unknown_names_and_changes_nothing():
    owner_create(username="alice")
    with pytest.raises(CommandError, match="no data owner named: ghost"):
        verify("alice", "ghost")
    assert not Payee.objects.exists() and DataOwner.objects.get().payee is None


def test_verify_owner_never_joins_an_existing_payee_unasked():
    owner_create(username="acc1")
    owner_create(username="alice")
    verify("acc1", "--payee", "alice")  # a payee named like another account
    with pytest.raises(CommandError, match="a payee named 'alice' already exists"):
        verify("alice")
    assert DataOwner.objects.get(user__username="alice").payee is None


def test_owner_set_status_refuses_an_unknown_status():
    owner = owner_create(username="alice")
    with pytest.raises(Exception, match="unknown status 'rich'"):
        owner_set_status(owner=owner, status="rich")
    assert not Payee.objects.exists()


# --- admin ----------------------------------------------------------------------------------------

def test_admin_actions_verify_and_suspend_recording_who(staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    owner = owner_create(username="alice")
    client = Client()
    client.force_login(staff_user)
    response = client.post("/admin/marketplace/dataowner/", {"action": "owner_verified",
                                                             "_selected_action": [owner.pk]})
    assert response.status_code == 302
    payee = Payee.objects.get(name="alice")
    assert payee.status == "verified" and payee.status_changed_by == staff_user
    client.post("/admin/marketplace/payee/", {"action": "payee_suspended", "_selected_action": [payee.pk]})
    payee.refresh_from_db()
    assert payee.status == "suspended"
    page = client.get("/admin/marketplace/dataowner/").content.decode()
    assert "suspended" in page and "alice" in page


def test_admin_refuses_a_confusable_username(staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    owner_create(username="alice")
    client = Client()
    client.force_login(staff_user)
    response = client.post("/admin/auth/user/add/", {"username": "\u0430lice", "password1": PASSWORD,
                                                     "password2": PASSWORD, "usable_password": "true"})
    assert response.status_code == 200 and "mixes Cyrillic and Latin letters" in response.content.decode()
    assert not User.objects.filter(username="\u0430lice").exists()


# --- the owner's page and the staff overview ---------------------------------------------------------------

def test_an_owner_sees_their_own_status_and_what_it_means():
    owner = owner_create(username="alice", password=PASSWORD)
    client = Client()
    client.force_login(owner.user)
    html = client.get("/contributions/").content.decode()
    assert "pending verification" in html and "enters no valuation round and earns nothing" in html
    owner_set_status(owner=owner, status="verified", payee_name="Alice and Co")
    html = client.get("/contributions/").content.decode()
    assert "Verification: <span class=\"status-verified\">verified</span>" in html
    assert "paid to your payee &#x27;Alice and Co&#x27;" in html


def test_staff_see_every_owners_status_in_the_overview(staff_user):
    owner_create(username="alice")
    bob = owner_create(username="bob")
    client = Client()
    client.force_login(staff_user)
    html = client.get("/overview/").content.decode()
    assert html.count("pending verification") == 2
    owner_set_status(owner=bob, status="verified", payee_name="Bob Ltd")
    html = client.get("/overview/").content.decode()  # the cached table notices the change
    assert html.count("pending verification") == 1 and "Bob Ltd" in html


# --- signup ----------------------------------------------------------------------------------------

def _signup(client, username, **extra):
    return client.post("/signup/", {"username": username, "email": "", "password1": PASSWORD,
                                    "password2": PASSWORD}, **extra)


def test_signup_is_rate_limited_per_address(settings):
    settings.SIGNUP_LIMIT = "2/h"
    for name in ("one", "two"):
        assert _signup(Client(), name).status_code == 302
    response = _signup(Client(), "three")
    assert response.status_code == 429 and "Too many accounts were created from this address" in \
        response.content.decode()
    assert not User.objects.filter(username="three").exists()
    assert _signup(Client(), "four", REMOTE_ADDR="10.0.0.9").status_code == 302  # another address


def test_failed_signups_do_not_use_up_the_limit(settings):
    settings.SIGNUP_LIMIT = "1/h"
    assert _signup(Client(), "no spaces").status_code == 200
    assert _signup(Client(), "fine").status_code == 302


@pytest.mark.parametrize("taken, wanted", [
    ("alice", "\u0430lice"),        # Cyrillic а, all else Latin: mixed scripts
    ("alice", "\u0430\u04cf\u0456\u0441\u0435"),  # all Cyrillic lookalikes: the same skeleton
    ("alice", "ALICE"),
    ("mary", "rnary"),
    ("bill", "bi11"),
    ("bob", "b\u200bob"),           # zero-width space
])
def test_signup_refuses_a_username_confusable_with_an_existing_one(taken, wanted):
    owner_create(username=taken)
    response = _signup(Client(), wanted)
    assert response.status_code == 200
    text = response.content.decode()
    assert "looks too much like an existing one" in text or "mixes" in text or "invisible" in text \
        or "already exists" in text
    assert User.objects.count() == 1


def test_mixed_script_usernames_are_refused_everywhere():
    with pytest.raises(Exception, match="mixes Cyrillic and Latin letters"):
        owner_create(username="p\u0430ypal")
    with pytest.raises(CommandError, match="mixes Greek and Latin letters"):
        call_command("create_owner", "--username", "b\u03bfb", "--password", PASSWORD)
    assert not User.objects.exists()


def test_single_script_names_are_welcome():
    for name in ("мария", "ユーザー名", "alice_2", "Zoë"):
        owner_create(username=name)
    assert User.objects.count() == 4


def test_skeleton_folds_lookalikes():
    assert skeleton("\u0430lice") == skeleton("alice") == skeleton("ALICE")
    assert skeleton("rn") == skeleton("m") and skeleton("vv") == skeleton("w") and skeleton("0") == skeleton("o")
