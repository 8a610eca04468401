"""A real round in a real browser, on the stack a newcomer runs: `manage.py serve` (gunicorn and one
Celery worker over the SQLite broker) on a fresh SQLite database file, nothing simulated.

Three owners of known quality (clean, noisy, adversarial synthetic pairs) and an eval set are loaded
by a setup script in the server's own environment; staff start the round through the web form; the
worker fine-tunes the tiny base model once per owner, scores and values; the page, never reloaded,
shows the progress of each stage as the worker reports it and, when the round is done, its charts. The
values the page shows are the ones in the database, in the known order; payouts are approved through
the confirmation and exported; the clean owner reads only their own statement; Ctrl-C stops the stack.

Slow (real fine-tunes: about a minute on 2 cores) and browser (Debian's chromium; skips with the reason
where it cannot be installed).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_dashboard_flow import downloaded, js, plotted, sign_in, start_round, text_of, wait_until
from tests.conftest import PASSWORD
from tests.test_concurrency import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
ROUND_SECONDS = 600  # three fine-tunes, four scoring passes and the values, on a loaded 2-core machine
OWNERS = {"clean": ("clean_mix", 11), "noisy": ("noisy", 12), "adversary": ("adversarial", 13)}
PAIRS = 60
SETUP = f"""
import io, json
from django.contrib.auth import get_user_model
from marketplace.payees import owner_set_status
from marketplace.services import contribution_create, eval_set_create, owner_create
from valuation.engine import synthetic

def jsonl(pairs):
    return io.BytesIO("".join(json.dumps({{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}}) + "\\n"
                              for p in pairs).encode())

get_user_model().objects.create_user(username="staff", password={PASSWORD!r}, is_staff=True)
for name, (kind, seed) in {OWNERS!r}.items():
    owner = owner_create(username=name, password={PASSWORD!r})
    owner_set_status(owner=owner, status="verified")
    contribution_create(owner=owner, file=jsonl(synthetic.owner_pairs(kind, {PAIRS}, seed)), filename=name + ".jsonl")
