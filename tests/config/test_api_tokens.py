"""API tokens expire (config/tokens.py): older than API_TOKEN_DAYS, a token is refused with 401 and a
message saying what to do, and the next sign-in at the token endpoint replaces it."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def obtain(username="owner_a"):
    response = APIClient().post("/api/auth/token/", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return response.json()


def get_with(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/contributions/")


def age(key: str, days: float) -> None:
    Token.objects.filter(key=key).update(created=timezone.now() - timedelta(days=days))


def test_a_fresh_token_works_and_says_when_it_expires(owner_a, settings):
    settings.API_TOKEN_DAYS = 30
    body = obtain()
    assert get_with(body["token"]).status_code == 200
    expires = timezone.datetime.fromisoformat(body["expires"].replace("Z", "+00:00"))
    assert abs(expires - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert obtain()["token"] == body["token"]  # a token still valid is handed out again, not rotated


def test_an_expired_token_is_refused_with_401_and_replaced_at_the_next_sign_in(owner_a, settings):
    settings.API_TOKEN_DAYS = 30
    old = obtain()["token"]
    age(old, 29.9)
    assert get_with(old).status_code == 200
    age(old, 30.01)
    refused = get_with(old)
    assert refused.status_code == 401 and refused["WWW-Authenticate"] == "Token"
    assert "token expired on" in refused.json()["detail"] and "POST /api/auth/token/" in refused.json()["detail"]
    new = obtain()["token"]
    assert new != old and not Token.objects.filter(key=old).exists()
    assert get_with(new).status_code == 200 and get_with(old).status_code == 401


def test_the_lifetime_is_a_setting(owner_a, settings):
    key = obtain()["token"]
    age(key, 3)
    settings.API_TOKEN_DAYS = 2
    assert get_with(key).status_code == 401
    settings.API_TOKEN_DAYS = 5
    assert get_with(key).status_code == 200
