"""Round creation, validation, claiming and payout approval (no training involved)."""
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from valuation import services
from valuation.models import OwnerValue, Payout, RoundOwner, ValuationRound
from valuation.engine import synthetic
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def market():
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 12, 1))
    add_owner("bob", synthetic.owner_pairs("noisy", 10, 2))
    return add_eval_set("eval", synthetic.eval_pairs(8, 0))


def create(eval_set, model_dir, **overrides):
    kwargs = dict(name="r1", pool="100.00", eval_set=eval_set, base_model_dir=str(model_dir))
    kwargs.update(overrides)
    return services.round_create(**kwargs)


def test_round_create_snapshots_participants_and_config(market, fake_model_dir):
    r = create(market, fake_model_dir, seed=7, beta=0.2)
    participants = list(r.participants.order_by("index"))
    assert [p.owner.name for p in participants] == ["alice", "bob"]
    assert [p.n_pairs for p in participants] == [12, 10]
    assert all(len(p.data_hash) == 64 for p in participants)
    assert participants[0].contributions.count() == 1
    assert r.status == ValuationRound.Status.DRAFT
    assert r.config["seed"] == 7 and r.config["beta"] == 0.2 and r.config["training"]["seed"] == 7
    assert r.config["versions"]["torch"] and len(r.base_model_hash) == 64 and len(r.eval_set_hash) == 64
    assert r.pool == Decimal("100.00")


@pytest.mark.parametrize("overrides, message", [
    ({"pool": 10.5}, "not a float"),
    ({"pool": "-1"}, "non-negative"),
    ({"pool": "ten"}, "not a number"),
    ({"pool": "10.005"}, "more than 2 decimal places"),
    ({"pool": "99999999999999.99"}, "over the largest amount that can be stored exactly, 9,999,999,999,999.99 USD"),
    ({"pool": "12345678901234.57"}, "over the largest amount"),
    ({"pool": "1000.5", "currency": "JPY"}, "more than 0 decimal places"),
    ({"pool": "100000000000000", "currency": "JPY"}, "over the largest amount"),
    ({"currency": "<b>"}, "currency '<b>' is not an ISO 4217 currency code"),
    ({"currency": "XYZ"}, "not an ISO 4217 currency code"),
    ({"currency": "JPY", "decimals": 2}, "JPY is paid in 0 decimal places, not 2"),
    ({"currency": "USD", "decimals": 3}, "USD is paid in 2 decimal places, not 3"),
    ({"utility": "vibes"}, "unknown utility 'vibes'"),
    ({"composition": "max"}, "unknown composition"),
    ({"estimator": "exact", "budget": 3}, "needs 2^2 = 4 utility evaluations"),
    ({"estimator": "kernel", "budget": 5}, "too small for 2 owners"),
    ({"target": 1.5}, "target must be a share of the pool"),
    ({"training": {"epochz": 3}}, "unknown training option(s): epochz"),
    ({"training": {"batch_size": 0}}, "training option 'batch_size': must be between 1 and 4,096, got 0"),
    ({"training": {"epochs": "four"}}, "training option 'epochs': must be an integer, got 'four'"),
    ({"training": {"learning_rate": -0.1}}, "training option 'learning_rate': must be in (0, 1]"),
    ({"training": {"loss_types": ["sigmoid"]}}, "training option 'loss_weights': 2 weight(s) for 1 loss type(s)"),
    ({"training": {"loss_types": ["sft"], "loss_weights": [1]}}, "needs a preference loss"),
    ({"seed": 2**32}, "training option 'seed'"),
    ({"owners": ["alice", "zed"]}, "'zed' is neither a data owner nor a payee"),
])
def test_round_create_refuses_bad_requests(market, fake_model_dir, overrides, message):
    with pytest.raises(ValidationError, match=None) as info:
        create(market, fake_model_dir, **overrides)
    assert message in "; ".join(info.value.messages)
    assert ValuationRound.objects.count() == 0 and RoundOwner.objects.count() == 0


@pytest.mark.parametrize("currency, pool, decimals", [("USD", "9999999999999.99", 2), ("jpy", "99999999999999", 0),
                                                     ("KWD", "999999999999.999", 3), ("KWD", "0.125", 3)])
