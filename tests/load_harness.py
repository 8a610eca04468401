"""Concurrent uploaders and approvers over loopback HTTP against a real gunicorn server.

`run(database_url, port, root)` migrates the database, creates 50 owners with API tokens and a finished
round with draft payouts (one subprocess, the project's own services), starts gunicorn (2 workers × 8
threads), then 50 threads each POST 20 files to /api/contributions/ at once. Ten files of the run
deliberately share a pair with another owner's file posted at about the same moment (owner k's file 7
and owner k+1's file 8): exactly one of each two must be accepted. Finally 8 threads POST
/api/rounds/{id}/approve/ at the same instant: exactly one may succeed.

It checks the database afterwards, not the responses alone: every 201 is an accepted contribution with
all its pairs, every 400 left no pair, no pair is stored twice, nothing answered 5xx.
Used by tests/test_concurrency.py (SQLite WAL and PostgreSQL) and bench/reliability.py.
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPLOADERS, FILES, PAIRS = 50, 20, 5
CONTESTED = (7, 8)  # owner k's file 7 and owner k+1's file 8 both hold contested pair k
APPROVERS = 8

SETUP = """
import json, sys
from decimal import Decimal
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from marketplace.models import EvalSet
from marketplace.services import owner_create
from valuation.models import Payout, RoundOwner, ValuationRound
owners = [owner_create(username=f"up{i:02d}") for i in range(int(sys.argv[1]))]
staff = get_user_model().objects.create_user(username="approver", is_staff=True)
ev = EvalSet.objects.create(name="load-eval", original_name="e.jsonl", sha256="e" * 64, n_pairs=1)
r = ValuationRound.objects.create(name="load-round", eval_set=ev, eval_set_hash="e" * 64, base_model_path="/m",
                                  base_model_hash="b" * 64, pool=Decimal("100.00"), status="done")
for i, (owner, amount) in enumerate(zip(owners[:3], ("50.00", "30.00", "20.00"))):
    RoundOwner.objects.create(round=r, owner=owner, index=i, n_pairs=1, data_hash=str(i) * 64)
    Payout.objects.create(round=r, owner=owner, amount=Decimal(amount), share=Decimal(amount) / 100, currency="USD")
print(json.dumps({"tokens": [Token.objects.create(user=o.user).key for o in owners],
                  "staff": Token.objects.create(user=staff).key, "round": r.pk}))
