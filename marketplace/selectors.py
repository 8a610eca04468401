"""Reads of the marketplace. Every owner-facing read is scoped to the caller here,
so views cannot forget to filter."""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from config import money

from .models import Contribution, DataOwner, EvalSet, PairFormat, Payee, PreferencePair, RefusalTally


def contribution_list(*, user) -> QuerySet[Contribution]:
    qs = Contribution.objects.select_related("owner__user", "owner__payee")
    if user.is_staff:
        return qs
    return qs.filter(owner__user=user)


def contribution_get(*, user, contribution_id: int) -> Contribution:
    """404, not 403, for someone else's contribution: ids must not confirm existence."""
    contribution = contribution_list(user=user).filter(pk=contribution_id).first()
    if contribution is None:
        raise Http404("no such contribution")
    return contribution


def contribution_pairs(*, contribution: Contribution) -> QuerySet[PreferencePair]:
    return contribution.pairs.all()


def pair_as_record(pair) -> dict:
    """Back to the upload format (conversational pairs as message lists)."""
    if pair.pair_format == PairFormat.CONVERSATIONAL:
        return {f: json.loads(getattr(pair, f)) for f in ("prompt", "chosen", "rejected")}
    return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}


def contribution_jsonl(*, contribution: Contribution):
    for pair in contribution.pairs.iterator(chunk_size=2000):
        yield json.dumps(pair_as_record(pair), ensure_ascii=False) + "\n"


def eval_set_list() -> QuerySet[EvalSet]:
    return EvalSet.objects.all()


def owner_list() -> QuerySet[DataOwner]:
    return DataOwner.objects.select_related("user")


def owner_of(*, user) -> DataOwner | None:
    """The user's owner profile, or None (staff accounts usually have none)."""
    if not user.is_authenticated:
        return None
    return DataOwner.objects.filter(user=user).select_related("user", "payee").first()


def owner_get(*, username: str) -> DataOwner:
    owner = owner_list().filter(user__username=username).first()
    if owner is None:
        raise Http404("no such owner")
    return owner


# --- staff only: refusals per owner, and who looks like they are probing -------------------------------

REFUSAL_COUNTS = ("uploads_accepted", "uploads_refused", "rows_accepted", "rows_exact_copy", "rows_near_copy",
                  "rows_eval", "rows_invalid")


def owner_refusals(*, days: int | None = None) -> dict[int, dict]:
    """Per owner id, the RefusalTally counts summed over the last `days` (PROBING_WINDOW_DAYS), the rows
    refused as copies of held data (`held`) and the `probing` flag. Owners never see this."""
    days = days or settings.PROBING_WINDOW_DAYS
    since = timezone.localdate() - timedelta(days=days - 1)
    rows = RefusalTally.objects.filter(day__gte=since).values("owner_id") \
        .annotate(**{name: Sum(name) for name in REFUSAL_COUNTS})
    out = {}
    for row in rows:
        row["held"] = row["rows_exact_copy"] + row["rows_near_copy"] + row["rows_eval"]
        row["probing"] = looks_like_probing(held_rows=row["held"], uploads_refused=row["uploads_refused"],
                                            uploads=row["uploads_refused"] + row["uploads_accepted"])
        out[row.pop("owner_id")] = row
    return out


def owners_with_refusals(owners: QuerySet[DataOwner]) -> QuerySet[DataOwner]:
    """`owners` annotated with their window's counts (window_exact, _near, _eval, _refused, _accepted),
    for the admin's owner list."""
    since = timezone.localdate() - timedelta(days=settings.PROBING_WINDOW_DAYS - 1)
    in_window = Q(refusal_tallies__day__gte=since)
    fields = {"window_exact": "rows_exact_copy", "window_near": "rows_near_copy", "window_eval": "rows_eval",
              "window_refused": "uploads_refused", "window_accepted": "uploads_accepted"}
    return owners.annotate(**{alias: Sum(f"refusal_tallies__{name}", filter=in_window)
                              for alias, name in fields.items()})


def looks_like_probing(*, held_rows: int, uploads_refused: int, uploads: int) -> bool:
    """Many rows refused as copies of held data, or mostly refused uploads some of which hit held data:
    what asking the refusal which candidate pairs the marketplace holds looks like."""
    if held_rows >= settings.PROBING_MIN_ROWS:
        return True
    return held_rows > 0 and uploads >= settings.PROBING_MIN_UPLOADS \
        and uploads_refused >= settings.PROBING_REFUSED_SHARE * uploads


# --- the staff overview: a fixed number of grouped queries, whatever the owners × rounds ---------------

