"""Dashboard latency under load: 1,000 owners × 50 rounds of results, 20 concurrent clients.

Builds a fresh SQLite database in a temp dir (never the project's own) with bulk_create: 1,000
owners with their uploads (some refused), 50 finished rounds each valuing all 1,000 owners
(values with confidence intervals, payouts split by the one split function; 40 rounds approved) —
150,000 result rows. Then starts a real server on a free loopback port as `manage.py serve` (and so
`make demo`) runs it — gunicorn, cores + 1 sync worker processes (`--threads`/`--workers` to vary it;
`--server runserver` for Django's dev server) — with DEBUG off, WhiteNoise serving static files and the
file cache every process shares (settings CACHES); 20 client threads request, over stdlib http.client
with session cookies and a fresh connection per request (`--keep-alive` to reuse one), in turn:

  overview  /overview/               staff: totals, rounds over time, paid per owner (1,000 owners)
  round     /rounds/<latest>/        staff: a 1,000-owner round (charts, first page of the owner table)
  owner     /rounds/my-payouts/      one of 50 owners: value and payout in all 50 rounds, chart and table

What makes this cheap: a finished round's results and the overview are cached fragments keyed by
their content (round id + approval; a digest of counts/last ids), an owner page's chart and table by a
hash of its rows — in the shared cache, so a page is drawn once for every worker process.

Each page is requested once first (cold, reported apart), then 3 × workers times more so every process
has imported what the pages need; then one client makes 30 requests (≈ service time) and the 20 clients
a bounded number each. Server and client CPU per request under load are measured from /proc. Loopback
only; the run stops by itself. The issue's target: p95 ≤ 150 ms.

    .venv/bin/python bench/dashboard_load.py [--owners 1000] [--rounds 50] [--clients 20] [--requests 30]

Prints a table and writes bench/results/dashboard_load.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "dashboard_load.json"
TARGET_P95_MS = 150.0
OWNER_SESSIONS = 50  # distinct owners whose pages the clients request


def configure(workdir: Path) -> dict:
    """The environment of both this process and the server: a temp database, DEBUG off."""
    env = {"DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}", "DJANGO_SETTINGS_MODULE": "config.settings.base",
           "DJANGO_DEBUG": "False", "ARTIFACTS_DIR": str(workdir / "artifacts"), "LOG_LEVEL": "WARNING",
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", "CACHE_URL": f"filecache://{workdir / 'cache'}"}
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return env


def build(n_owners: int, n_rounds: int, seed: int = 0) -> dict:
    """Bulk-create the marketplace; returns the ids the clients need."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from marketplace.models import Contribution, DataOwner, EvalSet
    from valuation.engine.payouts import split_pool
    from valuation.models import OwnerValue, Payout, RoundOwner, ValuationRound

    rng = random.Random(seed)
    User = get_user_model()
    password = make_password("bench-password")  # hashed once: 1,000 PBKDF2 runs would dominate the build
    User.objects.bulk_create([User(username=f"owner{i:04d}", password=password) for i in range(n_owners)])
    staff = User.objects.create(username="bench-staff", password=password, is_staff=True)
    users = list(User.objects.filter(is_staff=False).order_by("username"))
    DataOwner.objects.bulk_create([DataOwner(user=u) for u in users])
    owners = list(DataOwner.objects.order_by("user__username"))
    Contribution.objects.bulk_create(
        [Contribution(owner=o, original_name=f"{o.user.username}.jsonl", sha256=f"{i:064x}",
                      n_pairs=rng.randint(20, 400)) for i, o in enumerate(owners)]
        + [Contribution(owner=o, original_name="bad.jsonl", sha256="0" * 64, n_pairs=0,
                        status=Contribution.Status.REFUSED,
                        row_errors=[{"row": 3, "field": "chosen", "message": "empty"}]) for o in owners[::5]])
    eval_set = EvalSet.objects.create(name="bench-eval", original_name="eval.jsonl", sha256="e" * 64, n_pairs=200)
    start = timezone.now() - timedelta(days=2 * n_rounds)
    for k in range(n_rounds):
        _round(k, owners, eval_set, start + timedelta(days=2 * k), approved=k < n_rounds - 10, rng=rng,
               split_pool=split_pool, models=(ValuationRound, RoundOwner, OwnerValue, Payout))
    latest = ValuationRound.objects.order_by("-created_at").first()
    return {"staff": staff.pk, "owners": [o.user_id for o in rng.sample(owners, OWNER_SESSIONS)],
            "round": latest.pk}


