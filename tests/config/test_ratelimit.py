"""Password guessing is slowed at every door (config/ratelimit.py): the web sign-in, the admin's, and
the token endpoint answer 429 over their limits, before the password is checked."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight(settings):
    settings.LOGIN_FAILURE_LIMITS = {"username": "3/15m", "address": "5/15m"}
    settings.REST_FRAMEWORK = dict(settings.REST_FRAMEWORK,
                                   DEFAULT_THROTTLE_RATES={"login_ip": "6/min", "login_user": "3/min"})


def sign_in(client, path, username, password, address="10.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_failed_sign_ins_are_limited_per_username(tight, owner_a, staff_user, path):
    client = Client()
    user = "staff" if path.startswith("/admin") else "owner_a"
    assert [sign_in(client, path, user, "wrong").status_code for _ in range(3)] == [200, 200, 200]
    blocked = sign_in(client, path, user, PASSWORD)  # even the right password: the limit comes first
    assert blocked.status_code == 429 and b"Too many sign-in attempts" in blocked.content
    assert b"Wait 15 minutes" in blocked.content
    assert sign_in(Client(), path, user, PASSWORD, address="10.0.0.9").status_code == 429  # per username
    other = "owner_b" if user == "owner_a" else "owner_a"
    assert sign_in(Client(), path, other, "wrong").status_code == 200  # another account is not affected


def test_failed_sign_ins_are_limited_per_address(tight, owner_a, owner_b):
    client = Client()
    for name in ("u1", "u2", "u3", "u4", "u5"):
        assert sign_in(client, "/login/", name, "wrong").status_code == 200
    assert sign_in(client, "/login/", "owner_b", PASSWORD).status_code == 429
    assert sign_in(client, "/login/", "owner_b", PASSWORD, address="10.0.0.2").status_code == 302


def test_a_successful_sign_in_clears_the_username_count(tight, owner_a):
    client = Client()
    sign_in(client, "/login/", "owner_a", "wrong")
    sign_in(client, "/login/", "owner_a", "wrong")
    assert sign_in(client, "/login/", "owner_a", PASSWORD).status_code == 302
    fresh = Client()
    assert [sign_in(fresh, "/login/", "owner_a", "wrong").status_code for _ in range(3)] == [200, 200, 200]


def test_the_token_endpoint_is_throttled_per_username_and_address(tight, owner_a, owner_b):
    client = APIClient()
    codes = [client.post("/api/auth/token/", {"username": "owner_a", "password": "wrong"},
                         REMOTE_ADDR="10.0.0.1").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
    throttled = client.post("/api/auth/token/", {"username": "owner_a", "password": PASSWORD},
                            REMOTE_ADDR="10.0.0.7")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert "throttled" in throttled.json()["detail"].lower()
    codes = [client.post("/api/auth/token/", {"username": "owner_b", "password": PASSWORD},
                         REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)]
    assert codes == [200, 200, 429]  # the address's 6 per minute are used up (4 + 2)
