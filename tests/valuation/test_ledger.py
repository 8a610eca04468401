"""The payout ledger: append-only once approved, corrections as a reversal plus a new payout, at most one
active payout per owner and round — enforced by the database itself (constraints and triggers of
valuation/db_guards.py), not only by Python. Runs on SQLite and, with DATABASE_URL, on PostgreSQL."""
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from marketplace.services import owner_create
from tests.conftest import jsonl_bytes, make_pairs
from valuation import ledger, selectors, services
from valuation.models import Payout, RoundOwner, ValuationRound

pytestmark = pytest.mark.django_db
POOL = Decimal("100.00")


def _round(eval_set, owners, amounts, *, name="ledger-round", approve=True, staff=None) -> ValuationRound:
    r = ValuationRound.objects.create(name=name, eval_set=eval_set, eval_set_hash="e" * 64, base_model_path="/m",
                                      base_model_hash="b" * 64, pool=POOL, status=ValuationRound.Status.DONE)
    for index, (owner, amount) in enumerate(zip(owners, amounts)):
        RoundOwner.objects.create(round=r, owner=owner, index=index, n_pairs=1, data_hash=f"{index}" * 64)
        Payout.objects.create(round=r, owner=owner, amount=Decimal(amount), share=Decimal(amount) / POOL,
                              currency="USD")
    if approve:
        services.payout_approve(valuation_round=r, approved_by=staff)
    r.refresh_from_db()
    return r


@pytest.fixture
def eval_set(staff_user):
    from marketplace.services import eval_set_create

    return eval_set_create(name="ledger-eval", file=io.BytesIO(jsonl_bytes(make_pairs(3, tag="ev"))),
                           filename="e.jsonl")


@pytest.fixture
def owners(db):
    return [owner_create(username=name) for name in ("ann", "ben", "cat")]


@pytest.fixture
def approved(eval_set, owners, staff_user):
    return _round(eval_set, owners, ["50.00", "30.00", "20.00"], staff=staff_user)


def active_amounts(r) -> dict[str, Decimal]:
    return {p.owner.user.username: p.amount for p in Payout.objects.active().filter(round=r)}


def ledger_total(r) -> Decimal:
    return sum((p.amount for p in Payout.objects.filter(round=r)), Decimal(0))