def _round(k, owners, eval_set, created, *, approved: bool, rng, split_pool, models) -> None:
    ValuationRound, RoundOwner, OwnerValue, Payout = models
    n = len(owners)
    values = [rng.gauss(0.002, 0.003) for _ in range(n)]
    split = split_pool(values, Decimal("10000.00"), decimals=2)
    r = ValuationRound.objects.create(
        name=f"round-{k:02d}", eval_set=eval_set, eval_set_hash="e" * 64, base_model_path="/models/tiny",
        base_model_hash="b" * 64, pool=Decimal("10000.00"), status=ValuationRound.Status.DONE,
        estimator="permutation", estimator_used="permutation", n_evaluations=200_000, stopped_because="target",
        misallocation_bound=0.01, config={"beta": 0.1}, progress={s: {"done": 1, "total": 1} for s in
                                                                 ValuationRound.STAGES},
        timings={"training": 3600.0, "scoring": 600.0, "valuing": 30.0}, finished_at=created)
    ValuationRound.objects.filter(pk=r.pk).update(created_at=created, approved_at=created if approved else None)
    RoundOwner.objects.bulk_create([RoundOwner(round=r, owner=o, index=i, n_pairs=100, data_hash=f"{i:064x}")
                                    for i, o in enumerate(owners)])
    OwnerValue.objects.bulk_create([OwnerValue(round=r, owner=o, shapley=v, stderr=0.001, ci_low=v - 0.00196,
                                               ci_high=v + 0.00196) for o, v in zip(owners, values)])
    status = Payout.Status.APPROVED if approved else Payout.Status.DRAFT
    Payout.objects.bulk_create([Payout(round=r, owner=o, amount=a, share=Decimal(str(s)), currency="USD",
                                       status=status, approved_at=created if approved else None)
                                for o, a, s in zip(owners, split.amounts, split.shares)])


