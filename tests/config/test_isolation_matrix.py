"""Every URL pattern of the project × every role × every method: nobody sees another owner's data.

The patterns come from the URL resolver, so a new endpoint is in the matrix the day it is added; a
pattern whose parameters this file cannot fill fails loudly (add a filler to FILLERS). Each pattern with
an object in it is requested with owner A's object, owner B's, and an id that does not exist. Asserted:

* no response ever contains a marker of an owner other than the caller (tests/isolation_world.py:
  names, e-mails, file names, prompts, values, payouts, model hashes, tokens), nor the held-out eval set;
* never a 5xx, whoever asks and however;
* another owner's object answers exactly like an object that does not exist (404, not 403: an id says
  nothing about what exists), for every method;
* requests by anonymous users and by an owner change nothing of anyone else's data;
* GET answers what ACCESS says for the caller's role; every named pattern outside the Django admin must
  have an entry there (the admin has one rule: staff only).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from marketplace.models import Contribution, DataOwner, PreferencePair
from tests.isolation_world import FORBIDDEN, ROLES, World, world  # noqa: F401  (world: the fixture)
from valuation.models import ObjectiveValue, OwnerValue, PairValue, Payout, RoundOwner, ValuationRound

pytestmark = pytest.mark.django_db
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
MISSING_ID = 4_503_599_627_370_497  # a well-formed id no object has
LOGIN, ADMIN_LOGIN = (302, "/login/?next="), (302, "/admin/login/?next=")
STAFF_PAGE = {"anon": ADMIN_LOGIN, "a": ADMIN_LOGIN, "b": ADMIN_LOGIN, "staff": 200}
OWN_PAGE = {"anon": LOGIN, "a": 200, "b": 404, "staff": 200}  # for A's object
OWN_API = {"anon": 401, "a": 200, "b": 404, "staff": 200}
ANY_USER_PAGE = {"anon": LOGIN, "a": 200, "b": 200, "staff": 200}
ANY_USER_API = {"anon": 401, "a": 200, "b": 200, "staff": 200}
STAFF_POST_API = {"anon": 401, "a": 403, "b": 403, "staff": 405}  # GET of a POST-only staff endpoint
STAFF_API = {"anon": 401, "a": 403, "b": 403, "staff": 200}
PUBLIC = dict.fromkeys(ROLES, 200)
# GET of each named pattern, filled with A's objects (rounds: the round A and B share), per role.
ACCESS = {
    "marketplace:home": {"anon": (302, "/login/"), "a": (302, "/contributions/"), "b": (302, "/contributions/"),
                         "staff": (302, "/rounds/")},
    "marketplace:signup": PUBLIC, "marketplace:login": PUBLIC, "marketplace:logout": dict.fromkeys(ROLES, 405),
    "admin-login": {"anon": 200, "a": 200, "b": 200, "staff": (302, "/admin/")},
    "marketplace:contributions": ANY_USER_PAGE, "marketplace:contribution-detail": OWN_PAGE,
    "marketplace:contribution-download": OWN_PAGE,
    "marketplace:contribution-delete": {"anon": LOGIN, "a": 405, "b": 405, "staff": 405},
    "marketplace:eval-sets": STAFF_PAGE, "marketplace:overview": STAFF_PAGE,
    "valuation:round-list": STAFF_PAGE, "valuation:round-new": STAFF_PAGE, "valuation:round-detail": STAFF_PAGE,
    "valuation:round-payouts-csv": STAFF_PAGE, "valuation:round-approve": dict(STAFF_PAGE, staff=405),
    "valuation:round-statement": ANY_USER_PAGE,
    "valuation:round-statement-csv": dict(ANY_USER_PAGE, staff=404),  # staff name an owner: ?owner=
    "valuation:my-payouts": ANY_USER_PAGE,
    "api:token": dict.fromkeys(ROLES, 405), "api:schema": PUBLIC, "api:docs": PUBLIC,
    "api:contributions": ANY_USER_API, "api:contribution": OWN_API, "api:contribution-download": OWN_API,
    "api:eval-sets": STAFF_API, "api:base-models": STAFF_API,
    "api:rounds": ANY_USER_API, "api:round": ANY_USER_API, "api:round-values": ANY_USER_API,
    "api:round-payouts": ANY_USER_API, "api:round-ledger": ANY_USER_API, "api:round-fidelity": ANY_USER_API,
    "api:round-approve": STAFF_POST_API, "api:round-verify": STAFF_POST_API,
    "api:round-screen": dict(STAFF_API, staff=404),  # the world's rounds were never screened
    "api:round-screen-acknowledge": STAFF_POST_API,
    "valuation:round-screen-acknowledge": dict(STAFF_PAGE, staff=405),
    "api:round-corrections": STAFF_POST_API,
    "api:round-generations": STAFF_API,  # coalitions' responses quote the eval prompts
    "valuation:round-data-quality": STAFF_PAGE, "valuation:round-data-quality-run": dict(STAFF_PAGE, staff=405),
    "valuation:round-curated": dict(STAFF_PAGE, staff=(302, "/rounds/")),  # no ?size=: back to the report
    "valuation:round-my-pairs": dict(ANY_USER_PAGE, staff=404), "valuation:round-my-pairs-csv": dict(ANY_USER_PAGE, staff=404),
    "api:round-data-quality": ANY_USER_API, "api:round-pair-values": ANY_USER_API,
    # clusters and curated sets mix owners' pairs: staff only (a curated set without ?size= is a 400)
    "api:round-clusters": STAFF_API, "api:round-curated": dict(STAFF_API, staff=400),
}


@dataclass(frozen=True)
class Pattern:
    route: str  # the pattern as the resolver shows it
    name: str  # namespace:name, or "" for an unnamed pattern
    params: tuple[str, ...]


def all_patterns() -> list[Pattern]:
    def walk(patterns, prefix: str, namespace: str | None):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                name = f"{namespace}:{p.name}" if namespace and p.name else (p.name or "")
                params = tuple(re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route))
                yield Pattern(route, name, tuple(a or b for a, b in params))
    return list(walk(get_resolver().url_patterns, "/", None))


# --- filling a pattern: owner "a" / "b" objects, or ids that do not exist ----------------------

def _admin_object(route: str, whose: str, w: World):
    if route.startswith("/admin/r/"):  # "view on site": content type (a Contribution) + object id
        return {"a": w.a_used, "b": w.b_used}[whose].pk
    match = re.match(r"/admin/(\w+)/(\w+)/", route)
    if not match:
        pytest.fail(f"cannot tell the model of admin pattern {route}: add a filler to FILLERS")
    model = ContentType.objects.get(app_label=match[1], model=match[2]).model_class()
    user = w.users[whose]
    mine = {get_user_model(): {"pk": user.pk}, DataOwner: {"user": user}, Contribution: {"owner__user": user},
            PreferencePair: {"contribution__owner__user": user}, RoundOwner: {"owner__user": user},
            OwnerValue: {"owner__user": user}, Payout: {"owner__user": user}, ObjectiveValue: {"owner__user": user},
            PairValue: {"owner__user": user}}.get(model)
    found = (model.objects.filter(**mine) if mine else model.objects.all()).order_by("pk").first()
    if found is None:
        pytest.fail(f"no {model.__name__} in the world to fill {route}: add one to tests/isolation_world.py")
    return found.pk


FILLERS = {  # parameter name → (route, "a" | "b" | "missing", world) → value
    "contribution_id": lambda r, whose, w: {"a": w.a_used.pk, "b": w.b_used.pk}.get(whose, MISSING_ID),
    "round_id": lambda r, whose, w: {"a": w.a_round.pk, "b": w.b_round.pk, "shared": w.round.pk}.get(whose, MISSING_ID),
    "object_id": lambda r, whose, w: _admin_object(r, "a" if whose == "shared" else whose, w)
    if whose != "missing" else MISSING_ID,
    "content_type_id": lambda r, whose, w: ContentType.objects.get_for_model(Contribution).pk,
    "id": lambda r, whose, w: (w.users.get(whose) or w.users["a"]).pk if whose != "missing" else MISSING_ID,
    "app_label": lambda r, whose, w: "marketplace",
    "url": lambda r, whose, w: "no/such/page/",
}


def fill(pattern: Pattern, whose: str, w: World) -> str:
    path = pattern.route.replace("^", "").replace("$", "").replace("\\", "")
    for param in pattern.params:
        if param not in FILLERS:
            pytest.fail(f"cannot fill <{param}> in {pattern.route} ({pattern.name or 'unnamed'}): "
                        f"add a filler to FILLERS in {__file__}")
        value = str(FILLERS[param](pattern.route, whose, w))
        path = re.sub(rf"<(?:\w+:)?{param}>|\(\?P<{param}>[^)]*\)", value, path)
    return path


def variants(pattern: Pattern, role: str = "a") -> list[str]:
    """Whose object fills the pattern: none needed, or A's, B's, the shared round, and a missing id
    (staff, who may see everything, are checked for 5xx on A's objects and the shared round)."""
    if not any(p in pattern.params for p in ("contribution_id", "round_id", "object_id", "id")):
        return ["shared"]
    if role == "staff":
        return ["a"] + (["shared"] if "round_id" in pattern.params else [])
    return ["a", "b", "missing"] + (["shared"] if "round_id" in pattern.params else [])


# --- requests ------------------------------------------------------------------------------------

class Caller:
    """One role's client: a session for pages, its token for the API (as a script would call it)."""

    def __init__(self, role: str, w: World):
        self.role, self.w, self.client = role, w, None

    def request(self, method: str, path: str):
        if self.client is None:
            self.client = Client(raise_request_exception=False)  # a crash is a 500 to assert on
            if self.w.users[self.role] is not None:
                self.client.force_login(self.w.users[self.role])
        extra = {}
        if path.startswith("/api/") and self.role != "anon":
            extra["HTTP_AUTHORIZATION"] = f"Token {self.w.tokens[self.role]}"
        response = self.client.generic(method, path, b"", content_type="application/x-www-form-urlencoded", **extra)
        if "logout" in path and method == "POST":
            self.client = None  # signed out: sign in again for the next request
        return response


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def others_fingerprint(role: str, w: World) -> str:
    """Everything of the owners other than `role`, and every round's state: must not change."""
    users = [u for r, u in w.users.items() if r in ("a", "b") and r != role]
    rows = [list(Contribution.objects.filter(owner__user__in=users).order_by("pk").values_list("pk", "status")),
            list(PreferencePair.objects.filter(contribution__owner__user__in=users).order_by("pk")
                 .values_list("pk", "prompt")),
            list(Payout.objects.order_by("pk").values_list("pk", "amount", "status")),
            list(ValuationRound.objects.order_by("pk").values_list("pk", "status", "approved_at", "name")),
            list(get_user_model().objects.order_by("pk").values_list("pk", "password", "is_active", "is_staff"))]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def expected_get(pattern: Pattern, role: str):
    if pattern.name in ACCESS:
        return ACCESS[pattern.name][role]
    if pattern.route.startswith("/admin/"):
        if pattern.name in ("admin:login", "admin:logout"):
            return None  # the admin's own sign-in pages (the rate-limited one is "admin-login" above)
        return ADMIN_LOGIN if role != "staff" else None  # staff: anything but a 5xx
    pytest.fail(f"{pattern.route} ({pattern.name or 'unnamed'}) has no access policy: add it to ACCESS in {__file__}")


def methods_for(pattern: Pattern, role: str) -> tuple[str, ...]:
    """Every method, except where one answer stands for all: the Django admin turns away a non-staff
    caller before looking at the method, and staff are checked for 5xx only (GET and POST)."""
    if role == "staff":
        return ("GET", "POST")
    if pattern.route.startswith("/admin/") and pattern.name not in ACCESS:
        return ("GET", "POST", "DELETE")
    return METHODS


def _check(problems: list, ok: bool, message: str, kind: str) -> None:
    if not ok:
        problems.append((kind, message))


@pytest.mark.parametrize("role", ROLES)
def test_every_pattern_every_method(role, world):
    # staff: a superuser, so every admin page is reached too
    get_user_model().objects.filter(pk=world.users["staff"].pk).update(is_superuser=True)
    caller = Caller(role, world)
    forbidden = FORBIDDEN[role] + tuple(key for r, key in world.tokens.items() if r != role and role != "staff")
    before = others_fingerprint(role, world)
    problems, tried = [], 0
    # staff change things (a POST re-runs a round's data-quality stage): every GET first, on the world as built
    for only in ((("GET",), ("POST",)) if role == "staff" else (None,)):
        for pattern in all_patterns():
            tried += _request_pattern(caller, pattern, role, forbidden, problems, only)
    if role != "staff":
        _check(problems, others_fingerprint(role, world) == before, f"{role}'s requests changed others' data", "write")
    _report(role, tried, problems)
    assert tried > 200
    assert not problems, "\n".join(message for _, message in problems[:30])


def _request_pattern(caller: Caller, pattern: Pattern, role: str, forbidden: tuple, problems: list,
                     only: tuple[str, ...] | None) -> int:
    """Every variant × method of one pattern (or only those methods); returns the requests made."""
    statuses, tried, world = {}, 0, caller.w
    for whose in variants(pattern, role):
        path = fill(pattern, whose, world)
        for method in methods_for(pattern, role):
            if only is not None and method not in only:
                continue
            response = caller.request(method, path)
            tried += 1
            where = f"{role} {method} {path} ({pattern.name or pattern.route})"
            _check(problems, response.status_code < 500, f"{where}: {response.status_code}", "server_error")
            leaked = [m for m in forbidden if m in body_of(response)]
            _check(problems, not leaked, f"{where} shows {leaked}", "leak")
            statuses[whose, method] = response.status_code
            if method == "GET" and (whose == "shared" or (whose == "a" and "round_id" not in pattern.params)):
                expected = expected_get(pattern, role)
                if expected is not None:
                    _check(problems, _status_is(response, expected), f"{where}: {response.status_code} "
                           f"{response.get('Location', '')}, expected {expected}", "access")
    if role != "staff" and "missing" in variants(pattern):
        for whose in ("a", "b"):
            for method in methods_for(pattern, role) if whose != role else ():
                _check(problems, statuses[whose, method] == statuses["missing", method],
                       f"{role} {method} {pattern.route} with {whose}'s object answers {statuses[whose, method]}, "
                       f"a missing one {statuses['missing', method]}: the id leaks", "id_leak")
    return tried


def _status_is(response, expected) -> bool:
    code, prefix = (expected, None) if isinstance(expected, int) else expected
    return response.status_code == code and (prefix is None or response["Location"].startswith(prefix))


def _report(role: str, tried: int, problems: list) -> None:
    """ISOLATION_REPORT=path (bench/reliability.py): requests tried and problems found, per role."""
    path = os.environ.get("ISOLATION_REPORT")
    if not path:
        return
    report = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    report[role] = {"requests": tried, "patterns": len(all_patterns()),
                    **{kind: sum(1 for k, _ in problems if k == kind)
                       for kind in ("leak", "server_error", "id_leak", "access", "write")}}
    Path(path).write_text(json.dumps(report, indent=2))
