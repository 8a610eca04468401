"""Pages of the data-quality stage. Thin: quality_selectors read, quality_charts draw.

Staff: the round's report — per-owner table, clusters with values and example prompts, a
curated-set download, and a button to run (or re-run) the stage. An owner: their own pairs
in the round, flagged ones first with the reason, and a CSV of every value.
"""
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from config.csv_export import csv_response

from . import data_quality, quality_charts, quality_selectors, selectors
from .models import DataQualityReport
from .quality_apis import curated_response
from .views import _statement_owner

PAIRS_PER_PAGE = 50


@staff_member_required
def round_data_quality(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    report = quality_selectors.report_get(valuation_round=valuation_round)
    done = report is not None and report.status == DataQualityReport.Status.DONE
    clusters = list(quality_selectors.clusters(report=report)) if done else []
    return render(request, "valuation/data_quality.html", {
        "round": valuation_round, "report": report, "done": done,
        "owners": quality_selectors.owner_table(report=report) if done else [],
        "clusters": clusters,
        "cluster_chart": quality_charts.cluster_values_bar(
            [{"index": c.index, "size": c.size, "value": c.value, "stderr": c.stderr} for c in clusters])
        if clusters else None,
        "curate": {"size": max(1, report.n_pairs // 5) if done else 1, "max": report.n_pairs if done else 1,
                   "tau": report.config.get("curation", {}).get("tau", 1.0) if report else 1.0},
    })


@staff_member_required
@require_POST
def round_data_quality_request(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    try:
        with transaction.atomic():
            data_quality.data_quality_request(valuation_round=valuation_round, requested_by=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, "Data-quality stage queued.")
    return redirect("valuation:round-data-quality", round_id=round_id)


@staff_member_required
def round_curated_jsonl(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    report = quality_selectors.report_get_done(valuation_round=valuation_round)
    try:
        size = int(request.GET.get("size", ""))
        tau = float(request.GET["tau"]) if request.GET.get("tau") else None
        seed = int(request.GET.get("seed") or 0)
        pairs = quality_selectors.curated_pairs(report=report, size=size, method=request.GET.get("method", ""),
                                                tau=tau, seed=seed)
    except ValueError:
        messages.error(request, "size, τ and seed must be numbers")
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        return curated_response(valuation_round, pairs, request.GET["method"])
    return redirect("valuation:round-data-quality", round_id=round_id)


def _my_report(request, round_id: int):
    valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
    owner = _statement_owner(request, valuation_round)
    if owner is None:
        raise Http404("name an owner: ?owner=username")
    report = quality_selectors.report_get_done(valuation_round=valuation_round)
    player = selectors.round_player(valuation_round=valuation_round, owner=owner)
    return valuation_round, player.owner if player else owner, report  # an account of a payee: the payee's pairs


@login_required
def round_my_pairs(request, round_id: int):
    valuation_round, owner, report = _my_report(request, round_id)
    summary = quality_selectors.owner_summary(report=report, owner=owner)
    rows = quality_selectors.pair_values_for(report=report, user=request.user, owner=owner)
    flagged = [quality_selectors.pair_value_display(r) for r in rows.filter(flagged=True)]
    page = Paginator(rows, PAIRS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "valuation/my_pairs.html", {
        "round": valuation_round, "owner": owner, "report": report, "summary": summary, "flagged": flagged,
        "page": page, "records": [quality_selectors.pair_value_display(r) for r in page],
        "chart": quality_charts.pair_value_histogram(rows.values("value", "flagged")),
        "owner_query": "?" + urlencode({"owner": owner.user.username}) if request.user.is_staff else "",
    })


PAIR_COLUMNS = ["contribution", "row", "prompt", "chosen", "rejected", "value", "stderr", "n_chains", "agreement",
                "rank", "cluster", "flagged", "reason", "reason_text"]


@login_required
def round_my_pairs_csv(request, round_id: int):
    valuation_round, owner, report = _my_report(request, round_id)
    rows = quality_selectors.pair_values_for(report=report, user=request.user, owner=owner)
    records = (quality_selectors.pair_value_record(r) for r in rows.iterator(chunk_size=1000))
    return csv_response(filename=f"round-{valuation_round.pk}-pairs-{owner.user.username}.csv", header=PAIR_COLUMNS,
                        rows=([_cell(rec[c]) for c in PAIR_COLUMNS] for rec in records))


def _cell(value):
    import json

    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