def session_cookie(user_id: int) -> str:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(pk=user_id))
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, port: int, env: dict, workers: int, log: Path, threads: int = 8) -> subprocess.Popen:
    python = sys.executable
    if kind == "gunicorn":
        cmd = [python, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers),
               "--threads", str(threads), "--log-level", "warning"]
    else:
        cmd = [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                              stderr=log.open("w"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            get(port, "/login/", "")
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"{kind} did not start on port {port}")


class Connection:
    """One client's keep-alive connection, as a browser holds one (reopened if the server closed it)."""

    def __init__(self, port: int):
        self.port, self.conn = port, None

    def get(self, path: str, cookie: str) -> tuple[int, float, int]:
        """One GET; returns (status, milliseconds, bytes)."""
        started = time.perf_counter()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
                response = self.conn.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, (time.perf_counter() - started) * 1000, len(body)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def get(port: int, path: str, cookie: str) -> tuple[int, float, int]:
    conn = Connection(port)
    try:
        return conn.get(path, cookie)
    finally:
        conn.close()


def run_load(port: int, pages: dict, clients: int, per_client: int, time_limit: float,
             keep_alive: bool = False) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in pages}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def client(index: int) -> None:
        names = list(pages)
        conn = Connection(port)
        try:
            for j in range(per_client):
                if time.monotonic() > deadline:
                    return
                name = names[(index + j) % len(names)]
                path, cookie = pages[name](index, j)
                status, ms, _ = conn.get(path, cookie)
                if not keep_alive:
                    conn.close()
                with lock:
                    (timings[name] if status == 200 else errors).append(ms if status == 200 else f"{name}:{status}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"non-200 responses: {errors[:10]}")
    return timings


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc (Linux)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarise(timings: dict[str, list[float]]) -> list[dict]:
    return [{"page": name, "requests": len(ms), "p50_ms": round(percentile(ms, 0.5), 1),
             "p95_ms": round(percentile(ms, 0.95), 1), "max_ms": round(max(ms), 1),
             "mean_ms": round(statistics.fmean(ms), 1), "pass": percentile(ms, 0.95) <= TARGET_P95_MS}
            for name, ms in timings.items() if ms]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30, help="per client, after the warm-up")
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1,
                        help="gunicorn processes (as `manage.py serve`: cores + 1)")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per process (1: sync workers, "
                                                                   "as `manage.py serve` runs them)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="reuse one connection per client (runserver then pays Nagle/delayed-ACK stalls)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds; the load stops by itself")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pdm-dashboard-bench-") as tmp:
        env = configure(Path(tmp))
        started = time.perf_counter()
        ids = build(args.owners, args.rounds)
        build_seconds = time.perf_counter() - started
        staff = session_cookie(ids["staff"])
        owners = [session_cookie(uid) for uid in ids["owners"]]
        pages = {
            "overview": lambda i, j: ("/overview/", staff),
            "round": lambda i, j: (f"/rounds/{ids['round']}/", staff),
            "owner": lambda i, j: ("/rounds/my-payouts/", owners[(i * 7 + j) % len(owners)]),
        }
        port = free_port()
        log = Path(tmp) / "server.log"
        server = start_server(args.server, port, env, args.workers, log, args.threads)
        try:
            warm = {name: get(port, *page(0, 0)) for name, page in pages.items()}
            for _ in range(3 * args.workers):  # each process imports what a page needs (plotly, …) on its first one
                for page in pages.values():
                    get(port, *page(0, 0))
            sequential = run_load(port, pages, 1, 3 * 10, args.time_limit, args.keep_alive)  # ~ service time
            cpu = (tree_cpu_seconds(server.pid), time.process_time(), time.perf_counter())
            loaded = run_load(port, pages, args.clients, args.requests, args.time_limit, args.keep_alive)
            n_loaded = sum(len(ms) for ms in loaded.values())
            cpu = {"server_ms_per_request": round(1000 * (tree_cpu_seconds(server.pid) - cpu[0]) / n_loaded, 2),
                   "client_ms_per_request": round(1000 * (time.process_time() - cpu[1]) / n_loaded, 2),
                   "requests_per_second": round(n_loaded / (time.perf_counter() - cpu[2]), 1)}
        except SystemExit:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=20)
    report = {
        "args": vars(args), "target_p95_ms": TARGET_P95_MS, "build_seconds": round(build_seconds, 1),
        "rows": {"owners": args.owners, "rounds": args.rounds, "values": args.owners * args.rounds,
                 "payouts": args.owners * args.rounds},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "warm_up_first_request_ms": {name: round(ms, 1) for name, (_, ms, _) in warm.items()},
        "page_bytes": {name: size for name, (_, _, size) in warm.items()},
        "one_client": summarise(sequential), "concurrent": summarise(loaded), "concurrent_cpu": cpu,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.owners} owners × {args.rounds} rounds (built in {build_seconds:.1f} s), server: {args.server}, "
          f"load average {report['machine']['loadavg'][0]:.2f} on {os.cpu_count()} CPUs")
    print(f"under load: {cpu['requests_per_second']} requests/s; CPU per request: server {cpu['server_ms_per_request']} ms, "
          f"this client process {cpu['client_ms_per_request']} ms")
    print(f"first request (cold cache): " + ", ".join(f"{k} {v} ms" for k, v in
                                                       report["warm_up_first_request_ms"].items()))
    for title, rows in (("1 client", report["one_client"]), (f"{args.clients} concurrent clients",
                                                             report["concurrent"])):
        print(f"\n{title}\n{'page':<10}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  p95 ≤ {TARGET_P95_MS:.0f}")
        for row in rows:
            print(f"{row['page']:<10}{row['requests']:>9}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['max_ms']:>9}  "
                  f"{'yes' if row['pass'] else 'NO'}")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
