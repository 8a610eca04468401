"""End to end in headless Chromium against a live server: an owner signs up and uploads (a refused file,
then a good one); staff start a round through the form and watch it finish; charts render; payouts are
approved and exported; each owner sees only their own statement.

The Celery worker is SIMULATED: the round is created by the real web form (which queues a task the
test settings never run), then this test plays the worker — it moves the round through its stages'
progress with ORM updates and finally writes results (values, coalition utilities, draft payouts via
the real split function) in one transaction, as the valuing stage does. No model is trained.
"""
from __future__ import annotations

import csv
import io
import shutil
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from marketplace.models import DataOwner
from marketplace.payees import owner_set_status
from marketplace.services import contribution_create, eval_set_create, owner_create
from tests.browser.conftest import screenshot
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs, register_model_dir, verified_owner
from tests.dashboards import round_for, write_data_quality, write_objective_values, write_results
from valuation.models import Payout, ValuationRound

pytestmark = pytest.mark.browser
WAIT = 20  # seconds; the page polls every second


def wait_until(driver, condition, message: str, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message)


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def fill(driver, field_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, field_id)
    element.clear()
    element.send_keys(value)


def submit(driver, form_css: str = "main form") -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]").click()


def sign_in(driver, base: str, username: str, password: str = PASSWORD) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/login/")
    fill(driver, "id_username", username)
    fill(driver, "id_password", password)
    submit(driver)
    wait_until(driver, lambda d: "/login/" not in d.current_url, f"{username} could not sign in")


def start_round(driver, base: str, name: str, base_model: str, pool: str = "1000.00",
                eval_set: str = "heldout", preset: str | None = None) -> None:
    """Fill in and submit the new-round form as a signed-in staff user (``base_model``: a registered
    base model's name; ``preset``: the training preset, else the form's own choice); wait for the round's page."""
    from selenium.webdriver.support.ui import Select

    driver.get(base + "/rounds/new/")
    fill(driver, "id_name", name)
    fill(driver, "id_pool", pool)
    Select(driver.find_element("id", "id_base_model")).select_by_value(base_model)
    Select(driver.find_element("id", "id_eval_set")).select_by_value(eval_set)
    if preset is not None:
        Select(driver.find_element("id", "id_preset")).select_by_value(preset)
    submit(driver)
    wait_until(driver, lambda d: "/rounds/new/" not in d.current_url, f"round {name} was not created")


def downloaded(driver, name: str) -> Path:
    path = driver.download_dir / name
    wait_until(driver, lambda d: path.exists() and not (driver.download_dir / f"{name}.crdownload").exists(),
               f"{name} was not downloaded")
    return path


def plotted(driver, chart_id: str) -> bool:
    return bool(js(driver, f"return document.querySelectorAll('#{chart_id} svg.main-svg').length"))


def set_progress(valuation_round, status: str, progress: dict, timings: dict) -> None:
    """What the worker's stages write as they go (stages/common.py: set_status, report_progress)."""
    ValuationRound.objects.filter(pk=valuation_round.pk).update(status=status, progress=progress, timings=timings)


def wait_for_stage(driver, stage: str, done: int, total: int) -> None:
    pct = round(100 * done / total) if total else 0
    wait_until(driver, lambda d: text_of(d, f"#p-{stage}-text") == f"{done}/{total} ({pct}%)",
               f"{stage} never showed {done}/{total}")


