"""Reads of valuation rounds. Owner-facing reads are scoped here: an owner sees the
rounds they took part in, their own value and payout, and round totals — never
another owner's row."""
from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.http import Http404

from .models import OwnerValue, Payout, RoundOwner, ValuationRound


def contribution_used_in_round(*, contribution) -> bool:
    return RoundOwner.objects.filter(contributions=contribution).exists()


def round_list() -> QuerySet[ValuationRound]:
    return ValuationRound.objects.select_related("eval_set")


def round_list_for(*, user) -> QuerySet[ValuationRound]:
    if user.is_staff:
        return round_list()
    return round_list().filter(participants__owner__user=user).distinct()


def round_get(*, round_id: int) -> ValuationRound:
    found = round_list().filter(pk=round_id).first()
    if found is None:
        raise Http404("no such round")
    return found


def round_get_for(*, user, round_id: int) -> ValuationRound:
    found = round_list_for(user=user).filter(pk=round_id).first()
    if found is None:
        raise Http404("no such round")
    return found


def round_participants(*, valuation_round: ValuationRound) -> QuerySet[RoundOwner]:
    return valuation_round.participants.select_related("owner__user", "owner_model").order_by("index")


def round_values(*, valuation_round: ValuationRound, user=None) -> QuerySet[OwnerValue]:
    qs = valuation_round.values.select_related("owner__user").order_by("-shapley")
    if user is not None and not user.is_staff:
        qs = qs.filter(owner__user=user)
    return qs


def round_payouts(*, valuation_round: ValuationRound, user=None) -> QuerySet[Payout]:
    qs = valuation_round.payouts.select_related("owner__user", "round").order_by("-amount", "owner__user__username")
    if user is not None and not user.is_staff:
        qs = qs.filter(owner__user=user)
    return qs


def round_payout_totals(*, valuation_round: ValuationRound) -> dict:
    agg = valuation_round.payouts.aggregate(total=Sum("amount"))
    unit = Decimal(1).scaleb(-valuation_round.decimals)
    # SQLite's SUM drops Decimal places; present both amounts in the currency's minor unit.
    return {"pool": Decimal(valuation_round.pool).quantize(unit), "paid": Decimal(agg["total"] or 0).quantize(unit),
            "currency": valuation_round.currency, "n_owners": valuation_round.participants.count()}


def round_coalitions(*, valuation_round: ValuationRound) -> list[dict]:
    names = {p.index: p.owner.name for p in round_participants(valuation_round=valuation_round)}
    return [{"mask": c.mask, "size": c.size, "value": c.value,
             "members": [names[i] for i in sorted(names) if c.mask >> i & 1]}
            for c in valuation_round.coalition_utilities.all()]


def owner_payouts(*, user) -> QuerySet[Payout]:
    return Payout.objects.filter(owner__user=user).select_related("round").order_by("-round__created_at")


def owner_values(*, user) -> dict[int, OwnerValue]:
    return {v.round_id: v for v in OwnerValue.objects.filter(owner__user=user)}
