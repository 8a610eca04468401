"""Slowing down password guessing, one count for every door that takes a password.

The web sign-in (`/login/`), the admin's (`/admin/login/`, both wrapped by `login_rate_limited`) and
`POST /api/auth/token/` (config/api.py) call the same three functions: `login_wait` before the password
is checked, then `login_failed` or `login_succeeded`. So a guess at any door counts at every door.

Failed attempts are counted in the cache (production points it at a cache every web process shares) in
fixed windows, three ways (`LOGIN_FAILURE_LIMITS`):

* per account and client address: one address guessing one account. Over it, that address is refused for
  that account; the account itself stays open everywhere else, so nobody can lock an owner out from the
  owner's own address by failing from theirs.
* per client address: one address spraying many accounts. Over it, the address is refused for every
  account it has not signed in to before.
* per account, across all addresses: the ceiling on a guesser spread over many addresses (a botnet; IPv6
  addresses are counted per /64, since one host usually holds a whole /64). Over it the account is refused
  from every *unknown* address until the window ends, while an address the account has signed in from
  before (known for `LOGIN_KNOWN_ADDRESS_DAYS`) is slowed to one attempt per `LOGIN_SLOW_SECONDS` instead
  of being locked. The owner keeps a way in, the distributed guesser gets at most the ceiling per window.
  The price: while an account is over its ceiling, its owner cannot sign in from a new address.

A successful sign-in forgets its own (account, address) count and makes the address known to the account;
it never clears the per-address or per-account counts, or anyone could reset them by signing in to an
account of their own between guesses at someone else's.
"""
from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

WINDOW_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
USERNAME_CHARS = 150  # Django's username length: longer input cannot be an account


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/15m' → (10, 900); '30/min' → (30, 60); '30/1h' → (30, 3600)."""
    count, _, period = rate.partition("/")
    digits = "".join(ch for ch in period if ch.isdigit()) or "1"
    unit = period.lstrip("0123456789")[:1]
    return int(count), int(digits) * WINDOW_SECONDS[unit]


def client_address(request) -> str:
    """The client's address: a configured header set by the proxy, the proxy chain's entry in
    X-Forwarded-For (DJANGO_NUM_PROXIES, as DRF counts it), or the socket's peer."""
    header = getattr(settings, "RATELIMIT_CLIENT_IP_HEADER", "")  # e.g. HTTP_X_REAL_IP behind a proxy
    address = request.META.get(header) if header else None
    proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not address and proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        address = hops[-min(proxies, len(hops))]
    address = (address or request.META.get("REMOTE_ADDR") or "unknown").strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


class _Keys:
    """Cache keys of one attempt: the account (a hash of the case-folded username) and the address. A count's
    key names its window (fixed, aligned to the clock), so a new window starts from zero by itself."""

    def __init__(self, request, username: str):
        self.account = hashlib.sha256(str(username).strip().casefold().encode()).hexdigest()[:32]
        self.address = client_address(request)
        self.known = f"login-known:{self.account}:{self.address}"
        self.slow = f"login-slow:{self.account}:{self.address}"

    def count(self, scope: str, window: int) -> str:
        who = {"account_address": f"{self.account}:{self.address}", "address": self.address,
               "account": self.account}[scope]
        return f"login-fail:{scope}:{who}:{window}"


def _window(scope: str) -> tuple[int, int, int]:
    """(limit, window length, current window number) of a scope."""
    limit, seconds = parse_rate(settings.LOGIN_FAILURE_LIMITS[scope])
    return limit, seconds, int(time.time() // seconds)


def _over(keys: _Keys, scope: str) -> int:
    """Seconds until this scope's window ends if its count is at the limit, else 0."""
    limit, seconds, window = _window(scope)
    if (cache.get(keys.count(scope, window)) or 0) < limit:
        return 0
    return max(1, math.ceil((window + 1) * seconds - time.time()))


def _count_failure(key: str, seconds: int) -> None:
    if cache.add(key, 1, timeout=seconds + 1):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=seconds + 1)


def login_wait(request, username: str) -> int:
    """Seconds until this account may be tried from this address (0: now)."""
    keys = _Keys(request, username)
    wait = _over(keys, "account_address")
    if wait:
        return wait
    if not cache.get(keys.known):
        return _over(keys, "address") or _over(keys, "account")
    if _over(keys, "account"):  # a known address is slowed, not locked
        until = cache.get(keys.slow)
        return max(1, math.ceil(until - time.time())) if until else 0
    return 0


def login_failed(request, username: str) -> None:
    keys = _Keys(request, username)
    for scope in settings.LOGIN_FAILURE_LIMITS:
        _, seconds, window = _window(scope)
        _count_failure(keys.count(scope, window), seconds)
    if cache.get(keys.known) and _over(keys, "account"):
        pause = settings.LOGIN_SLOW_SECONDS
        cache.set(keys.slow, time.time() + pause, timeout=pause)


def login_succeeded(request, username: str) -> None:
    keys = _Keys(request, username)
    cache.delete_many([keys.count("account_address", _window("account_address")[2]), keys.slow])
    cache.set(keys.known, 1, timeout=settings.LOGIN_KNOWN_ADDRESS_DAYS * 86400)


def wait_minutes(seconds: int) -> int:
    return max(1, -(-seconds // 60))


def login_rate_limited(view):
    """Wrap a sign-in view (Django's LoginView, the admin's login): over a limit the view answers 429 without
    checking the password; otherwise the attempt is counted as failed unless it signed that account in."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = str(request.POST.get("username", ""))[:USERNAME_CHARS]
        wait = login_wait(request, username)
        if wait:
            return render(request, "too_many_attempts.html", {"minutes": wait_minutes(wait)}, status=429)
        response = view(request, *args, **kwargs)
        # A signed-in session posting someone else's name must not pass for a success: the account signed in
        # must be the one named, and the view must have redirected (a wrong password re-renders the form).
        signed_in = (response.status_code in (301, 302, 303) and request.user.is_authenticated
                     and request.user.get_username().casefold() == username.strip().casefold())
        (login_succeeded if signed_in else login_failed)(request, username)
        return response
    return wrapped


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