def refused_by_database(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


# --- what the database refuses, whoever asks ------------------------------------------------------

def test_approved_entries_cannot_be_updated_or_deleted_even_bypassing_the_model(approved):
    payout = Payout.objects.filter(round=approved).first()
    refused_by_database(lambda: Payout.objects.filter(pk=payout.pk).update(amount=Decimal("99")))
    refused_by_database(lambda: Payout.objects.filter(pk=payout.pk).delete())

    def raw_sql():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE valuation_payout SET amount = 0 WHERE id = %s", [payout.pk])
    refused_by_database(raw_sql)
    assert Payout.objects.get(pk=payout.pk).amount == Decimal("50.00")


def test_drafts_stay_replaceable_and_approvable(eval_set, owners):
    r = _round(eval_set, owners, ["60.00", "40.00", "0.00"], approve=False)
    Payout.objects.filter(round=r, owner=owners[2]).delete()  # a re-run replaces drafts
    Payout.objects.filter(round=r, owner=owners[0]).update(amount=Decimal("61.00"))
    assert services.payout_approve(valuation_round=r, approved_by=None) == 2


def test_a_second_original_payout_for_one_owner_and_round_is_refused(approved, owners):
    refused_by_database(lambda: Payout.objects.create(round=approved, owner=owners[0], amount=Decimal("1"),
                                                      share=Decimal("0.01"), currency="USD"))


def test_forged_reversals_and_replacements_are_refused(approved, owners):
    ann = Payout.objects.get(round=approved, owner=owners[0])
    common = dict(round=approved, currency="USD", status=Payout.Status.APPROVED, kind=Payout.Kind.REVERSAL)
    # wrong amount, wrong owner, a draft target
    refused_by_database(lambda: Payout.objects.create(owner=owners[0], reverses=ann, amount=Decimal("-1"),
                                                      share=Decimal(0), **common))
    refused_by_database(lambda: Payout.objects.create(owner=owners[1], reverses=ann, amount=-ann.amount,
                                                      share=Decimal(0), **common))
    reversal = Payout.objects.create(owner=owners[0], reverses=ann, amount=-ann.amount, share=-ann.share, **common)
    # the same payout reversed twice
    refused_by_database(lambda: Payout.objects.create(owner=owners[0], reverses=ann, amount=-ann.amount,
                                                      share=Decimal(0), **common))
    new = dict(round=approved, currency="USD", status=Payout.Status.APPROVED, share=Decimal(0))
    # a replacement that follows another owner's reversal, or a payout instead of a reversal
    refused_by_database(lambda: Payout.objects.create(owner=owners[1], replaces=reversal, amount=Decimal("1"), **new))
    ben = Payout.objects.get(round=approved, owner=owners[1])
    refused_by_database(lambda: Payout.objects.create(owner=owners[1], replaces=ben, amount=Decimal("1"), **new))
    Payout.objects.create(owner=owners[0], replaces=reversal, amount=Decimal("50.00"), **new)
    # two replacements of one reversal would be two active payouts
    refused_by_database(lambda: Payout.objects.create(owner=owners[0], replaces=reversal, amount=Decimal("1"), **new))
    assert Payout.objects.active().filter(round=approved, owner=owners[0]).count() == 1


def test_a_reversal_must_be_negative_approved_and_linked(approved, owners):
    ann = Payout.objects.get(round=approved, owner=owners[0])
    refused_by_database(lambda: Payout.objects.create(
        round=approved, owner=owners[0], kind=Payout.Kind.REVERSAL, amount=Decimal("-50"), share=0, currency="USD",
        status=Payout.Status.APPROVED))  # no link
    refused_by_database(lambda: Payout.objects.create(
        round=approved, owner=owners[0], kind=Payout.Kind.REVERSAL, reverses=ann, amount=-ann.amount, share=0,
        currency="USD", status=Payout.Status.DRAFT))


def test_links_of_a_draft_never_change(eval_set, owners, approved):
    r = _round(eval_set, owners, ["60.00", "40.00", "0.00"], name="drafts", approve=False)
    draft = Payout.objects.filter(round=r).first()
    refused_by_database(lambda: Payout.objects.filter(pk=draft.pk).update(round=approved))


# --- corrections through the service -----------------------------------------------------------

def test_a_correction_appends_a_reversal_and_a_new_payout(approved, staff_user):
    before = list(Payout.objects.filter(round=approved).values_list("pk", "amount", "status"))
    new = ledger.payout_correct(valuation_round=approved, amounts={"ann": "45.00", "ben": "35.00"},
                                reason="ben's file was mis-attributed", corrected_by=staff_user)
    assert [(p.owner.user.username, p.amount) for p in new] == [("ann", Decimal("45.00")), ("ben", Decimal("35.00"))]
    # nothing written before was changed
    assert list(Payout.objects.filter(pk__in=[b[0] for b in before]).values_list("pk", "amount", "status")) == before
    assert active_amounts(approved) == {"ann": Decimal("45.00"), "ben": Decimal("35.00"), "cat": Decimal("20.00")}
    entries = list(selectors.round_ledger(valuation_round=approved))
    assert [(e.owner.user.username, e.kind, e.amount) for e in entries[3:]] == [
        ("ann", "reversal", Decimal("-50.00")), ("ann", "payout", Decimal("45.00")),
        ("ben", "reversal", Decimal("-30.00")), ("ben", "payout", Decimal("35.00"))]
    assert all(e.reason == "ben's file was mis-attributed" and e.created_by == staff_user for e in entries[3:])
    assert ledger_total(approved) == POOL == selectors.round_payout_totals(valuation_round=approved)["paid"]
    statement = selectors.round_statement(valuation_round=approved, owner=new[0].owner)
    assert statement["amount"] == Decimal("45.00")
    # corrected again: the corrected payout is reversed in turn
    ledger.payout_correct(valuation_round=approved, amounts={"ann": "50.00", "ben": "30.00"}, reason="undo")
    assert active_amounts(approved) == {"ann": Decimal("50.00"), "ben": Decimal("30.00"), "cat": Decimal("20.00")}
    assert Payout.objects.filter(round=approved).count() == 3 + 4 + 4
    assert ledger_total(approved) == POOL


@pytest.mark.parametrize("amounts, reason, says", [
    ({"ann": "60.00"}, "x", "must leave its total unchanged; these amounts change it by +10.00 USD"),
    ({"ann": "50.00"}, "x", "nothing to correct"),
    ({"nobody": "1.00"}, "x", "no approved payout in round 'ledger-round' for: nobody"),
    ({"ann": "1.001", "ben": "78.999"}, "x", "more than 2 decimal places"),
    ({"ann": "99999999999999.99", "ben": "0"}, "x", "over the largest amount that can be stored exactly"),
    ({"ann": "1E+40", "ben": "0"}, "x", "over the largest amount that can be stored exactly"),
    ({"ann": "-5", "ben": "85"}, "x", "zero or more"),
    ({"ann": "NaN"}, "x", "zero or more"),
    ({"ann": 45.0, "ben": "35"}, "x", "not a float"),
    ({"ann": "45", "ben": "35"}, "  ", "needs a reason"),
    ({}, "x", "name at least one owner"),
])
def test_corrections_that_would_break_the_books_are_refused(approved, amounts, reason, says):
    with pytest.raises(ValidationError, match=says.replace("+", r"\+").replace("(", r"\(")):
        ledger.payout_correct(valuation_round=approved, amounts=amounts, reason=reason)
    assert Payout.objects.filter(round=approved).count() == 3


def test_a_yen_round_is_corrected_in_whole_yen(eval_set, owners, staff_user):
    r = ValuationRound.objects.create(name="yen", eval_set=eval_set, eval_set_hash="e" * 64, base_model_path="/m",
                                      base_model_hash="b" * 64, pool=Decimal(1000), currency="JPY", decimals=0,
                                      status=ValuationRound.Status.DONE)
    for index, (owner, amount) in enumerate(zip(owners, [500, 300, 200])):
        RoundOwner.objects.create(round=r, owner=owner, index=index, n_pairs=1, data_hash=f"{index}" * 64)
        Payout.objects.create(round=r, owner=owner, amount=Decimal(amount), share=Decimal(amount) / 1000,
                              currency="JPY")
    services.payout_approve(valuation_round=r, approved_by=staff_user)
    with pytest.raises(ValidationError, match="more than 0 decimal places"):
        ledger.payout_correct(valuation_round=r, amounts={"ann": "450.50", "ben": "349.50"}, reason="x")
    ledger.payout_correct(valuation_round=r, amounts={"ann": "450", "ben": "350"}, reason="x")
    assert active_amounts(r) == {"ann": Decimal(450), "ben": Decimal(350), "cat": Decimal(200)}


def test_drafts_are_not_corrected(eval_set, owners):
    r = _round(eval_set, owners, ["60.00", "40.00", "0.00"], name="drafts", approve=False)
    with pytest.raises(ValidationError, match="has no approved payouts"):
        ledger.payout_correct(valuation_round=r, amounts={"ann": "50", "ben": "50"}, reason="x")


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.tuples(st.sampled_from(["ann", "ben", "cat"]), st.sampled_from(["ann", "ben", "cat"]),
                                st.integers(min_value=1, max_value=3000)), min_size=1, max_size=6))
