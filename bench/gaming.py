"""Red team: every attack of issue 24 replayed end to end, without the defence and with it.

Each scenario starts from a fresh marketplace (an empty database; the demo's honest owners alice..erin
and the demo's held-out eval set uploaded again), uploads through the REST API (`POST
/api/contributions/` with a token from `POST /api/auth/token/`), creates the round through `POST
/api/rounds/` as staff and runs it with the runner (`services.round_execute`, what `manage.py
run_round` and the Celery workers run). Owner fine-tunes are cached by (base model, data, training
config) in one artifacts directory shared by the scenarios, so an honest owner trains once for the
whole bench and every round on the same players is the same computation.

"Without the defence" turns exactly one defence off inside the bench (the near-duplicate stage, the
length check and the upload rate limit are patched out; the payee grouping is dropped by verifying each
account as a payee of its own), so the row shows what that defence is worth; "with" runs the product as
shipped. The run ends with the issue's checks and exits non-zero if one fails.

    .venv/bin/python bench/gaming.py [--seed 0] [--only eval,cross,sybil,payee,long,oracle,split]
                                     [--work DIR] [--split-seeds 1]

Prints one markdown table and writes bench/results/gaming.json.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "gaming.json"
POOL = "1000.00"
PASSWORD = "bench-owner-pass-1"
HONEST = ("alice", "bob", "carol", "dave", "erin")
TOLERANCE = Decimal("0.01")  # honest owners' payouts must stay within this of the round without the attacker


def setup_django(work: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'gaming.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django
    from django.conf import settings
    from django.test.utils import setup_test_environment

    django.setup()
    settings.ARTIFACTS_DIR = work / "artifacts"  # shared by every scenario: honest fine-tunes are reused
    for name in ("marketplace", "valuation", "django.request"):
        # The "without" rows fail rounds on purpose; the table says so, a traceback would bury it.
        logging.getLogger(name).setLevel(logging.CRITICAL)
    setup_test_environment()


# --- a fresh marketplace, driven through its REST API ---------------------------------------------

class Market:
    """One fresh marketplace: a copy of a migrated empty database, an empty cache, the demo's honest
    owners and eval set uploaded through the API, and the staff account that runs rounds."""

    def __init__(self, work: Path, files: dict, base_model: Path, template: Path, name: str):
        import shutil

        from django.core.cache import cache
        from django.db import connections

        connections.close_all()
        shutil.copyfile(template, work / "gaming.sqlite3")
        cache.clear()
        self.files, self.base_model, self.name = files, base_model, name
        self._addresses = iter(f"198.51.100.{i}" for i in range(1, 255))
        self.admin_token = self._admin()
        self.eval_rows = read_jsonl(files["eval"])
        self.api("POST", "/api/eval-sets/", self.admin_token, data={"name": "demo-eval",
                 "file": upload_file(self.eval_rows, "eval.jsonl")}, expect=201)
        for username in HONEST:
            token = self.signup(username)
            self.upload(token, read_jsonl(files["owners"][username]), f"{username}.jsonl", expect=201)
            self.verify(username)

    # accounts
    def _admin(self) -> str:
        from django.contrib.auth import get_user_model

        get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)
        return self.token("staff", "203.0.113.1")

    def signup(self, username: str) -> str:
        """A new account through the public sign-up page (each from its own address, as a Sybil's would be)."""
        from django.test import Client

        address = next(self._addresses)
        response = Client(REMOTE_ADDR=address).post("/signup/", {
            "username": username, "password1": PASSWORD, "password2": PASSWORD, "email": ""})
        if response.status_code != 302:
            raise RuntimeError(f"signup of {username} answered {response.status_code}")
        return self.token(username, address)

    def token(self, username: str, address: str) -> str:
        from rest_framework.test import APIClient

        response = APIClient(REMOTE_ADDR=address).post("/api/auth/token/", {"username": username,
                                                                           "password": PASSWORD})
        if response.status_code != 200:
            raise RuntimeError(f"token for {username}: {response.status_code} {response.content[:200]}")
        return response.json()["token"]

    def verify(self, *usernames: str, payee: str | None = None) -> None:
        """Staff verify the accounts (`manage.py verify_owner`), as one payee when `payee` is named."""
        from django.core.management import call_command

        call_command("verify_owner", *usernames, *(["--payee", payee] if payee else []), stdout=io.StringIO())

    # requests
    def api(self, method: str, path: str, token: str, data=None, expect=None, fmt="multipart"):
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = getattr(client, method.lower())(path, data, format=fmt)
        if expect is not None and response.status_code != expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.content[:300]!r}")
        return response

    def upload(self, token: str, rows: list[dict], filename: str, expect=None):
        """POST /api/contributions/; returns (status, accepted pairs, refusal row errors)."""
        response = self.api("POST", "/api/contributions/", token, data={"file": upload_file(rows, filename)},
                            expect=expect)
        body = response.json()
        if response.status_code == 201:
            return response.status_code, body["n_pairs"], []
        return response.status_code, 0, body.get("errors", body.get("row_errors", []))

    def round(self, label: str, owners: list[str] | None = None) -> dict:
        """POST /api/rounds/ as staff, then the runner; returns status, payouts by account and exclusions."""
        from valuation import services
        from valuation.models import ValuationRound

        payload = {"name": f"{self.name}-{label}", "pool": POOL, "eval_set": "demo-eval",
                   "base_model": str(self.base_model), "seed": 0}
        if owners:
            payload["owners"] = owners
        created = self.api("POST", "/api/rounds/", self.admin_token, data=payload, expect=201, fmt="json").json()
        started = time.perf_counter()
        try:
            services.round_execute(round_id=created["id"])
        except Exception as exc:  # the "without" rows replay failures the defence removes
            logging.getLogger("bench").info("round %s failed: %s", label, exc)
        seconds = time.perf_counter() - started
        detail = self.api("GET", f"/api/rounds/{created['id']}/", self.admin_token, expect=200).json()
        payouts = {}
        if detail["status"] == ValuationRound.Status.DONE:
            body = self.api("GET", f"/api/rounds/{created['id']}/payouts/", self.admin_token, expect=200).json()
            payouts = {p["owner"]: Decimal(p["amount"]) for p in body["payouts"]}
        excluded = [row for row in (detail.get("length_check") or {}).get("excluded", [])]
        return {"status": detail["status"], "payouts": payouts, "excluded": excluded,
                "error": (detail.get("error") or "").splitlines()[:1], "seconds": round(seconds, 1)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def upload_file(rows: list[dict], filename: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    return SimpleUploadedFile(filename, body, content_type="application/jsonl")


def one_char_edit(rows: list[dict], mark: str = "!") -> list[dict]:
    """Each pair with one character added to the chosen answer: the issue's winning eval copy."""
    return [dict(r, chosen=str(r["chosen"]) + mark) for r in rows]


def fresh_rows(kind: str, n: int, seed: int) -> list[dict]:
    """Pairs nobody holds: the demo's generator on an owner block (`seed`) that demo seed 0 leaves unused
    (its owners draw blocks 0-4; bench/split_gain.py's fresh owner 85-86)."""
    from valuation.engine import synthetic

    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
            for p in synthetic.owner_pairs(kind, n, seed)]


def long_prompt_rows(n: int = 32, chars: int = 7_900) -> list[dict]:
    """The issue's round breaker: prompts of ~7,900 characters, under the upload limit in characters but
    far over any training length in tokens; each a different draw of the demo corpus's words, so they are
    not near-copies of each other."""
    import random

    from valuation.engine import synthetic

    vocabulary = sorted(set(synthetic.corpus_text(0).lower().split()))
    rows = []
    for i in range(n):
        rng = random.Random(i)
        text = " ".join(rng.choice(vocabulary) for _ in range(chars // 4))[:chars - 20]
        rows.append({"prompt": f"Question {i}: {text}?", "chosen": f"Answer {i}: water them early.",
                     "rejected": f"Answer {i}: never water them."})
    return rows


# --- the defences, turned off one at a time -------------------------------------------------------

def near_duplicates_off():
    """Upload keeps only the exact normalised-hash stage (what the marketplace had before issue 24)."""
    from contextlib import ExitStack
    from unittest import mock

    stack = ExitStack()
    stack.enter_context(mock.patch("marketplace.near_index.held_matches", lambda *a, **k: {}))
    stack.enter_context(mock.patch("marketplace.near_index.within_file", lambda *a, **k: {}))
    return stack


def length_check_off():
    """Rounds take every owner whatever their lengths (the round then fails in training, as measured)."""
    from contextlib import ExitStack
    from unittest import mock

    from valuation import lengths

    stack = ExitStack()
    stack.enter_context(mock.patch.object(lengths, "usable_or_refuse", lambda checks: checks))
    stack.enter_context(mock.patch.object(lengths.OwnerCheck, "reason", property(lambda self: "")))
    return stack


def upload_rate_off():
    from unittest import mock

    return mock.patch("marketplace.upload_rate.upload_wait", lambda owner: 0)


def nothing_off():
    from contextlib import nullcontext

    return nullcontext()


# --- the attacks ----------------------------------------------------------------------------------

def honest_drift(result: dict, reference: dict) -> Decimal:
    """The largest change of an honest owner's payout against the round without the attacker (a round that
    failed paid every honest owner nothing)."""
    if not reference["payouts"]:
        return Decimal("NaN")
    return max(abs(result["payouts"].get(u, Decimal(0)) - reference["payouts"].get(u, Decimal(0))) for u in HONEST)


def paid(result: dict, accounts) -> Decimal:
    return sum((result["payouts"].get(a, Decimal(0)) for a in accounts), Decimal(0))


def attack_copy(new_market, label: str, attacker: str, rows: list[dict], baseline: dict) -> dict:
    """One verified account uploads near-copies (one character added to `chosen`) and waits for a round."""
    row = {"attack": label}
    for side, defence in (("without", near_duplicates_off), ("with", nothing_off)):
        market = new_market(f"{label}-{side}")
        token = market.signup(attacker)
        market.verify(attacker)
        with defence():
            status, accepted, _ = market.upload(token, rows, f"{attacker}.jsonl")
        result = market.round(side)
        row[side] = {"accepted": accepted, "of": len(rows), "paid": paid(result, [attacker]),
                     "round": result["status"], "honest_drift": honest_drift(result, baseline)}
    return row


def one_account(new_market, label: str, account: str, rows: list[dict]) -> tuple[dict, Decimal]:
    """The reference: the same pairs uploaded once, by one verified account. Returns the round and its pay."""
    market = new_market(f"{label}-reference")
    token = market.signup(account)
    market.verify(account)
    market.upload(token, rows, f"{account}.jsonl", expect=201)
    result = market.round("one-account")
    return result, paid(result, [account])


def attack_sybil(new_market, rows: list[dict]) -> dict:
    """The same fresh pairs from three new accounts, each copy one character apart, each verified as a payee
    of its own (staff fooled): what the three take against one honest upload of the same pairs."""
    one, single = one_account(new_market, "sybil", "sybil1", rows)
    row = {"attack": "sybil: same 40 pairs from 3 accounts", "reference_paid": single}
    accounts = ("sybil1", "sybil2", "sybil3")
    for side, defence in (("without", near_duplicates_off), ("with", nothing_off)):
        market = new_market(f"sybil-{side}")
        accepted = 0
        for account, mark in zip(accounts, ("", "!", "?")):
            token = market.signup(account)
            market.verify(account)
            with defence():
                accepted += market.upload(token, one_char_edit(rows, mark) if mark else rows, f"{account}.jsonl")[1]
        result = market.round(side)
        total = paid(result, accounts)
        row[side] = {"accepted": accepted, "of": 3 * len(rows), "paid": total, "round": result["status"],
                     "gain": total / single if single else Decimal("NaN"), "honest_drift": honest_drift(result, one)}
    return row


def attack_payee_split(new_market, rows: list[dict]) -> dict:
    """One person's fresh pairs uploaded from two accounts. The defence: staff verify both accounts as one
    payee, so they are one player. Without it each account is a player (a payee of its own)."""
    one, single = one_account(new_market, "split", "pat", rows)
    half = len(rows) // 2
    row = {"attack": f"one owner's {len(rows)} fresh pairs from 2 accounts", "reference_paid": single}
    for side in ("without", "with"):
        market = new_market(f"split-{side}")
        accepted = 0
        for account, part in (("pat_a", rows[:half]), ("pat_b", rows[half:])):
            token = market.signup(account)
            accepted += market.upload(token, part, f"{account}.jsonl", expect=201)[1]
        if side == "with":
            market.verify("pat_a", "pat_b", payee="pat")
        else:
            market.verify("pat_a")
            market.verify("pat_b")
        result = market.round(side)
        total = paid(result, ["pat_a", "pat_b"])
        row[side] = {"accepted": accepted, "of": len(rows), "paid": total, "round": result["status"],
                     "gain": total / single if single else Decimal("NaN"), "honest_drift": honest_drift(result, one)}
    return row


def attack_long_prompts(new_market, baseline: dict) -> dict:
    """32 pairs of ~7,900-character prompts: accepted at upload, no pair trainable at any max_length."""
    row = {"attack": "long prompts (32 pairs of ~7,900 chars)"}
    for side, defence in (("without", length_check_off), ("with", nothing_off)):
        market = new_market(f"long-{side}")
        token = market.signup("lenny")
        market.verify("lenny")
        _, accepted, _ = market.upload(token, long_prompt_rows(), "lenny.jsonl")
        with defence():
            result = market.round(side)
        row[side] = {"accepted": accepted, "of": 32, "paid": paid(result, ["lenny"]), "round": result["status"],
                     "excluded": [e.get("reason", "") for e in result["excluded"]],
                     "honest_drift": honest_drift(result, baseline)}
    return row


def attack_oracle(new_market, files: dict) -> dict:
    """Refusals as an oracle: which candidate pairs does the marketplace hold, and are they eval data?
    300 candidates (100 eval pairs and 100 of alice's, each one character apart, and 100 fresh pairs) in
    three mixed files of 100, then as many one-row probes as the server answers."""
    import random

    from django.conf import settings

    from marketplace import selectors
    from marketplace.models import DataOwner

    eval_rows = one_char_edit(read_jsonl(files["eval"])[:100])
    alice_rows = one_char_edit(read_jsonl(files["owners"]["alice"])[:100])
    candidates = [("eval", r) for r in eval_rows] + [("owner", r) for r in alice_rows] + \
                 [("fresh", r) for r in fresh_rows("clean_mix", 100, 72)]
    random.Random(0).shuffle(candidates)
    row = {"attack": "refusals as an oracle (300 candidates, then 1-row probes)"}
    for side, defences in (("without", (near_duplicates_off, upload_rate_off)), ("with", (nothing_off,))):
        market = new_market(f"oracle-{side}")
        token = market.signup("oscar")
        market.verify("oscar")
        messages = {"eval": set(), "owner": set()}
        refused_rows = accepted = 0
        probes_answered = 0
        from contextlib import ExitStack

        with ExitStack() as stack:
            for defence in defences:
                stack.enter_context(defence())
            for start in range(0, 300, 100):
                chunk = candidates[start:start + 100]
                status, n, errors = market.upload(token, [r for _, r in chunk], f"probe-{start}.jsonl")
                accepted += n
                for error in errors:
                    if error.get("row"):
                        kind = chunk[error["row"] - 1][0]
                        refused_rows += 1
                        if kind in messages:
                            messages[kind].add(error["message"])
            for i in range(40):  # one held row at a time: the cheapest probe
                status, _, _ = market.upload(token, [eval_rows[i]], f"one-{i}.jsonl")
                if status == 429:
                    break
                probes_answered += 1
        oscar = DataOwner.objects.get(user__username="oscar")
        flagged = selectors.owner_refusals().get(oscar.pk, {}).get("probing", False)
        tells_eval = bool(messages["eval"]) and bool(messages["owner"]) and messages["eval"].isdisjoint(messages["owner"])
        row[side] = {"accepted": accepted, "of": 300, "refused_rows": refused_rows,
                     "distinct_messages": len(messages["eval"] | messages["owner"]), "tells_eval_apart": tells_eval,
                     "probes_answered": probes_answered, "probes_tried": 40, "flagged_to_staff": flagged,
                     "upload_rate": settings.UPLOAD_RATE}
    return row


def split_over_payees(seeds: int) -> list[dict]:
    """Fresh data split over k *verified payees* (k identities staff verified): what each payout policy pays
    the parts against the whole (bench/split_gain.py; its fine-tunes are cached under var/bench/split_gain)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import split_gain

    rows = split_gain.split_gain(seeds=tuple(range(seeds)), log=lambda *a, **k: None)
    print("\nFresh data (160 pairs) split over k verified payees; split gain = paid to the k parts / paid at k = 1")
    print(split_gain.summary_table(rows, list(HONEST)))
    return rows


# --- the run --------------------------------------------------------------------------------------

def money(value) -> str:
    return "—" if value is None or (isinstance(value, Decimal) and value.is_nan()) else f"{value:,.2f}"


def cell(side: dict) -> str:
    parts = [f"{side['accepted']}/{side['of']} accepted"]
    if "paid" in side:
        parts.append(f"paid {money(side['paid'])}")
    if "gain" in side:
        parts.append(f"gain {side['gain']:.3f}×")
    if side.get("round") and side["round"] != "done":
        parts.append(f"round {side['round']}")
    if side.get("excluded"):
        parts.append("excluded: “" + side["excluded"][0].split(": ")[0] + "”")
    if "distinct_messages" in side:
        parts.append(f"{side['refused_rows']} rows refused, {side['distinct_messages']} message(s), eval told apart: "
                     f"{'yes' if side['tells_eval_apart'] else 'no'}; probes answered {side['probes_answered']}/"
                     f"{side['probes_tried']}; flagged to staff: {'yes' if side['flagged_to_staff'] else 'no'}")
    return "; ".join(parts)


def print_table(rows: list[dict]) -> None:
    print("| attack | without the defence | with it | honest owners' largest change, without / with |")
    print("|---|---|---|---|")
    for row in rows:
        drifts = [money(row[side].get("honest_drift")) for side in ("without", "with")]
        print(f"| {row['attack']} | {cell(row['without'])} | {cell(row['with'])} | {drifts[0]} / {drifts[1]} |")


def checks(rows: list[dict]) -> list[tuple[str, bool]]:
    """Issue 24's bar for the defended side of every row that ran."""
    by = {row["attack"].split(",")[0].split(":")[0]: row["with"] for row in rows}
    out = []
    if "eval set" in by:
        out.append(("eval near-copies: 0 accepted, 0 paid", by["eval set"]["accepted"] == 0
                    and by["eval set"]["paid"] == 0))
    if "alice's pairs" in by:
        out.append(("cross-owner near-copies: 0 accepted", by["alice's pairs"]["accepted"] == 0))
    split = next((row["with"] for row in rows if "from 2 accounts" in row["attack"]), None)
    if split is not None:
        out.append(("a payee split over accounts gains nothing", split["gain"] <= 1))
    long = next((row["with"] for row in rows if row["attack"].startswith("long prompts")), None)
    if long is not None:
        out.append(("the long-prompt owner is excluded with a reason and the round is done",
                    bool(long["excluded"]) and long["round"] == "done"))
    drifts = [row["with"]["honest_drift"] for row in rows if "honest_drift" in row["with"]]
    out.append((f"honest owners within {TOLERANCE} of the round without the attacker",
                all(not d.is_nan() and d <= TOLERANCE for d in drifts)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="eval,cross,sybil,payee,long,oracle,split")
    parser.add_argument("--split-seeds", type=int, default=1, help="seeds of the split-over-payees game")
    parser.add_argument("--work", type=Path, help="keep the database and fine-tunes here (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="gaming-"))
    work.mkdir(parents=True, exist_ok=True)
    setup_django(work)
    import shutil

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from config.settings import base as production
    from valuation.engine import synthetic
    from valuation.engine.base_model import build_base_model

    # The limits an attacker meets in production (the test settings lift some of them).
    for name in ("UPLOAD_RATE", "UPLOAD_ROWS_PER_DAY", "SIGNUP_LIMIT", "LOGIN_FAILURE_LIMITS"):
        if hasattr(production, name):
            setattr(settings, name, getattr(production, name))
    started = time.perf_counter()
    files = synthetic.write_demo_files(work / "demo", seed=args.seed)
    base = build_base_model(files["corpus"], work / "base_model", seed=args.seed).path
    call_command("migrate", verbosity=0)
    connections.close_all()
    template = work / "template.sqlite3"
    shutil.copyfile(work / "gaming.sqlite3", template)

    def new_market(name: str) -> Market:
        return Market(work, files, base, template, name)

    baseline = new_market("baseline").round("honest-only")
    print(f"baseline (honest owners only): {baseline['status']}, "
          + ", ".join(f"{u} {money(baseline['payouts'].get(u))}" for u in HONEST), flush=True)
    only = set(args.only.split(","))
    rows = []
    eval_copy = one_char_edit(read_jsonl(files["eval"]))
    if "eval" in only:
        rows.append(attack_copy(new_market, "eval set, each pair + 1 character", "trent", eval_copy, baseline))
    if "cross" in only:
        alice_copy = one_char_edit(read_jsonl(files["owners"]["alice"]))
        rows.append(attack_copy(new_market, "alice's pairs, each + 1 character", "mallet", alice_copy, baseline))
    if "sybil" in only:
        rows.append(attack_sybil(new_market, fresh_rows("small_clean", 40, 70)))
    if "payee" in only:
        rows.append(attack_payee_split(new_market, fresh_rows("clean_helpful", 160, 71)))
    if "long" in only:
        rows.append(attack_long_prompts(new_market, baseline))
    if "oracle" in only:
        rows.append(attack_oracle(new_market, files))
    print()
    print_table(rows)
    split_rows = []
    if "split" in only:
        split_rows = split_over_payees(args.split_seeds)
    seconds = time.perf_counter() - started
    results = checks(rows)
    print()
    for label, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    print(f"\n{seconds / 60:.1f} min on {os.cpu_count()} cores ({platform.processor() or platform.machine()})")
    RESULTS.write_text(json.dumps({"seed": args.seed, "baseline": baseline, "rows": rows, "split": split_rows,
                                   "checks": dict(results), "seconds": seconds},
                                  indent=1, default=str) + "\n")
    if not all(ok for _, ok in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