def test_owner_uploads_staff_run_and_approve_a_round_owner_reads_statement(browser, live_server, tmp_path,
                                                                           staff_user, tiny_tokenizer_dir):
    base = live_server.url
    # --- an owner signs up and uploads: a file with a bad row is refused with its row, a good one accepted
    browser.get(base + "/signup/")
    fill(browser, "id_username", "carol")
    fill(browser, "id_password1", PASSWORD)
    fill(browser, "id_password2", PASSWORD)
    submit(browser)
    wait_until(browser, lambda d: d.current_url.endswith("/contributions/"), "sign-up did not land on uploads")
    bad = tmp_path / "carol-bad.jsonl"
    bad.write_bytes(jsonl_bytes(make_pairs(2, tag="carol") + [{"prompt": "p?", "chosen": "", "rejected": "no"}]))
    browser.find_element("id", "id_file").send_keys(str(bad))
    submit(browser, "form.card")
    wait_until(browser, lambda d: d.find_elements("css selector", "section.refusal"), "no refusal shown")
    refusal = text_of(browser, "section.refusal")
    assert "File refused — nothing was stored" in refusal and "3 chosen" in refusal and "empty" in refusal
    screenshot(browser, "01-owner-upload-refused")
    good = tmp_path / "carol.jsonl"
    good.write_bytes(jsonl_bytes(make_pairs(5, tag="carol")))
    browser.find_element("id", "id_file").send_keys(str(good))
    submit(browser, "form.card")
    wait_until(browser, lambda d: "Accepted 5 pairs from carol.jsonl" in d.page_source, "good file not accepted")
    screenshot(browser, "02-owner-upload-accepted")

    # --- the rest of the marketplace, set up directly: staff verify carol, two more verified owners, an eval
    # set, a model directory
    owner_set_status(owner=DataOwner.objects.get(user__username="carol"), status="verified")
    for username, tag in (("dave", "dave"), ("erin", "erin")):
        owner = verified_owner(username, password=PASSWORD)
        contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(make_pairs(4, tag=tag))), filename="d.jsonl")
    eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(6, tag="eval"))), filename="e.jsonl")
    model_dir = tmp_path / "model"  # a config and a tokenizer: enough to create a round (it is never run here)
    shutil.copytree(tiny_tokenizer_dir, model_dir)
    (model_dir / "config.json").write_text('{"model_type": "llama"}')
    register_model_dir("browser-model", model_dir)

    # --- staff start a round through the form
    sign_in(browser, base, staff_user.username)
    start_round(browser, base, "browser-round", "browser-model", preset="tiny")  # no weights for `auto` to count
    assert "queued" in browser.page_source
    valuation_round = ValuationRound.objects.get(name="browser-round")
    assert browser.current_url.endswith(f"/rounds/{valuation_round.pk}/")
    assert [p.owner.name for p in valuation_round.participants.order_by("index")] == ["carol", "dave", "erin"]
    js(browser, "window.sameDocument = true;")  # survives only if the page is never reloaded

    # --- the simulated worker moves the round along; the page follows by polling
    timings = {}
    set_progress(valuation_round, "training", {"training": {"done": 1, "total": 3}}, timings)
    wait_for_stage(browser, "training", 1, 3)
    assert text_of(browser, "#status-label") == "training owner models"
    timings["training"] = 42.0
    set_progress(valuation_round, "scoring", {"training": {"done": 3, "total": 3},
                                              "scoring": {"done": 2, "total": 4}}, timings)
    wait_for_stage(browser, "training", 3, 3)
    wait_for_stage(browser, "scoring", 2, 4)
    wait_until(browser, lambda d: text_of(d, "#t-training") == "42.0 s", "training time not shown")
    screenshot(browser, "03-round-progress")
    final = {"training": {"done": 3, "total": 3}, "scoring": {"done": 4, "total": 4},
             "valuing": {"done": 3, "total": 3}}
    valuation_round.config = dict(valuation_round.config, fidelity={
        "metric": "preference accuracy", "summary": {"max |difference|": 0.02},
        "rows": [{"label": "{carol}", "trained": 0.61, "composed": 0.62},
                 {"label": "{carol, dave}", "trained": 0.70, "composed": 0.68}]})
    valuation_round.save(update_fields=["config"])
    write_objective_values(valuation_round, {"helpfulness": [0.4, 0.1, -0.1], "harmlessness": [0.1, 0.2, 0.0]})
    write_results(valuation_round, [0.3, 0.1, -0.05], progress=final,
                  timings={"training": 42.0, "scoring": 7.5, "valuing": 0.25},
                  interactions=[[0, 0.02, -0.01], [0.02, 0, 0.0], [-0.01, 0.0, 0]])

    # --- progress reaches 100% and the charts appear, without anyone reloading the page
    wait_until(browser, lambda d: plotted(d, "values-chart"), "values chart never rendered")
    assert js(browser, "return window.sameDocument === true"), "the page was reloaded"
    for stage in ValuationRound.STAGES:
        bar = browser.find_element("id", f"p-{stage}")
        assert bar.get_attribute("value") == bar.get_attribute("max"), stage
        assert text_of(browser, f"#p-{stage}-text").endswith("(100%)")
    assert text_of(browser, "#status-label") == "done"
    assert text_of(browser, "#t-valuing") == "0.2 s" or text_of(browser, "#t-valuing") == "0.3 s"
    for chart in ("values-chart", "payouts-chart", "coalitions-chart", "interactions-chart", "signature-chart",
                  "fidelity-chart"):
        assert plotted(browser, chart), f"{chart} has no plotly SVG"
    assert js(browser, "return document.querySelectorAll('#values-chart .barlayer .point').length") == 3
    ticks = js(browser, "return [...document.querySelectorAll('#values-chart .ytick text')]"
                        ".sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)"
                        ".map(t => t.textContent)")
    assert ticks == ["carol", "dave", "erin"]  # highest value at the top
    assert js(browser, "return document.querySelectorAll('#coalitions-chart .scatterlayer .point').length") >= 8
    screenshot(browser, "04-round-done-charts")

    # --- approve (with the confirmation) and export
    browser.find_element("id", "approve-payouts").click()
    alert = browser.switch_to.alert
    assert "cannot be changed" in alert.text
    alert.accept()
    wait_until(browser, lambda d: "Approved 3 payouts." in d.page_source, "approval message missing")
    assert text_of(browser, "#payout-state").startswith("approved")
    assert Payout.objects.filter(round=valuation_round, status=Payout.Status.APPROVED).count() == 3
    browser.find_element("id", "export-csv").click()
    rows = list(csv.DictReader(downloaded(browser, f"round-{valuation_round.pk}-payouts.csv").open()))
    assert [(r["owner"], r["amount"], r["status"]) for r in rows] == [
        ("carol", "750.00", "approved"), ("dave", "250.00", "approved"), ("erin", "0.00", "approved")]
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("1000.00")
    screenshot(browser, "05-round-approved")

    # --- the owner sees their value over rounds and only their own statement
    sign_in(browser, base, "carol")
    browser.get(base + "/rounds/my-payouts/")
    wait_until(browser, lambda d: plotted(d, "history-chart"), "owner history chart never rendered")
    screenshot(browser, "06-owner-payouts")
    browser.find_element("link text", "view").click()
    wait_until(browser, lambda d: "/statement/" in d.current_url, "statement did not open")
    page = text_of(browser, "main")
    assert "750.00 USD" in text_of(browser, "#statement-amount") and "0.300000" in page
    assert "1000.00 USD" in page  # the round's total, the only number about anyone else
    assert "dave" not in page and "erin" not in page and "250.00" not in page
    screenshot(browser, "07-owner-statement")
    browser.find_element("id", "statement-csv").click()
    statement = list(csv.DictReader(downloaded(browser, f"round-{valuation_round.pk}-statement-carol.csv").open()))
    assert len(statement) == 1 and statement[0]["owner"] == "carol" and statement[0]["my_amount"] == "750.00"
    assert statement[0]["payout_status"] == "approved"
    browser.get(base + f"/rounds/{valuation_round.pk}/statement/?owner=dave")
    assert "Not Found" in browser.page_source and "250.00" not in browser.page_source