def test_any_sequence_of_corrections_keeps_one_active_payout_each_and_the_pool(approved, moves):
    """Move cents between owners at random: the books always balance to the cent, one active row each."""
    with transaction.atomic():
        for giver, taker, cents in moves:
            current = active_amounts(approved)
            amount = min(Decimal(cents) / 100, current[giver])
            if giver == taker or amount == 0:
                continue
            ledger.payout_correct(valuation_round=approved, reason="move", amounts={
                giver: str(current[giver] - amount), taker: str(current[taker] + amount)})
        counts = [Payout.objects.active().filter(round=approved, owner__user__username=o).count()
                  for o in ("ann", "ben", "cat")]
        assert counts == [1, 1, 1]
        assert sum(active_amounts(approved).values()) == POOL == ledger_total(approved)
        transaction.set_rollback(True)  # each example starts from the same approved round


# --- API and CLI --------------------------------------------------------------------------------

def test_staff_correct_through_the_api_and_owners_read_only_their_entries(approved, api_staff, owners):
    from rest_framework.test import APIClient

    path = f"/api/rounds/{approved.pk}"
    response = api_staff.post(f"{path}/corrections/", {"amounts": {"ann": "40.00", "cat": "30.00"},
                                                       "reason": "cat's late file"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(p["owner"], p["amount"], p["status"]) for p in body["payouts"]] == [
        ("ann", "40.00", "approved"), ("cat", "30.00", "approved")]
    assert body["totals"]["paid"] == "100.00"
    bad = api_staff.post(f"{path}/corrections/", {"amounts": {"ann": "41.00"}, "reason": "x"}, format="json")
    assert bad.status_code == 400 and "must leave its total unchanged" in bad.json()["detail"]
    huge = api_staff.post(f"{path}/corrections/", {"amounts": {"ann": "12345678901234.57", "cat": "0"},
                                                   "reason": "x"}, format="json")
    assert huge.status_code == 400
    assert "ann: 12345678901234.57 is over the largest amount that can be stored exactly" in huge.json()["detail"]

    ann = APIClient()
    ann.force_authenticate(owners[0].user)
    assert ann.post(f"{path}/corrections/", {"amounts": {"ann": "100"}, "reason": "me"},
                    format="json").status_code == 403
    entries = ann.get(f"{path}/ledger/").json()["entries"]
    assert [(e["owner"], e["kind"], e["amount"]) for e in entries] == [
        ("ann", "payout", "50.00"), ("ann", "reversal", "-50.00"), ("ann", "payout", "40.00")]
    assert all("id" not in e for e in entries)
    payouts = ann.get(f"{path}/payouts/").json()["payouts"]
    assert [(p["owner"], p["amount"]) for p in payouts] == [("ann", "40.00")]
    staff_entries = api_staff.get(f"{path}/ledger/").json()["entries"]
    assert len(staff_entries) == 7 and sum(Decimal(e["amount"]) for e in staff_entries) == POOL


def test_correct_payouts_command(approved, staff_user):
    out = io.StringIO()
    call_command("correct_payouts", approved.name, "--set", "ben=25.00", "--set", "cat=25.00",
                 "--reason", "recount", "--by", staff_user.username, stdout=out)
    assert out.getvalue().splitlines() == ["ben: now 25.00 USD", "cat: now 25.00 USD",
                                           "round 'ledger-round' pays 100.00 of 100.00 USD"]
    with pytest.raises(CommandError, match="must leave its total unchanged"):
        call_command("correct_payouts", str(approved.pk), "--set", "ben=1", "--reason", "x")
    with pytest.raises(CommandError, match="use OWNER=AMOUNT"):
        call_command("correct_payouts", approved.name, "--set", "ben", "--reason", "x")


def test_replay_compares_the_original_payouts_not_corrections(approved):
    assert [p.amount for p in Payout.objects.originals().filter(round=approved).order_by("-amount")] == [
        Decimal("50.00"), Decimal("30.00"), Decimal("20.00")]
    ledger.payout_correct(valuation_round=approved, amounts={"ann": "49.00", "ben": "31.00"}, reason="r")
    assert Payout.objects.originals().filter(round=approved).count() == 3
    assert Payout.objects.active().filter(round=approved).count() == 3


# --- the guards outlive a test flush (SQLite empties tables with DELETE, which the triggers refuse) -----

@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_with_approved_payouts_can_be_flushed(eval_set, owners, staff_user):
    r = _round(eval_set, owners, ["50.00", "50.00", "0.00"], name="flushed", staff=staff_user)
    assert Payout.objects.filter(round=r, status=Payout.Status.APPROVED).count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_guards_are_back_after_the_flush(eval_set, owners, staff_user):
    assert not Payout.objects.exists()  # the previous test's approved rows are gone
    r = _round(eval_set, owners, ["50.00", "50.00", "0.00"], name="after-flush", staff=staff_user)
    refused_by_database(lambda: Payout.objects.filter(round=r).update(amount=Decimal("1")))
