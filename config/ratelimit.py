"""Slowing down password guessing at every door that takes a password.

* Web sign-in (`/login/`) and the admin's (`/admin/login/`): `login_rate_limited` wraps the view and
  counts *failed* attempts in the cache, per username and per client address, in a fixed window.
  Over the limit, the view is not even called: 429 with the time to wait. A successful sign-in clears
  that username's count. No new dependency: Django's cache is the store (production points it at a
  cache every web process shares, config/settings/production.py).
* `POST /api/auth/token/`: DRF throttling (`LoginIPThrottle`, `LoginUsernameThrottle`), which counts
  every request, with rates from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] read at request time.

Limits are settings (`LOGIN_FAILURE_LIMITS`, `DEFAULT_THROTTLE_RATES`); see docs/deployment.md.
"""
from __future__ import annotations

import hashlib
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from rest_framework.throttling import SimpleRateThrottle

WINDOW_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/15m' → (10, 900); '30/min' → (30, 60)."""
    count, _, period = rate.partition("/")
    digits = "".join(ch for ch in period if ch.isdigit()) or "1"
    unit = period.lstrip("0123456789")[:1]
    return int(count), int(digits) * WINDOW_SECONDS[unit]


def client_address(request) -> str:
    header = getattr(settings, "RATELIMIT_CLIENT_IP_HEADER", "")  # e.g. HTTP_X_REAL_IP behind a proxy
    return (request.META.get(header) if header else None) or request.META.get("REMOTE_ADDR") or "unknown"


def _keys(request, username: str) -> dict[str, str]:
    user = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return {"username": f"login-fail:user:{user}", "address": f"login-fail:ip:{client_address(request)}"}


def login_wait(request, username: str) -> int:
    """Seconds until this username / address may try again (0: now)."""
    for scope, key in _keys(request, username).items():
        count, seconds = parse_rate(settings.LOGIN_FAILURE_LIMITS[scope])
        if (cache.get(key) or 0) >= count:
            return seconds
    return 0


def login_failed(request, username: str) -> None:
    for scope, key in _keys(request, username).items():
        _, seconds = parse_rate(settings.LOGIN_FAILURE_LIMITS[scope])
        cache.add(key, 0, timeout=seconds)  # the window starts at the first failure
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=seconds)


def login_succeeded(request, username: str) -> None:
    cache.delete(_keys(request, username)["username"])


def login_rate_limited(view):
    """Wrap a sign-in view (Django's LoginView, the admin's login): failed POSTs are counted, and over
    the limit the view answers 429 without checking the password."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = str(request.POST.get("username", ""))[:150]
        wait = login_wait(request, username)
        if wait:
            return render(request, "too_many_attempts.html", {"minutes": max(1, wait // 60)}, status=429)
        response = view(request, *args, **kwargs)
        if request.user.is_authenticated:
            login_succeeded(request, username)
        else:
            login_failed(request, username)
        return response
    return wrapped


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)

    def parse_rate(self, rate):
        return (None, None) if rate is None else parse_rate(rate)


class LoginIPThrottle(_SettingsRateThrottle):
    scope = "login_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(_SettingsRateThrottle):
    scope = "login_user"

    def get_cache_key(self, request, view):
        username = str(request.data.get("username", "")).strip().casefold()
        ident = hashlib.sha256(username.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": ident}


# --- signup ---------------------------------------------------------------------------------------
# Every account could be a player, so accounts are what a Sybil needs in bulk: `signup_rate_limited`
# counts the accounts created from one client address in a window (SIGNUP_LIMIT) and, over it, answers
# 429 without creating another. (Verification by staff is what keeps a new account from earning,
# marketplace/payees.py; this keeps the queue of unverified accounts from being flooded.)

def _signup_key(request) -> str:
    return f"signup:ip:{client_address(request)}"


def signup_wait(request) -> int:
    """Seconds until this address may create another account (0: now)."""
    count, seconds = parse_rate(settings.SIGNUP_LIMIT)
    return seconds if (cache.get(_signup_key(request)) or 0) >= count else 0


def signup_rate_limited(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait = signup_wait(request)
        if wait:
            return render(request, "too_many_signups.html", {"minutes": max(1, wait // 60)}, status=429)
        response = view(request, *args, **kwargs)
        if request.user.is_authenticated:  # the signup view signs the new account in
            key, (_, seconds) = _signup_key(request), parse_rate(settings.SIGNUP_LIMIT)
            cache.add(key, 0, timeout=seconds)  # the window starts at the first account
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=seconds)
        return response
    return wrapped
