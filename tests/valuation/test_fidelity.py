"""Fidelity checks of finished rounds: requests, permissions, the stored report and the round page's
view of it (fast, no training); a real check through the API task and through manage.py verify_round
on the tiny model (slow)."""
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from valuation import fidelity, services
from valuation.engine import synthetic
from valuation.models import FidelityReport, RoundOwner, ScoreCache, ValuationRound
from valuation.stages.scoring import score_eval_hash
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def done_round(fake_model_dir):
    """A round marked done without training: enough for requests and permissions."""
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 8, 1))
    add_owner("bob", synthetic.owner_pairs("noisy", 8, 2))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(6, 0))
    r = services.round_create(name="r", pool="100.00", eval_set=eval_set, base_model_dir=str(fake_model_dir))
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.DONE)
    r.refresh_from_db()
    return r


HEADLINE = {"utility": "preference_accuracy", "composition": "sum", "mode": "sequential", "matching": True, "n": 4,
            "pearson": 0.97, "spearman": 0.95, "mae": 0.02, "shapley_spearman": 1.0, "max_payout_diff": 0.04,
            "max_payout_diff_owner": "alice", "max_payout_diff_amount": "4.00", "currency": "USD"}


def finished_report(r) -> FidelityReport:
    names = ["alice", "bob"]
    coalitions = [{"mask": m, "size": m.bit_count(), "members": [n for i, n in enumerate(names) if m >> i & 1],
                   "arithmetic": {"sum": {"preference_accuracy": 0.5 + 0.1 * m}},
                   "trained": {"sequential": {"preference_accuracy": 0.5 + 0.09 * m}}} for m in range(4)]
    return FidelityReport.objects.create(round=r, n_coalitions=4, exhaustive=True, status=FidelityReport.Status.DONE,
                                         headline=HEADLINE, coalitions=coalitions,
                                         correlations=[dict(HEADLINE)], shapley=[{"owners": ["alice", "bob"]}])


