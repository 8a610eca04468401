"""Writes of the payout ledger after approval: corrections.

Approved entries are never changed (valuation/db_guards.py enforces it in the database). A correction
appends, per owner whose amount changes, a *reversal* (the exact negative of their active payout) and
a *new payout* that follows it; both are approved at once, by whoever made the correction, with the
reason. A correction moves money between the owners of one round and never changes the round's total:
Σ of the round's active payouts == Σ of all its ledger entries == the pool (0 when the valuation paid
nothing), before and after, to the minor unit. A round whose pool itself was wrong is not corrected
here; it needs a new round.
"""
from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from config import money

from .models import Payout, ValuationRound

SHARE_PLACES = Decimal("1e-10")  # Payout.share keeps ten places


def _parse_amount(owner: str, raw, locked: ValuationRound) -> Decimal:
    column = Payout._meta.get_field("amount")
    return money.amount_parse(raw, decimals=locked.decimals, label=owner, currency=locked.currency,
                              max_digits=column.max_digits, decimal_places=column.decimal_places)


@transaction.atomic
def payout_correct(*, valuation_round: ValuationRound, amounts: dict, reason: str, corrected_by=None) -> list[Payout]:
    """Set the named owners' payouts in an approved round to new amounts (a reversal plus a new
    approved payout each). `amounts` maps username → amount (decimal string). Returns the new payouts."""
    locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
    if locked.approved_at is None:
        raise ValidationError(f"round '{locked.name}' has no approved payouts: drafts are not corrected, "
                              "re-run or approve the round first")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("a correction needs a reason (it is kept on both ledger entries)")
    if not amounts:
        raise ValidationError("name at least one owner and their corrected amount")
    active = {p.owner.user.username: p for p in Payout.objects.active().filter(round=locked)
              .select_related("owner__user")}
    unknown = sorted(set(amounts) - set(active))
    if unknown:
        raise ValidationError(f"no approved payout in round '{locked.name}' for: {', '.join(unknown)}")
    wanted = {owner: _parse_amount(owner, raw, locked) for owner, raw in amounts.items()}
    changed = {owner: amount for owner, amount in wanted.items() if amount != active[owner].amount}
    if not changed:
        raise ValidationError("every amount given is already what the owner is paid: nothing to correct")
    delta = sum(changed.values()) - sum(active[owner].amount for owner in changed)
    if delta:
        raise ValidationError(f"a correction moves money between the round's owners and must leave its total "
                              f"unchanged; these amounts change it by {delta.quantize(locked.minor_unit):+} {locked.currency}")
    now = timezone.now()
    return [_replace(active[owner], amount, locked, reason, corrected_by, now)
            for owner, amount in sorted(changed.items())]


def _replace(old: Payout, amount: Decimal, locked: ValuationRound, reason: str, by, now) -> Payout:
    common = dict(round=locked, owner=old.owner, currency=old.currency, status=Payout.Status.APPROVED,
                  reason=reason, created_by=by, approved_at=now)
    reversal = Payout(kind=Payout.Kind.REVERSAL, reverses=old, amount=-old.amount, share=-old.share, **common)
    reversal.full_clean()
    reversal.save()
    share = (amount / locked.pool).quantize(SHARE_PLACES) if locked.pool else Decimal(0)
    new = Payout(kind=Payout.Kind.PAYOUT, replaces=reversal, amount=amount, share=share, **common)
    new.full_clean()
    new.save()
    return new