def overview_version() -> str:
    """A digest of everything the overview shows, from four cheap queries: owners, uploads and payouts
    only change by rows added or deleted (counts, last ids or times), rounds by their status and approval."""
    from valuation.models import Payout, ValuationRound

    # Verification changes go through marketplace/payees.py, which always stamps the payee's status time.
    parts = [DataOwner.objects.aggregate(n=Count("id"), last=Max("id"), verified=Max("payee__status_changed_at")),
             # contribution ids are random (config/ids.py): the newest upload time marks an addition
             Contribution.objects.aggregate(n=Count("id"), last=Max("created_at")),
             Payout.objects.aggregate(last=Max("id")),  # never deleted once a round is done; COUNT would scan
             list(ValuationRound.objects.order_by("id").values_list("id", "status", "approved_at")),
             timezone.localdate()]  # the probing window moves with the day
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def overview_totals() -> dict:
    from valuation.models import ValuationRound

    uploads = Contribution.objects.aggregate(
        accepted=Count("id", filter=Q(status=Contribution.Status.ACCEPTED)),
        refused=Count("id", filter=Q(status=Contribution.Status.REFUSED)),
        pairs=Sum("n_pairs", filter=Q(status=Contribution.Status.ACCEPTED)))
    rounds = dict(ValuationRound.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {"owners": DataOwner.objects.count(), "accepted": uploads["accepted"], "refused": uploads["refused"],
            "pairs": uploads["pairs"] or 0, "rounds": sum(rounds.values()), "rounds_by_status": rounds}


def overview_rounds() -> list[dict]:
    """Every round with what it paid (drafts included), for the rounds-over-time chart."""
    from valuation.models import ValuationRound

    rows = ValuationRound.objects.values("pk", "name", "created_at", "pool", "currency", "status", "decimals") \
        .annotate(paid=Sum("payouts__amount")).order_by("created_at")
    unit = lambda r: Decimal(1).scaleb(-r["decimals"])  # noqa: E731
    return [{"id": r["pk"], "name": r["name"], "created": r["created_at"], "status": r["status"],
             "currency": r["currency"], "decimals": r["decimals"], "pool": Decimal(r["pool"]).quantize(unit(r)),
             "paid": Decimal(r["paid"] or 0).quantize(unit(r))} for r in rows]


def main_currency(rounds: list[dict]) -> str:
    """The currency most rounds pay in (the overview charts one currency; the table lists them all)."""
    counts: dict[str, int] = defaultdict(int)
    for r in rounds:
        counts[r["currency"]] += 1
    return max(sorted(counts), key=counts.__getitem__) if counts else "USD"


def overview_owners(*, rank_currency: str) -> list[dict]:
    """Per owner: accepted pairs, accepted/refused uploads, rounds taken part in, and approved / pending
    payouts per currency — four grouped queries merged here, so the count never grows with the data.
    Ordered by what they were paid in `rank_currency` (approved + pending), then name."""
    from valuation.models import Payout, RoundOwner

    statuses = dict(Payee.Status.choices)
    rows = {pk: {"id": pk, "owner": display or username, "username": username, "payee": payee or "",
                 "status": statuses[status or Payee.Status.PENDING], "pairs": 0, "accepted": 0,
                 "refused": 0, "rounds": 0, "paid": defaultdict(Decimal), "pending": defaultdict(Decimal)}
            for pk, display, username, payee, status in DataOwner.objects.values_list(
                "pk", "display_name", "user__username", "payee__name", "payee__status")}
    for owner_id, status, n, pairs in Contribution.objects.values_list("owner_id", "status").annotate(
            n=Count("id"), pairs=Sum("n_pairs")):
        rows[owner_id][status] = n
        if status == Contribution.Status.ACCEPTED:
            rows[owner_id]["pairs"] = pairs or 0
    for owner_id, n in RoundOwner.objects.values_list("owner_id").annotate(n=Count("id")):
        rows[owner_id]["rounds"] = n
    for owner_id, status, currency, total in Payout.objects.values_list("owner_id", "status", "currency") \
            .annotate(total=Sum("amount")):
        key = "paid" if status == Payout.Status.APPROVED else "pending"
        rows[owner_id][key][currency] += Decimal(total or 0).quantize(money.minor_unit(currency))
    for owner_id, tally in owner_refusals().items():
        rows[owner_id]["refusals"] = tally
    for row in rows.values():  # plain dicts: a template lookup must not create keys
        row["paid"], row["pending"] = dict(row["paid"]), dict(row["pending"])
        row["rank"] = row["paid"].get(rank_currency, Decimal(0)) + row["pending"].get(rank_currency, Decimal(0))
    return sorted(rows.values(), key=lambda row: (-row["rank"], row["owner"]))
