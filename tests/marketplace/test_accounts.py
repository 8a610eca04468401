"""Accounts: web signup (user + DataOwner, logged in), `manage.py create_owner`, login and logout."""
import io

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from marketplace.models import DataOwner
from tests.conftest import PASSWORD

User = get_user_model()


def _signup(client: Client, **overrides):
    data = {"username": "newowner", "email": "new@example.org", "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/signup/", {**data, **overrides})


def test_signup_page_renders_the_form(db):
    response = Client().get("/signup/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password1"' in html and 'name="email"' in html


def test_signup_creates_an_owner_and_logs_in(db):
    client = Client()
    response = _signup(client)
    assert response.status_code == 302 and response["Location"] == "/contributions/"
    user = User.objects.get(username="newowner")
    assert (user.email, user.is_staff, user.check_password(PASSWORD)) == ("new@example.org", False, True)
    assert DataOwner.objects.get(user=user).name == "newowner"
    assert client.session["_auth_user_id"] == str(user.pk)
    page = client.get("/contributions/")
    assert page.status_code == 200 and page.context["user"] == user
    html = page.content.decode()
    assert "Welcome! Upload your first preference file below." in html and 'enctype="multipart/form-data"' in html


@pytest.mark.parametrize("overrides, error", [
    ({"password2": "something-else-entirely"}, "The two password fields didn’t match."),
    ({"password1": "123", "password2": "123"}, "This password is too short."),
    ({"username": "bad name!"}, "Enter a valid username."),
])
def test_signup_errors_create_nothing(db, overrides, error):
    client = Client()
    response = _signup(client, **overrides)
    assert response.status_code == 200 and error in response.content.decode()
    assert User.objects.count() == 0 and DataOwner.objects.count() == 0
    assert "_auth_user_id" not in client.session


def test_signup_with_a_taken_username(owner_a):
    response = _signup(Client(), username="owner_a")
    assert response.status_code == 200 and "A user with that username already exists." in response.content.decode()
    assert User.objects.filter(username="owner_a").count() == 1 and DataOwner.objects.count() == 1


def test_create_owner_command(db):
    out = io.StringIO()
    call_command("create_owner", "--username", "cli_owner", "--password", PASSWORD, "--email", "c@example.org",
                 stdout=out)
    assert out.getvalue().strip() == "created data owner 'cli_owner'"
    owner = DataOwner.objects.get(user__username="cli_owner")
    assert owner.user.email == "c@example.org"
    assert authenticate(username="cli_owner", password=PASSWORD) == owner.user


def test_create_owner_command_refuses_bad_input(owner_a):
    with pytest.raises(CommandError, match="A user with that username already exists."):
        call_command("create_owner", "--username", "owner_a", "--password", PASSWORD)
    with pytest.raises(CommandError, match="This password is too common."):
        call_command("create_owner", "--username", "weak", "--password", "password")
    with pytest.raises(CommandError, match="Enter a valid username."):
        call_command("create_owner", "--username", "no spaces", "--password", PASSWORD)
    assert list(User.objects.values_list("username", flat=True)) == ["owner_a"]
    assert DataOwner.objects.count() == 1


def test_login_and_logout(owner_a):
    client = Client()
    assert client.get("/contributions/").status_code == 302
    response = client.post("/login/", {"username": "owner_a", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(owner_a.user.pk)
    assert client.get("/").headers["Location"] == "/contributions/"
    page = client.get("/contributions/")
    assert page.status_code == 200 and "Sign out owner_a" in page.content.decode()

    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    response = client.get("/contributions/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/contributions/"


def test_login_follows_next(owner_a):
    client = Client()
    response = client.post("/login/?next=/rounds/my-payouts/",
                           {"username": "owner_a", "password": PASSWORD, "next": "/rounds/my-payouts/"})
    assert response.status_code == 302 and response["Location"] == "/rounds/my-payouts/"


def test_login_with_a_wrong_password(owner_a):
    client = Client()
    response = client.post("/login/", {"username": "owner_a", "password": "wrong-password"})
    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_needs_a_post(owner_a):
    client = Client()
    client.force_login(owner_a.user)
    assert client.get("/logout/").status_code == 405
    assert client.session["_auth_user_id"] == str(owner_a.user.pk)


def test_staff_login_lands_on_rounds(staff_user):
    client = Client()
    client.post("/login/", {"username": "staff", "password": PASSWORD})
    assert client.get("/").headers["Location"] == "/rounds/"
