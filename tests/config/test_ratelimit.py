"""Password guessing is slowed by one count shared by every door (config/ratelimit.py): the web sign-in,
the admin's and the token endpoint. Failures are counted per (account, address), per address and per
account; nobody can lock an owner out from the owner's own address, and a guesser spread over many
addresses hits a per-account ceiling that slows the owner's known addresses instead of locking them."""
import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config.ratelimit import client_address
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
HOME, ATTACKER = "10.0.0.1", "203.0.113.7"


class Clock:
    """time.time() for the limiter and the cache's expiry: starts 5 s into an hour (so into every window)."""

    def __init__(self):
        self.now = 500_000 * 3600 + 5.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    return clock


@pytest.fixture
def tight(settings, clock):
    settings.LOGIN_FAILURE_LIMITS = {"account_address": "3/15m", "address": "5/15m", "account": "6/1h"}
    settings.LOGIN_SLOW_SECONDS = 60


def web(username, password, address, path="/login/", client=None):
    return (client or Client()).post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def token(username, password, address):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(response) -> bool:
    return response.status_code in (200, 302) and (response.status_code == 302 or "token" in response.json())


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_guessing_from_one_address_never_locks_the_owner_out_of_their_own(tight, owner_a, staff_user, path):
    user = "staff" if path.startswith("/admin") else "owner_a"
    assert [web(user, "wrong", ATTACKER, path).status_code for _ in range(3)] == [200, 200, 200]
    blocked = web(user, PASSWORD, ATTACKER, path)  # even the right password: the limit comes first
    assert blocked.status_code == 429 and b"Too many sign-in attempts" in blocked.content
    assert b"Wait 15 minutes" in blocked.content
    assert web(user, PASSWORD, HOME, path).status_code == 302  # the owner, from home: in
    assert web("owner_b", "wrong", ATTACKER).status_code == 200  # the attacker's address may try other accounts


def test_an_address_spraying_accounts_is_stopped_except_for_accounts_signed_in_from_it(tight, owner_a, owner_b):
    assert web("owner_b", PASSWORD, ATTACKER).status_code == 302  # owner_b has signed in from here before
    for name in ("u1", "u2", "u3", "u4", "u5"):
        assert web(name, "wrong", ATTACKER).status_code == 200
    assert web("owner_a", PASSWORD, ATTACKER).status_code == 429  # a new account from the sprayer's address
    assert web("owner_a", PASSWORD, HOME).status_code == 302  # ... from anywhere else: in
    assert web("owner_b", PASSWORD, ATTACKER).status_code == 302  # a known account of that address: in


def test_a_distributed_guesser_hits_the_account_ceiling_and_the_owner_is_slowed_not_locked(tight, clock, owner_a):
    assert signed_in(web("owner_a", PASSWORD, HOME))  # HOME becomes a known address of owner_a
    for i in range(6):  # one guess from each of six addresses: below every per-address limit
        assert web("owner_a", "wrong", f"198.51.100.{i}").status_code == 200
    assert web("owner_a", PASSWORD, "198.51.100.99").status_code == 429  # the ceiling: new addresses refused
    assert token("owner_a", PASSWORD, "198.51.100.98").status_code == 429
    assert web("owner_a", "typo", HOME).status_code == 200  # the owner's known address still gets a try ...
    slowed = web("owner_a", PASSWORD, HOME)
    assert slowed.status_code == 429 and b"Wait 1 minute" in slowed.content  # ... one a minute
    clock.now += 61
    assert web("owner_a", PASSWORD, HOME).status_code == 302  # the owner gets in while the ceiling holds
    assert web("owner_a", PASSWORD, "198.51.100.97").status_code == 429  # and the guessers still do not


def test_the_account_ceiling_ends_with_its_window(tight, clock, owner_a):
    for i in range(6):
        web("owner_a", "wrong", f"198.51.100.{i}")
    refused = web("owner_a", PASSWORD, "198.51.100.50")
    assert refused.status_code == 429 and b"Wait 60 minutes" in refused.content
    clock.now += 3600 - 5
    assert web("owner_a", PASSWORD, "198.51.100.50").status_code == 302


def test_guesses_at_the_token_endpoint_count_at_the_web_door(tight, owner_a):
    assert [token("owner_a", "wrong", ATTACKER).status_code for _ in range(3)] == [400, 400, 400]
    assert web("owner_a", PASSWORD, ATTACKER).status_code == 429
    assert web("owner_a", PASSWORD, ATTACKER, "/admin/login/").status_code == 429


def test_guesses_at_the_web_door_count_at_the_token_endpoint(tight, owner_a):
    for _ in range(2):
        web("owner_a", "wrong", ATTACKER)
    web("owner_a", "wrong", ATTACKER, "/admin/login/")
    refused = token("owner_a", PASSWORD, ATTACKER)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "too many sign-in attempts" in refused.json()["detail"].lower()
    assert signed_in(token("owner_a", PASSWORD, HOME))


def test_signing_in_to_ones_own_account_does_not_reset_the_address_count(tight, owner_a, owner_b):
    for name in ("u1", "u2", "u3", "u4"):
        web(name, "wrong", ATTACKER)
    assert signed_in(token("owner_b", PASSWORD, ATTACKER))  # the attacker's own account
    web("u5", "wrong", ATTACKER)
    assert web("owner_a", PASSWORD, ATTACKER).status_code == 429


def test_a_success_clears_only_its_own_account_and_address(tight, owner_a):
    web("owner_a", "wrong", HOME)
    web("owner_a", "wrong", HOME)
    assert web("owner_a", PASSWORD, HOME).status_code == 302
    assert [web("owner_a", "wrong", HOME).status_code for _ in range(3)] == [200, 200, 200]
    assert web("owner_a", PASSWORD, HOME).status_code == 429


def test_a_signed_in_session_guessing_another_account_is_counted(tight, owner_a, owner_b):
    client = Client()
    client.force_login(owner_a.user)
    assert [web("owner_b", "wrong", ATTACKER, client=client).status_code for _ in range(3)] == [200, 200, 200]
    assert web("owner_b", PASSWORD, ATTACKER, client=client).status_code == 429


def test_case_and_spaces_do_not_make_a_new_account_count(tight, owner_a):
    for name in ("owner_a", "OWNER_A", " Owner_A "):
        web(name, "wrong", ATTACKER)
    assert web("owner_a", PASSWORD, ATTACKER).status_code == 429


def test_an_ipv6_host_is_one_address_per_64(tight, owner_a, rf):
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        web("owner_a", "wrong", host)
    assert web("owner_a", PASSWORD, "2001:db8:1:2::99").status_code == 429
    assert web("owner_a", PASSWORD, "2001:db8:1:3::1").status_code == 302
    assert client_address(rf.get("/", REMOTE_ADDR="2001:db8:1:2::1")) == "2001:db8:1:2::/64"


def test_the_client_address_behind_proxies(settings, rf):
    settings.REST_FRAMEWORK = dict(settings.REST_FRAMEWORK, NUM_PROXIES=1)
    request = rf.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    assert client_address(request) == "198.51.100.4"  # the entry the one trusted proxy added, not a forged one
    settings.RATELIMIT_CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    assert client_address(rf.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_REAL_IP="192.0.2.5")) == "192.0.2.5"


def test_a_token_request_that_is_not_an_object_is_a_400(tight):
    assert APIClient().post("/api/auth/token/", [1, 2], format="json", REMOTE_ADDR=ATTACKER).status_code == 400