eval_set_create(name="heldout", file=jsonl(synthetic.eval_pairs(100, 0)), filename="heldout.jsonl")
"""


@pytest.fixture
def stack(tmp_path):
    """`manage.py serve` on a free port over a fresh database; yields (base url, database path, process, a
    function running another management command on the same database and artifacts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_")) and k != "DATABASE_URL"}
    database = tmp_path / "db.sqlite3"
    env.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=f"sqlite:///{database}",
               CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}", ARTIFACTS_DIR=str(tmp_path / "art"),
               CACHE_URL=f"filecache://{tmp_path}/cache",
               DJANGO_ALLOWED_HOSTS="127.0.0.1", DJANGO_DEBUG="False", PYTHONPATH=str(ROOT))
    manage = [sys.executable, "manage.py"]

    def run_manage(*args):  # a management command against this stack's database and artifacts
        subprocess.run([*manage, *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([*manage, "serve", "--addr", f"127.0.0.1:{port}", "--web-workers", "1"], cwd=ROOT,
                             env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(port, server, tmp_path / "serve.log")
        yield base, database, server, run_manage
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_for_server(port: int, server: subprocess.Popen, log: Path) -> None:
    import http.client

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"manage.py serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/login/", headers={"Host": "127.0.0.1"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"manage.py serve did not answer on {port}:\n{log.read_text()[-3000:]}")


def _rows(database: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(database) as conn:
        return conn.execute(sql, args).fetchall()


def _progress(driver) -> dict:
    """What the page shows now: status label and, per stage, 'done/total (pct%)'."""
    return js(driver, "const out = {status: document.getElementById('status-label').textContent.trim()};"
                      "document.querySelectorAll('[id^=p-][id$=-text]').forEach(e => out[e.id] = e.textContent.trim());"
                      "return out;")


def test_staff_run_a_real_round_and_watch_it_finish_in_the_browser(browser, stack, tiny_base_model):
    base, database, server, run_manage = stack
    run_manage("import_base_model", "--hf-dir", str(tiny_base_model), "--name", "tiny-demo")
    sign_in(browser, base, "staff")
    start_round(browser, base, "real-round", "tiny-demo")
    (round_id,) = _rows(database, "SELECT id FROM valuation_valuationround WHERE name = 'real-round'")[0]
    assert browser.current_url.endswith(f"/rounds/{round_id}/")
    js(browser, "window.sameDocument = true;")  # survives only if the page is never reloaded

    # --- the worker runs the round; the page follows by polling. Every distinct state it shows is kept.
    seen, deadline = [], time.monotonic() + ROUND_SECONDS
    while time.monotonic() < deadline:
        state = _progress(browser)
        if not seen or state != seen[-1]:
            seen.append(state)
            if len(seen) == 3:
                screenshot(browser, "real-01-round-running")
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    assert seen[-1]["status"] == "done", f"the round did not finish in {ROUND_SECONDS} s: {seen[-1]}\n" \
        + "\n".join(map(str, _rows(database, "SELECT status, error FROM valuation_valuationround")))
    statuses = [s["status"] for s in seen]
    assert "training owner models" in statuses, statuses  # the page showed the work while it happened
    training = [s.get("p-training-text") for s in seen if s["status"] == "training owner models"]
    assert any(t and not t.startswith("3/3") for t in training), f"no partial training progress shown: {training}"
    for stage in ("training", "scoring", "valuing"):
        assert seen[-1][f"p-{stage}-text"].endswith("(100%)"), seen[-1]
    wait_until(browser, lambda d: plotted(d, "values-chart"), "the values chart never rendered")
    assert js(browser, "return window.sameDocument === true"), "the page was reloaded"
    for chart in ("values-chart", "payouts-chart", "coalitions-chart", "interactions-chart"):
        assert plotted(browser, chart), f"{chart} has no plotly SVG"
    screenshot(browser, "real-02-round-done")

    # --- the values on the page are the database's, and they rank the owners by their data's known quality
    values = dict(_rows(database, "SELECT u.username, v.shapley FROM valuation_ownervalue v JOIN "
                                  "marketplace_dataowner o ON o.id = v.owner_id JOIN auth_user u ON u.id = o.user_id "
                                  "WHERE v.round_id = ?", round_id))
    assert values["clean"] > values["noisy"] > values["adversary"], values
    ticks = js(browser, "return [...document.querySelectorAll('#values-chart .ytick text')]"
                        ".sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)"
                        ".map(t => t.textContent)")
    assert ticks == ["clean", "noisy", "adversary"], ticks
    shown = json.loads(js(browser, "return JSON.stringify(document.getElementById('values-chart').data"
                                   ".filter(t => t.type === 'bar').flatMap(t => t.x))"))  # negatives: a trace of their own
    assert sorted(round(x, 6) for x in shown) == sorted(round(v, 6) for v in values.values())

    # --- approve through the confirmation, export, and the CSV is the database's split of the pool
    browser.find_element("id", "approve-payouts").click()
    alert = browser.switch_to.alert
    assert "cannot be changed" in alert.text
    alert.accept()
    wait_until(browser, lambda d: "Approved 3 payouts." in d.page_source, "approval message missing")
    browser.find_element("id", "export-csv").click()
    exported = {r["owner"]: r for r in csv.DictReader(downloaded(browser, f"round-{round_id}-payouts.csv").open())}
    stored = dict(_rows(database, "SELECT u.username, p.amount FROM valuation_payout p JOIN marketplace_dataowner o "
                                  "ON o.id = p.owner_id JOIN auth_user u ON u.id = o.user_id "
                                  "WHERE p.round_id = ? AND p.status = 'approved'", round_id))
    assert {name: Decimal(r["amount"]) for name, r in exported.items()} == {k: Decimal(str(v)) for k, v in stored.items()}
    assert sum(Decimal(r["amount"]) for r in exported.values()) == Decimal("1000.00")
    assert Decimal(exported["adversary"]["amount"]) == 0  # a negative value earns nothing
    screenshot(browser, "real-03-round-approved")

    # --- the clean owner's statement: their own amount, the round's total, nobody else
    sign_in(browser, base, "clean")
    browser.get(base + f"/rounds/{round_id}/statement/")
    page = text_of(browser, "main")
    assert exported["clean"]["amount"] in text_of(browser, "#statement-amount")
    assert "noisy" not in page and "adversary" not in page and exported["noisy"]["amount"] not in page
    screenshot(browser, "real-04-owner-statement")

    # --- Ctrl-C stops the web server and the worker, and says so
    os.killpg(server.pid, signal.SIGINT)
    assert server.wait(timeout=60) == 0