def _session_login(driver, base: str, user) -> None:
    """Sign in by session cookie (these tests are about pages, not the login form)."""
    client = Client()
    client.force_login(user)
    driver.get(base + "/login/")
    driver.delete_all_cookies()
    driver.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                       "path": "/"})


def _local_only(driver, base: str) -> list[str]:
    """Every resource the page loaded that did not come from our own server (should be none)."""
    names = js(driver, "return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not n.startswith(base) and not n.startswith("data:")]


def test_pages_fit_a_phone_and_load_nothing_from_outside(browser, live_server, staff_user):
    base = live_server.url
    team = [owner_create(username=name, password=PASSWORD) for name in ("alice", "bob", "mallory")]
    for owner in team:
        contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(make_pairs(3, tag=owner.name))),
                            filename=f"{owner.name}-data.jsonl")
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(3, tag="e"))),
                               filename="e.jsonl")
    rounds = [write_results(round_for(f"round-{k}", eval_set, team), [0.2 + 0.05 * k, 0.1, -0.02 * k])
              for k in range(3)]
    write_data_quality(rounds[-1], team, [0.02, 0.01, -0.03])
    browser.set_window_size(390, 844)  # a phone
    pages = [("round", staff_user, f"/rounds/{rounds[-1].pk}/", "values-chart"),
             ("overview", staff_user, "/overview/", "paid-chart"),
             ("my-payouts", team[0].user, "/rounds/my-payouts/", "history-chart"),
             ("contributions", team[0].user, "/contributions/", None),
             ("statement", team[0].user, f"/rounds/{rounds[0].pk}/statement/", None),
             ("data-quality", staff_user, f"/rounds/{rounds[-1].pk}/data-quality/", "cluster-chart"),
             ("my-pairs", team[0].user, f"/rounds/{rounds[-1].pk}/my-pairs/", "pair-value-chart")]
    for name, user, path, chart in pages:
        _session_login(browser, base, user)
        browser.get(base + path)
        if chart:
            wait_until(browser, lambda d: plotted(d, chart), f"{chart} did not render on {path}")
        overflow = js(browser, "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
        assert _local_only(browser, base) == [], path
        screenshot(browser, f"phone-{name}")
    browser.set_window_size(1280, 900)
    browser.get(base + "/api/docs/")
    wait_until(browser, lambda d: d.find_elements("css selector", ".swagger-ui .info"), "Swagger UI did not render")
    assert _local_only(browser, base) == []