def test_staff_queues_a_check_after_commit(api_staff, done_round, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_staff.post(f"/api/rounds/{done_round.pk}/verify/", {"mode": "sequential"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["mode"] == "sequential"
    assert body["n_coalitions"] == 4 and body["exhaustive"] is True  # 2 owners: all 2^2 coalitions by default
    assert len(callbacks) == 1
    again = api_staff.post(f"/api/rounds/{done_round.pk}/verify/", {}, format="json")
    assert again.status_code == 400 and "already queued or running" in str(again.json())


@pytest.mark.parametrize("payload, fragment", [
    ({"mode": "vibes"}, "mode"),
    ({"coalitions": 0}, "coalitions"),
])
def test_bad_verify_requests_get_400(api_staff, done_round, payload, fragment):
    response = api_staff.post(f"/api/rounds/{done_round.pk}/verify/", payload, format="json")
    assert response.status_code == 400 and fragment in str(response.json())
    assert not FidelityReport.objects.exists()


def test_only_finished_rounds_with_enough_coalitions_can_be_verified(done_round):
    ValuationRound.objects.filter(pk=done_round.pk).update(status=ValuationRound.Status.TRAINING)
    done_round.refresh_from_db()
    with pytest.raises(ValidationError, match="only a finished round"):
        fidelity.fidelity_request(valuation_round=done_round, queue=False)
    done_round.status = ValuationRound.Status.DONE
    with pytest.raises(ValidationError, match="at least 4 coalitions"):
        fidelity.fidelity_request(valuation_round=done_round, coalitions=3, queue=False)
    assert fidelity.fidelity_request(valuation_round=done_round, coalitions=99, queue=False).n_coalitions == 4


def test_owners_cannot_verify_and_see_only_the_correlations(api_staff, done_round, client):
    owner = RoundOwner.objects.get(round=done_round, owner__user__username="alice").owner
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(owner.user)
    assert api.post(f"/api/rounds/{done_round.pk}/verify/", {}, format="json").status_code == 403
    assert api.get(f"/api/rounds/{done_round.pk}/fidelity/").status_code == 404  # no check yet
    assert api_staff.get(f"/api/rounds/{done_round.pk}/fidelity/").status_code == 404
    report = finished_report(done_round)
    seen = api.get(f"/api/rounds/{done_round.pk}/fidelity/").json()
    assert seen["id"] == report.pk and seen["correlations"][0]["spearman"] == 0.95
    assert "shapley" not in seen and "coalitions" not in seen
    full = api_staff.get(f"/api/rounds/{done_round.pk}/fidelity/").json()
    assert full["headline"]["max_payout_diff_amount"] == "4.00" and len(full["coalitions"]) == 4


def test_the_round_page_gets_the_latest_finished_check(done_round):
    assert done_round.fidelity is None
    report = finished_report(done_round)
    FidelityReport.objects.create(round=done_round, n_coalitions=4, status=FidelityReport.Status.RUNNING)
    page = ValuationRound.objects.get(pk=done_round.pk).fidelity
    assert page["report_id"] == report.pk and page["mode"] == "sequential" and page["metric"] == "preference accuracy"
    assert page["summary"]["Spearman ρ"] == 0.95
    assert page["rows"][3] == {"label": "{alice, bob}", "mask": 3, "trained": pytest.approx(0.77),
                               "composed": pytest.approx(0.8)}
    assert "sum composition vs. sequential DPO on 4 coalitions (all)" in page["note"] and "LoRA" not in page["note"]
    FidelityReport.objects.filter(pk=report.pk).update(trainings={"method": {"fine_tune": "lora"}})
    assert "trained as LoRA adapters" in ValuationRound.objects.get(pk=done_round.pk).fidelity["note"]


def test_verify_round_prints_the_correlation_table(done_round):
    from valuation.management.commands.verify_round import format_report

    report = finished_report(done_round)
    report.trainings = {"trained": 2, "reused": 2, "seconds": 5.0, "total_seconds": 7.5}
    text = format_report(report)
    assert "4 coalitions (all), 2 models trained now, 2 found on disk" in text and "round" not in text.split("\n")[2]
    report.trainings["method"] = {"fine_tune": "lora", "lora": {"r": 8, "alpha": 16}, "sequential": "merged stages"}
    assert "LoRA round (r 8, α 16)\n  sequential: merged stages\nutility" in format_report(report)
    assert "preference_accuracy sum   sequential *   +0.970   +0.950  0.0200  +1.000      0.040" in text
    assert "largest payout difference 4.0% of the pool (4.00 USD, alice)" in text
    with pytest.raises(CommandError, match="no round 'nope'"):
        call_command("verify_round", "nope")


# --- a real check on the tiny model (slow) -------------------------------------------------------------

@pytest.fixture
def trained_round(tiny_base_model, isolated_artifacts):
    add_owner("clean", synthetic.owner_pairs("clean_mix", 32, 31))
    add_owner("adversary", synthetic.owner_pairs("adversarial", 24, 32))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(40, 2))
    r = services.round_create(name="checked", pool="500.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1})
    return services.round_execute(round_id=r.pk)


@pytest.mark.slow
def test_verify_through_the_api_task_and_the_command(trained_round, api_staff, django_capture_on_commit_callbacks):
    from valuation.tasks import round_verify_task

    with django_capture_on_commit_callbacks(execute=False):
        response = api_staff.post(f"/api/rounds/{trained_round.pk}/verify/", {"mode": "both"}, format="json")
    round_verify_task(response.json()["id"])  # what the worker runs
    report = FidelityReport.objects.get(pk=response.json()["id"])
    assert report.status == FidelityReport.Status.DONE and report.exhaustive and report.error == ""
    assert report.trainings["trained"] == 2  # {clean, adversary} sequentially and pooled; singletons are the owners'
    assert report.progress == {"done": 2 + 2 + 2 * 3, "total": 10}
    assert len(report.coalitions) == 4 and len(report.correlations) == 8 and len(report.shapley) == 8
    values = {v.owner.name: v.shapley for v in trained_round.values.all()}
    for entry in report.coalitions:
        if entry["size"] <= 1:  # ∅ is π₀ and a singleton is the owner's model: no approximation at all
            for mode in ("sequential", "pooled"):
                assert entry["trained"][mode] == entry["arithmetic"]["sum"]
    sequential_sum = next(s for s in report.shapley if (s["utility"], s["composition"], s["mode"]) ==
                          ("preference_accuracy", "sum", "sequential"))
    assert sequential_sum["exact"] and sequential_sum["owners"] == ["adversary", "clean"]  # participant index order
    assert sequential_sum["arithmetic"] == [values["adversary"], values["clean"]]  # the round's own values, exactly
    h = report.headline
    assert (h["utility"], h["composition"], h["mode"], h["n"]) == ("preference_accuracy", "sum", "sequential", 4)
    assert Decimal(h["max_payout_diff_amount"]) == (Decimal(str(h["max_payout_diff"])) * 500).quantize(Decimal("0.01"))
    coalition_models = {entry["models"]["sequential"] for entry in report.coalitions if entry["size"] == 2}
    # base, 2 owners, {adversary, clean} sequential and pooled
    assert ScoreCache.objects.filter(eval_hash=score_eval_hash(trained_round)).count() == 3 + 2
    assert trained_round.fidelity["report_id"] == report.pk

    out = StringIO()
    call_command("verify_round", "checked", "--mode", "sequential", "--json", stdout=out)
    again = json.loads(out.getvalue())
    assert again["trainings"]["trained"] == 0 and again["trainings"]["reused"] == 3  # all on disk already
    assert {e["models"]["sequential"] for e in again["coalitions"] if e["size"] == 2} == coalition_models
    assert [r["spearman"] for r in again["correlations"]] == [
        r["spearman"] for r in report.correlations if r["mode"] == "sequential"]
    assert FidelityReport.objects.filter(round=trained_round).count() == 2


@pytest.mark.slow
def test_verify_command_refuses_a_round_whose_data_changed(trained_round):
    from marketplace.models import PreferencePair

    pair = PreferencePair.objects.filter(contribution__owner__user__username="clean").first()
    PreferencePair.objects.filter(pk=pair.pk).update(chosen=pair.chosen + " Really.")
    with pytest.raises(CommandError, match="clean's data changed since the round ran"):
        call_command("verify_round", str(trained_round.pk), stdout=StringIO())
    assert FidelityReport.objects.get(round=trained_round).status == FidelityReport.Status.FAILED


@pytest.fixture
def lora_round(tiny_base_model, isolated_artifacts):
    add_owner("clean", synthetic.owner_pairs("clean_mix", 16, 31))
    add_owner("adversary", synthetic.owner_pairs("adversarial", 12, 32))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(24, 2))
    r = services.round_create(name="lora", pool="500.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1, "use_lora": True, "lora_r": 4, "lora_alpha": 8,
                                        "learning_rate": 5e-3})
    return services.round_execute(round_id=r.pk)


@pytest.mark.slow
def test_verify_a_lora_round_pooled_and_sequential(lora_round, isolated_artifacts):
    out = StringIO()
    call_command("verify_round", "lora", stdout=out)
    report = FidelityReport.objects.get(round=lora_round)
    assert report.status == FidelityReport.Status.DONE and report.error == "" and report.exhaustive
    t = report.trainings
    assert t["trained"] == 2 and t["merged"] == 1  # {adversary, clean} both ways; owner 0 merged as the parent
    assert t["method"]["fine_tune"] == "lora" and t["method"]["sequential_stages"] == "lora_merged"
    assert "LoRA round (r 4, α 8)" in out.getvalue() and "merge_and_unload" in out.getvalue()
    for entry in report.coalitions:
        if entry["size"] <= 1:  # ∅ is π₀, a singleton the owner's own adapter: exact in both modes
            for mode in ("sequential", "pooled"):
                assert entry["trained"][mode] == entry["arithmetic"]["sum"]
    pair = next(e for e in report.coalitions if e["size"] == 2)
    assert pair["models"]["sequential"] != pair["models"]["pooled"]
    assert ScoreCache.objects.filter(eval_hash=score_eval_hash(lora_round)).count() == 3 + 2
    assert not list((isolated_artifacts / "coalition_models").glob(".merged-*"))  # scratch merges removed