"""

CHECK = """
import json
import django
django.setup()
from django.db.models import Count, Sum
from marketplace.models import Contribution, PreferencePair
from valuation.models import Payout, ValuationRound
accepted = Contribution.objects.filter(status="accepted")
r = ValuationRound.objects.get(name="load-round")
print(json.dumps({
    "accepted": {str(c.pk): [c.owner.user.username, c.n_pairs, c.pairs.count()] for c in accepted},
    "refused": {str(c.pk): c.pairs.count() for c in Contribution.objects.filter(status="refused")},
    "pairs": PreferencePair.objects.count(),
    "distinct_hashes": PreferencePair.objects.values("content_hash").distinct().count(),
    "prompts": list(PreferencePair.objects.values_list("prompt", flat=True)),
    "approved_rows": Payout.objects.filter(round=r, status="approved").count(),
    "approval_times": len(set(Payout.objects.filter(round=r).values_list("approved_at", flat=True))),
    "paid": str(Payout.objects.active().filter(round=r).aggregate(s=Sum("amount"))["s"]),
}))
"""


@dataclass
class Outcome:
    statuses: Counter = field(default_factory=Counter)
    responses: dict = field(default_factory=dict)  # (uploader, file) → (status, contribution id or None)
    approvals: list = field(default_factory=list)
    seconds: float = 0.0
    problems: list = field(default_factory=list)
    db: dict = field(default_factory=dict)


def fresh_postgres(url: str) -> str:
    """A new, empty database `<name>_load` beside the one `url` names (dropped first if left over)."""
    import psycopg

    base, _, name = url.rpartition("/")
    load = f"{name}_load"
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:  # the server's own db
        conn.execute(f'DROP DATABASE IF EXISTS "{load}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{load}"')
    return f"{base}/{load}"


def env_for(database_url: str, root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=database_url, PYTHONPATH=str(ROOT),
               ARTIFACTS_DIR=str(root / "artifacts"), CACHE_URL=f"filecache://{root}/cache", CELERY_BROKER_URL="memory://",
               DJANGO_ALLOWED_HOSTS="127.0.0.1")
    return env


def pair(tag: str) -> dict:
    return {"prompt": f"{tag} question?", "chosen": f"{tag} a careful answer", "rejected": f"{tag} a sloppy answer"}


def file_for(run: str, uploader: int, number: int) -> bytes:
    records = [pair(f"{run} u{uploader} f{number} p{k}") for k in range(PAIRS - 1)]
    if number == CONTESTED[0]:
        records.append(pair(f"{run} contested {uploader}"))
    elif number == CONTESTED[1]:
        records.append(pair(f"{run} contested {(uploader - 1) % UPLOADERS}"))
    else:
        records.append(pair(f"{run} u{uploader} f{number} p{PAIRS - 1}"))
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/jsonl\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(conn, path: str, token: str, body: bytes = b"", content_type: str = "application/json"):
    conn.request("POST", path, body=body, headers={"Authorization": f"Token {token}", "Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.read()


def start_server(database_url: str, port: int, root: Path) -> tuple[subprocess.Popen, dict]:
    env = env_for(database_url, root)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    setup = subprocess.run([sys.executable, "-c", SETUP, str(UPLOADERS)], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True, timeout=600)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", "2", "--threads", "8", "--timeout", "120", "--log-level", "warning"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(root / "gunicorn.log", "w"))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/login/")
            if conn.getresponse().status == 200:
                return server, json.loads(setup.stdout.strip().splitlines()[-1])
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"gunicorn did not answer on port {port}: {(root / 'gunicorn.log').read_text()[-2000:]}")


def run(database_url: str, port: int, root: Path) -> Outcome:
    root.mkdir(parents=True, exist_ok=True)
    server, ids = start_server(database_url, port, root)
    outcome, run_tag = Outcome(), uuid.uuid4().hex[:8]
    try:
        start = threading.Barrier(UPLOADERS)
        threads = [threading.Thread(target=_uploader, args=(i, ids["tokens"][i], port, run_tag, start, outcome))
                   for i in range(UPLOADERS)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcome.seconds = time.perf_counter() - began
        _approve_at_once(port, ids, outcome)
    finally:
        server.terminate()
        server.wait(timeout=60)
    check = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env_for(database_url, root), check=True,
                           capture_output=True, text=True, timeout=600)
    outcome.db = json.loads(check.stdout.strip().splitlines()[-1])
    outcome.problems = verify(outcome, run_tag)
    return outcome


def _uploader(i: int, token: str, port: int, run_tag: str, start: threading.Barrier, outcome: Outcome) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start.wait()
    for j in range(FILES):
        body, content_type = multipart(file_for(run_tag, i, j), f"u{i}-f{j}.jsonl")
        try:
            status, raw = post(conn, "/api/contributions/", token, body, content_type)
        except (OSError, http.client.HTTPException) as exc:
            status, raw = 599, str(exc).encode()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        data = json.loads(raw) if raw[:1] == b"{" else {}
        outcome.statuses[status] += 1
        outcome.responses[i, j] = (status, data.get("id"))


def _approve_at_once(port: int, ids: dict, outcome: Outcome) -> None:
    start = threading.Barrier(APPROVERS)

    def approve():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        outcome.approvals.append(post(conn, f"/api/rounds/{ids['round']}/approve/", ids["staff"])[0])
    threads = [threading.Thread(target=approve) for _ in range(APPROVERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def verify(outcome: Outcome, run_tag: str) -> list[str]:
    problems, db = [], outcome.db
    if any(s >= 500 for s in outcome.statuses):
        problems.append(f"server errors: {dict(outcome.statuses)}")
    for (i, j), (status, cid) in outcome.responses.items():
        if status == 201 and (str(cid) not in db["accepted"] or db["accepted"][str(cid)][1:] != [PAIRS, PAIRS]):
            problems.append(f"uploader {i} file {j}: 201 but contribution {cid} is not stored whole (lost rows)")
        elif status != 201 and not (j in CONTESTED and status == 400):
            problems.append(f"uploader {i} file {j}: {status} for a file nobody else holds")
    if len(db["accepted"]) != sum(1 for s, _ in outcome.responses.values() if s == 201):
        problems.append("accepted contributions in the database and 201 responses differ")
    if any(n for n in db["refused"].values()):
        problems.append("a refused upload stored pairs")
    if db["pairs"] != db["distinct_hashes"] or db["pairs"] != len(db["accepted"]) * PAIRS:
        problems.append(f"{db['pairs']} pairs stored, {db['distinct_hashes']} distinct, "
                        f"{len(db['accepted'])} accepted files of {PAIRS}")
    for k in range(UPLOADERS):
        held = sum(p == f"{run_tag} contested {k} question?" for p in db["prompts"])
        a = outcome.responses[k, CONTESTED[0]][0]
        b = outcome.responses[(k + 1) % UPLOADERS, CONTESTED[1]][0]
        if held != 1 or sorted((a, b)) != [201, 400]:
            problems.append(f"contested pair {k}: stored {held}×, answers {a} and {b} (want exactly one 201)")
    if sorted(outcome.approvals) != [200] + [400] * (APPROVERS - 1):
        problems.append(f"approvals at once answered {sorted(outcome.approvals)}: want one 200")
    if db["approved_rows"] != 3 or db["approval_times"] != 1 or Decimal(db["paid"]) != Decimal("100"):
        problems.append(f"approval wrote {db['approved_rows']} rows at {db['approval_times']} times, paid {db['paid']}")
    return problems


def summary(outcome: Outcome) -> dict:
    db = outcome.db
    lost = sum(1 for (status, cid) in outcome.responses.values()
               if status == 201 and db["accepted"].get(str(cid), [None, 0, 0])[2] != PAIRS)
    return {"uploads": len(outcome.responses), "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
            "server_errors": sum(v for k, v in outcome.statuses.items() if k >= 500), "lost_rows": lost * PAIRS,
            "pairs_stored": db["pairs"], "duplicate_pairs": db["pairs"] - db["distinct_hashes"],
            "contested_accepted_once": UPLOADERS - sum("contested pair" in p for p in outcome.problems),
            "approvals": dict(Counter(outcome.approvals)), "seconds": round(outcome.seconds, 1),
            "uploads_per_second": round(len(outcome.responses) / outcome.seconds, 1) if outcome.seconds else None,
            "problems": outcome.problems}