def test_a_round_takes_its_decimals_from_the_currency_and_keeps_the_pool_exactly(market, fake_model_dir, currency,
                                                                               pool, decimals):
    r = create(market, fake_model_dir, pool=pool, currency=currency)
    r.refresh_from_db()  # read back from the database: SQLite keeps a DecimalField as REAL
    assert (r.currency, r.decimals, r.pool) == (currency.upper(), decimals, Decimal(pool))


def test_round_create_refuses_missing_model_dir_and_duplicate_name(market, fake_model_dir, tmp_path):
    with pytest.raises(ValidationError, match="not a Hugging Face model directory"):
        create(market, tmp_path / "nowhere")
    create(market, fake_model_dir)
    with pytest.raises(ValidationError, match="already exists"):
        create(market, fake_model_dir)


def test_round_create_needs_owners(fake_model_dir):
    eval_set = add_eval_set("eval", synthetic.eval_pairs(4, 0))
    with pytest.raises(ValidationError, match="no verified owner has accepted data"):
        create(eval_set, fake_model_dir)


def _finish(r, amounts):
    for p in r.participants.all():
        OwnerValue.objects.create(round=r, owner=p.owner, shapley=1.0, ci_low=1.0, ci_high=1.0)
        Payout.objects.create(round=r, owner=p.owner, amount=amounts[p.index], share=Decimal("0.5"), currency="USD")
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.DONE)
    r.refresh_from_db()
    return r


def test_payout_approve_once_and_approved_rows_are_immutable(market, fake_model_dir, staff_user):
    r = create(market, fake_model_dir)
    with pytest.raises(ValidationError, match="only a finished round"):
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    r = _finish(r, [Decimal("60.00"), Decimal("40.00")])
    assert services.payout_approve(valuation_round=r, approved_by=staff_user) == 2
    with pytest.raises(ValidationError, match="already approved"):
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    payout = Payout.objects.filter(round=r).first()
    payout.amount = Decimal("99.00")
    with pytest.raises(ValidationError, match="immutable"):
        payout.save()
    with pytest.raises(ValidationError, match="immutable"):
        payout.delete()
    assert sorted(Payout.objects.values_list("amount", flat=True)) == [Decimal("40.00"), Decimal("60.00")]


def test_round_claim_refuses_a_live_foreign_runner_and_takes_a_dead_one(market, fake_model_dir):
    from django.utils import timezone

    r = create(market, fake_model_dir)
    ValuationRound.objects.filter(pk=r.pk).update(runner="some-other-host:1234", heartbeat_at=timezone.now())
    with pytest.raises(ValidationError, match="is being run by some-other-host:1234"):
        services.round_claim(round_id=r.pk)
    import socket

    dead = f"{socket.gethostname()}:999999"  # no such pid on this host: the runner died
    ValuationRound.objects.filter(pk=r.pk).update(runner=dead)
    assert services.round_claim(round_id=r.pk).runner.endswith(f":{__import__('os').getpid()}")


def test_round_queue_and_cancel_transitions(market, fake_model_dir):
    r = create(market, fake_model_dir)
    r = services.round_queue(valuation_round=r)
    assert r.status == ValuationRound.Status.QUEUED
    with pytest.raises(ValidationError, match="cannot be queued"):
        services.round_queue(valuation_round=r)
    r = services.round_cancel(valuation_round=r)
    assert r.status == ValuationRound.Status.CANCELLED
    with pytest.raises(ValidationError, match="cannot be cancelled"):
        services.round_cancel(valuation_round=r)
    with pytest.raises(ValidationError, match="cannot be run"):
        services.round_execute(round_id=r.pk)


@pytest.mark.parametrize("option, value, says", [
    ("--training", '{"batch_size": 0}', "training option 'batch_size': must be between 1"),
    ("--training", '{"epochs": "four"}', "training option 'epochs': must be an integer"),
    ("--currency", "<b>", "not an ISO 4217 currency code"),
    ("--pool", "99999999999999.99", "over the largest amount that can be stored exactly"),
])
def test_run_round_refuses_a_bad_config_before_creating_anything(market, fake_model_dir, option, value, says):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    args = {"--pool": "10.00", option: value}
    with pytest.raises(CommandError, match=says):
        call_command("run_round", "--name", "cli", "--base-model", str(fake_model_dir), "--eval-set", "eval",
                     *[part for pair in args.items() for part in pair])
    assert ValuationRound.objects.count() == 0
