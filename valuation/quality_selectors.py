"""Reads of the data-quality stage's results. Scoped here: an owner reads the values of their own
pairs and a summary of them, never another owner's pair, value or cluster examples; clusters,
the per-owner table and curated sets are staff reads."""
from __future__ import annotations

import json

import numpy as np
from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Q, QuerySet
from django.http import Http404

from marketplace.selectors import pair_as_record

from .models import DataQualityReport, PairCluster, PairValue, ValuationRound


def report_get(*, valuation_round: ValuationRound) -> DataQualityReport | None:
    return DataQualityReport.objects.filter(round=valuation_round).first()


def report_get_done(*, valuation_round: ValuationRound) -> DataQualityReport:
    report = report_get(valuation_round=valuation_round)
    if report is None or report.status != DataQualityReport.Status.DONE:
        raise Http404("this round has no finished data-quality report")
    return report


def pair_values_for(*, report: DataQualityReport, user, owner=None, flagged: bool | None = None) -> QuerySet[PairValue]:
    """Staff: every pair (or one `owner`'s). Anyone else: their own pairs only, whatever `owner` says."""
    from .selectors import mine

    qs = report.pair_values.select_related("pair", "owner__user").order_by("owner__user__username", "rank")
    if not user.is_staff:
        qs = qs.filter(mine(user=user, round_field="report__round"))
    elif owner is not None:
        qs = qs.filter(owner=owner)
    if flagged is not None:
        qs = qs.filter(flagged=flagged)
    return qs


def reason_text(row: PairValue) -> str:
    from valuation.engine.data_quality import reason_text as text

    return text(row.reason, value=row.value, stderr=row.stderr, n_chains=row.n_chains, agreement=row.agreement)


def pair_value_record(row: PairValue) -> dict:
    """One pair's row as an owner reads it: the pair in the upload format, its value and why it is flagged."""
    return {"pair_id": row.pair_id, "contribution": row.pair.contribution_id, "row": row.pair.row_number,
            **pair_as_record(row.pair), "value": row.value, "stderr": row.stderr, "n_chains": row.n_chains,
            "agreement": row.agreement, "rank": row.rank, "cluster": row.cluster, "flagged": row.flagged,
            "reason": row.reason, "reason_text": reason_text(row)}


def pair_value_display(row: PairValue) -> dict:
    """`pair_value_record` plus the pair as plain text (conversational pairs as `role: content` lines) for pages."""
    from marketplace.models import PairFormat
    from marketplace.parsing import flatten_messages

    record = pair_value_record(row)
    for field in ("prompt", "chosen", "rejected"):
        value = getattr(row.pair, field)
        record[f"{field}_text"] = flatten_messages(json.loads(value)) \
            if row.pair.pair_format == PairFormat.CONVERSATIONAL else value
    return record


def owner_summary(*, report: DataQualityReport, owner) -> dict:
    """What an owner trying to improve their next upload wants first: how many of their pairs hurt and why,
    how their values spread, and how the clusters their pairs fall in were valued."""
    mine = report.pair_values.filter(owner=owner)
    values = np.asarray(list(mine.values_list("value", flat=True)), dtype=np.float64)
    if values.size == 0:
        raise Http404("this owner's data was not in the round")
    counts = mine.aggregate(flagged=Count("id", filter=Q(flagged=True)),
                            reversed=Count("id", filter=Q(reason=PairValue.Reason.REVERSED)),
                            harmful=Count("id", filter=Q(reason=PairValue.Reason.HARMFUL)))
    clusters = {c.index: c for c in report.clusters.only("index", "value", "stderr", "size")}
    per_cluster = mine.values("cluster").annotate(n=Count("id"), flagged=Count("id", filter=Q(flagged=True)),
                                                  mean=Avg("value")).order_by("cluster")
    q = np.quantile(values, [0.1, 0.5, 0.9])
    return {"n_pairs": int(values.size), **counts, "mean": float(values.mean()), "p10": float(q[0]),
            "median": float(q[1]), "p90": float(q[2]), "negative": int((values < 0).sum()),
            "clusters": sorted(({"cluster": row["cluster"], "mine": row["n"], "flagged": row["flagged"],
                                 "my_mean": row["mean"], "value": clusters[row["cluster"]].value,
                                 "size": clusters[row["cluster"]].size} for row in per_cluster),
                               key=lambda c: c["value"])}


def owner_table(*, report: DataQualityReport) -> list[dict]:
    """Staff: per owner, pairs, flagged (by reason) and the mean pair value."""
    rows = report.pair_values.values("owner_id", "owner__user__username", "owner__display_name").annotate(
        n=Count("id"), flagged=Count("id", filter=Q(flagged=True)),
        reversed=Count("id", filter=Q(reason=PairValue.Reason.REVERSED)), mean=Avg("value"))
    return sorted(({"owner": r["owner__display_name"] or r["owner__user__username"],
                    "username": r["owner__user__username"], "n_pairs": r["n"], "flagged": r["flagged"],
                    "reversed": r["reversed"], "mean": r["mean"]} for r in rows), key=lambda r: r["mean"])


def clusters(*, report: DataQualityReport) -> QuerySet[PairCluster]:
    return report.clusters.order_by("-value", "index")


def curated_pairs(*, report: DataQualityReport, size: int, method: str, tau: float | None = None,
                  seed: int = 0) -> list:
    """The PreferencePairs of a QOCS / QWCS subset of ``size`` pairs (engine/curation.py), in pool order.

    The same report, size, method, τ and seed always give the same subset."""
    from valuation.engine.curation import curate

    tau = report.config["curation"]["tau"] if tau is None else tau
    rows = list(report.pair_values.order_by("id").values_list("pair_id", "cluster"))
    values = np.asarray([c.value for c in report.clusters.order_by("index")], dtype=np.float64)
    labels = np.asarray([cluster for _, cluster in rows], dtype=np.int64)
    try:
        picked = curate(labels, values, size, method=method, tau=tau, seed=seed)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    by_id = _pairs([rows[i][0] for i in picked])
    return [by_id[rows[i][0]] for i in picked]


def _pairs(ids: list[int], chunk: int = 900) -> dict:
    """{id: pair}, fetched in chunks that stay under SQLite's limit on query parameters."""
    from marketplace.models import PreferencePair

    out = {}
    for start in range(0, len(ids), chunk):
        out.update(PreferencePair.objects.only("id", "pair_format", "prompt", "chosen", "rejected")
                   .in_bulk(ids[start : start + chunk]))
    return out


def curated_jsonl(pairs) -> str:
    """The curated pairs in the upload format (docs/upload-format.md), one JSON object per line."""
    return "".join(json.dumps(pair_as_record(p), ensure_ascii=False) + "\n" for p in pairs)
