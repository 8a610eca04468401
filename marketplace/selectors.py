"""Reads of the marketplace. Every owner-facing read is scoped to the caller here,
so views cannot forget to filter."""
from __future__ import annotations

import json

from django.db.models import QuerySet
from django.http import Http404

from .models import Contribution, DataOwner, EvalSet, PairFormat, PreferencePair


def contribution_list(*, user) -> QuerySet[Contribution]:
    qs = Contribution.objects.select_related("owner__user")
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
