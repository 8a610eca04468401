"""A round's payout policy: chosen at creation (service, API, web form, CLI), recorded in its config,
and what the valuing stage splits the pool by (no training: scores are written into the cache)."""
from decimal import Decimal

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from valuation import services
from valuation.engine import synthetic
from valuation.engine.allocation import margin_share
from valuation.engine.payouts import split_pool
from valuation.models import RoundOwner, ValuationRound
from valuation.stages import run_valuing
from tests.valuation.conftest import add_eval_set
from tests.valuation.test_valuing_stage import market_with_scores

pytestmark = pytest.mark.django_db


@pytest.fixture
def eval_set():
    from tests.valuation.conftest import add_owner

    add_owner("alice", synthetic.owner_pairs("clean_helpful", 8, 1))
    return add_eval_set("eval", synthetic.eval_pairs(6, 0))


def test_default_is_clip_and_the_choice_is_recorded_in_the_config(eval_set, fake_model_dir):
    r = services.round_create(name="a", pool="10.00", eval_set=eval_set, base_model_dir=str(fake_model_dir))
    assert r.payout_policy == "clip" and r.config["payout_policy"] == "clip"
    r = services.round_create(name="b", pool="10.00", eval_set=eval_set, base_model_dir=str(fake_model_dir),
                              payout_policy="margin_share")
    r.refresh_from_db()
    assert r.payout_policy == "margin_share" and r.config["payout_policy"] == "margin_share"


@pytest.mark.parametrize("overrides, message", [
    ({"payout_policy": "proportional"}, "unknown payout policy 'proportional'"),
    ({"payout_policy": "margin_share", "utility": "reward"}, "needs a margin utility"),
])
def test_bad_policies_are_refused_and_nothing_is_written(eval_set, fake_model_dir, overrides, message):
    with pytest.raises(ValidationError) as info:
        services.round_create(name="r", pool="10.00", eval_set=eval_set, base_model_dir=str(fake_model_dir),
                              **overrides)
    assert message in "; ".join(info.value.messages)
    assert ValuationRound.objects.count() == 0 and RoundOwner.objects.count() == 0


@pytest.mark.parametrize("utility,composition", [("preference_accuracy", "sum"), ("bt_loglik", "mean")])
def test_valuing_pays_by_the_margin_share_and_keeps_the_shapley_values(fake_model_dir, utility, composition):
    r, D = market_with_scores(5, fake_model_dir, utility=utility, composition=composition,
                              payout_policy="margin_share")
    run_valuing(r)
    r.refresh_from_db()
    sizes = np.full(5, 4.0)
    expected = split_pool(margin_share(D, sizes=sizes, utility=utility, beta=0.1), Decimal("100.00"),
                          policy="margin_share").amounts
    payouts = {p.owner.name: p.amount for p in r.payouts.all()}
    assert [payouts[f"owner{i:02d}"] for i in range(5)] == pytest.approx(expected, abs=Decimal("1e-9"))
    assert sum(payouts.values()) == Decimal("100.00")
    # The values shown are still the round's Shapley values; only what the pool is split by changed.
    clip = split_pool([v.shapley for v in r.values.order_by("owner__user__username")], Decimal("100.00")).amounts
    assert clip != expected


def test_api_and_form_take_the_policy(api_staff, client, staff_user, eval_set, fake_model_dir):
    body = {"name": "api", "pool": "5.00", "eval_set": "eval", "base_model": str(fake_model_dir),
            "payout_policy": "margin_share"}
    r = api_staff.post("/api/rounds/", body, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["payout_policy"] == "margin_share" and r.json()["config"]["payout_policy"] == "margin_share"
    bad = api_staff.post("/api/rounds/", {**body, "name": "api2", "payout_policy": "nope"}, format="json")
    assert bad.status_code == 400 and "payout_policy" in bad.json()
    client.force_login(staff_user)
    form = {"name": "web", "pool": "5.00", "currency": "USD", "eval_set": "eval", "base_model": str(fake_model_dir),
            "utility": "bt_loglik", "composition": "mean", "estimator": "auto", "seed": 0,
            "payout_policy": "margin_share"}
    ok = client.post("/rounds/new/", form)
    assert ok.status_code == 302
    assert ValuationRound.objects.get(name="web").payout_policy == "margin_share"
    assert b"margin share" in client.get(ok["Location"]).content


def test_run_round_refuses_an_unknown_policy(eval_set, fake_model_dir):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown payout policy .nope."):
        call_command("run_round", name="cli", pool="1.00", base_model=str(fake_model_dir), eval_set="eval",
                     payout_policy="nope")
    assert ValuationRound.objects.count() == 0


@pytest.mark.slow
def test_a_margin_share_round_replays_bit_for_bit_and_an_edited_policy_is_caught(tiny_base_model, isolated_artifacts):
    from tests.valuation.conftest import add_owner
    from valuation import replay

    add_owner("clean", synthetic.owner_pairs("clean_mix", 32, 41))
    add_owner("noisy", synthetic.owner_pairs("noisy", 24, 42))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(40, 3))
    r = services.round_create(name="ms", pool="1000.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1}, seed=7, payout_policy="margin_share", utility="bt_loglik")
    r = services.round_execute(round_id=r.pk)
    assert r.status == ValuationRound.Status.DONE
    report = replay.round_replay(valuation_round=r)
    assert report.matches
    assert {row["owner"]: row["replayed"] for row in report.payouts} == {
        p.owner.name: str(p.amount.quantize(Decimal("0.01"))) for p in r.payouts.all()}
    # Someone switching the stored policy afterwards changes what a replay pays: the replay says so.
    ValuationRound.objects.filter(pk=r.pk).update(payout_policy="clip")
    r.refresh_from_db()
    edited = replay.round_replay(valuation_round=r)
    assert not edited.matches and not all(row["equal"] for row in edited.payouts)
