"""Server-rendered pages of valuation rounds. Thin: selectors read, charts.py draws, templates embed."""
import hashlib
from functools import cached_property, partial

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Max, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from config.csv_export import csv_response
from marketplace import selectors as marketplace_selectors

from . import (base_models, charts, estimate_selectors, screening, selectors, services, training_charts,
               training_presets, training_selectors)
from .forms import RoundForm
from .models import FidelityReport, PayoutPolicy, ValuationRound

COALITION_TABLE_ROWS = 64  # the chart shows every coalition; the table the first ones by mask
OWNER_ROWS_PER_PAGE = 100  # a 1,000-owner round's table in pages; the CSV export has everyone


@staff_member_required
def round_list(request):
    return render(request, "valuation/round_list.html", {"rounds": selectors.round_list()})


@staff_member_required
def round_new(request):
    form = RoundForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                valuation_round = services.round_create(
                    name=data["name"], pool=data["pool"], currency=data["currency"], eval_set=data["eval_set"],
                    base_model=data["base_model"], utility=data["utility"], composition=data["composition"],
                    estimator=data["estimator"], seed=data["seed"], budget=data.get("budget"),
                    preset=data["preset"] or None, training=data["training"], data_quality=data["data_quality"],
                    owners=[p.name for p in data["owners"]] or None,
                    payout_policy=data["payout_policy"] or PayoutPolicy.CLIP, created_by=request.user,
                    **form.reward_options())
                services.round_queue(valuation_round=valuation_round)
        except ValidationError as exc:
            form.add_error(None, "; ".join(exc.messages))
        else:
            excluded = valuation_round.config.get("excluded_owners", 0)
            messages.success(request, f"Round '{valuation_round.name}' queued." + (
                f" {excluded} owner{'s' if excluded != 1 else ''} left out: no pair fits the training length "
                "(see the length check below)." if excluded else ""))
            return redirect("valuation:round-detail", round_id=valuation_round.pk)
    return render(request, "valuation/round_new.html", {"form": form, "presets": _preset_table(form)},
                  status=400 if form.errors else 200)


def _preset_table(form: RoundForm) -> dict:
    """The presets side by side and the effective config for what the form holds (its initial values on GET;
    a POST without a preset is `auto`, as round_create reads it)."""
    if form.is_bound:
        name, preset, overrides = form.data.get("base_model", ""), form.data.get("preset") or "auto", \
            form.data.get("training", "")
    else:
        name, preset, overrides = form["base_model"].initial, form["preset"].initial, ""
    registered = base_models.base_model_find(str(name or ""))
    base = registered.path if registered is not None else ""  # `auto` then says it cannot resolve
    return training_presets.preset_table(base_model=base, preset=preset, overrides_text=overrides)


class RoundResults:
    """What the results part of a round page shows, computed only when the template asks: a done
    round's results never change (approval aside), so that part is a cached fragment that asks for none."""

    def __init__(self, valuation_round: ValuationRound, page: str | None = None):
        self.round = valuation_round
        self.page_number = page

    @cached_property
    def participants(self):
        return list(selectors.round_participants(valuation_round=self.round))

    @cached_property
    def names(self) -> dict[int, str]:
        return {p.index: p.owner.name for p in self.participants}

    @cached_property
    def values(self):
        return list(selectors.round_values(valuation_round=self.round))

    @cached_property
    def payouts(self):
        return list(selectors.round_payouts(valuation_round=self.round))

    @cached_property
    def rows(self) -> list[dict]:
        """One table row per owner: participation, value and payout; highest value first once valued."""
        values = {v.owner_id: v for v in self.values}
        payouts = {p.owner_id: p for p in self.payouts}
        base = reverse("valuation:round-statement", args=[self.round.pk])
        rows = [{"participant": p, "value": values.get(p.owner_id), "payout": payouts.get(p.owner_id),
                 "statement_url": f"{base}?{urlencode({'owner': p.owner.user.username})}"} for p in self.participants]
        return sorted(rows, key=lambda row: -row["value"].shapley if row["value"] else 0.0)

    @cached_property
    def rows_page(self):
        return Paginator(self.rows, OWNER_ROWS_PER_PAGE).get_page(self.page_number)

    @cached_property
    def values_chart(self):
        return charts.values_bar(selectors.value_rows(self.values)) if self.values else None

    @cached_property
    def any_interval(self) -> bool:
        return any(v.stderr for v in self.values)

    @cached_property
    def payouts_chart(self):
        rows = selectors.payout_rows(self.payouts, decimals=self.round.decimals)
        return charts.payouts_bar(rows, currency=self.round.currency) if rows else None

    @cached_property
    def coalitions(self):
        return selectors.round_coalition_data(valuation_round=self.round, names=self.names)

    @cached_property
    def coalition_chart(self):
        return charts.coalition_chart(self.coalitions) if self.coalitions else None

    @cached_property
    def coalition_rows(self):
        return self.coalitions["points"][:COALITION_TABLE_ROWS] if self.coalitions and \
            self.coalitions["kind"] == "points" else []

    @cached_property
    def band_rows(self):
        if not self.coalitions or self.coalitions["kind"] != "bands":
            return []
        b = self.coalitions["bands"]
        return [dict(zip(b, row)) for row in zip(*b.values())]

    @cached_property
    def interactions(self):
        return selectors.round_interactions(valuation_round=self.round, names=self.names)

    @cached_property
    def interactions_chart(self):
        i = self.interactions
        return charts.interaction_heatmap(i["names"], i["matrix"]) if i else None

    @cached_property
    def objective_table(self) -> dict:
        return selectors.round_objective_values(valuation_round=self.round)

    @cached_property
    def objectives(self):
        return self.objective_table if self.objective_table["rows"] else None

    @cached_property
    def objectives_chart(self):
        o = self.objectives
        return charts.objective_bars(o["objectives"], o["rows"]) if o else None

    @cached_property
    def signature(self):
        return selectors.round_signature(valuation_round=self.round, table=self.objective_table)

    @cached_property
    def signature_chart(self):
        s = self.signature
        return charts.signature_scatter(s["names"], s["x_values"], s["y_values"], x_objective=s["x_objective"],
                                        y_objective=s["y_objective"], x_ci=s["x_ci"], y_ci=s["y_ci"]) if s else None

    @cached_property
    def generations(self):
        return selectors.round_generations(valuation_round=self.round, names=self.names)

    @cached_property
    def training(self) -> list[dict]:
        """The first owners' fine-tunes (staff page: every owner may be shown; CURVES_LIMIT keeps it legible)."""
        return training_selectors.training_rows(valuation_round=self.round,
                                                participants=self.participants[:training_selectors.CURVES_LIMIT])

    @cached_property
    def training_shown(self) -> bool:
        """Some owner's model has a log, or the round has solo utilities: before that there is nothing to show."""
        return any(row["steps"] or row["solo"] is not None for row in self.training)

    @cached_property
    def training_charts(self) -> list[dict]:
        return training_charts.training_curves(self.training)

    @cached_property
    def training_hidden(self) -> int:
        return max(len(self.participants) - training_selectors.CURVES_LIMIT, 0)

    @cached_property
    def fidelity(self):
        return selectors.round_fidelity(valuation_round=self.round)

    @cached_property
    def fidelity_chart(self):
        return charts.fidelity_scatter(self.fidelity) if self.fidelity else None


def _results_cache_key(valuation_round: ValuationRound) -> str | None:
    if valuation_round.status != ValuationRound.Status.DONE:
        return None
    approved = valuation_round.approved_at.timestamp() if valuation_round.approved_at else 0
    # A fidelity check that finishes after the round must show without waiting for the cache to expire; so must
    # a payout correction, which changes no total: the ledger is append-only, so its newest entry marks one.
    report = FidelityReport.objects.filter(round=OuterRef("pk"), status="done").order_by("-pk").values("pk")[:1]
    latest = ValuationRound.objects.filter(pk=valuation_round.pk).annotate(
        report=Subquery(report), entries=Count("payouts"), last=Max("payouts__id")).values_list(
        "report", "entries", "last").get()
    report_id, entries, last = latest
    return (f"{valuation_round.pk}:{valuation_round.created_at.timestamp()}:{approved}:{report_id or 0}:"
            f"{entries}:{last or 0}")


@staff_member_required
def round_detail(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    page = request.GET.get("page", "1")
    page = page if page.isdigit() else "1"
    return render(request, "valuation/round_detail.html", {
        "round": valuation_round,
        "stages": selectors.round_stages(valuation_round=valuation_round),
        "estimate": estimate_selectors.round_estimate(valuation_round=valuation_round),
        "exclusions": selectors.round_exclusions(valuation_round=valuation_round),
        "status_labels": dict(ValuationRound.Status.choices),
        "totals": selectors.round_payout_totals(valuation_round=valuation_round),
        "results": RoundResults(valuation_round, page=page),
        "results_cache_key": _results_cache_key(valuation_round),
        "page_key": page,
        **_screen_context(valuation_round),
    })


def _screen_context(valuation_round: ValuationRound) -> dict:
    """The semantic screen's table (not cached: an acknowledgement must show at once)."""
    report = screening.screen_report(valuation_round)
    rows = screening.screen_rows(report)
    return {"screen": report, "screen_rows": rows, "screen_flagged": sum(r.flagged for r in rows)}


@staff_member_required
@require_POST
def round_approve(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    try:
        count = services.payout_approve(valuation_round=valuation_round, approved_by=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Approved {count} payouts.")
    return redirect("valuation:round-detail", round_id=round_id)


@staff_member_required
@require_POST
def round_screen_acknowledge(request, round_id: int):
    """Acknowledge one flagged owner (POST owner=<id>) or, without an owner, a failed screen; a note is required."""
    valuation_round = selectors.round_get(round_id=round_id)
    owner_id = request.POST.get("owner", "")
    try:
        owner = None
        if owner_id:
            row = screening.screen_rows(screening.screen_report(valuation_round))
            owner = next((r.owner for r in row if str(r.owner_id) == owner_id), None)
            if owner is None:
                raise ValidationError("that owner is not in this round's screen")
        screening.screen_acknowledge(valuation_round=valuation_round, owner=owner, acknowledged_by=request.user,
                                     note=request.POST.get("note", ""))
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Acknowledged {'the failed screen' if owner is None else owner.name}.")
    return redirect("valuation:round-detail", round_id=round_id)


@staff_member_required
def round_payouts_csv(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    values = {v.owner_id: v for v in selectors.round_values(valuation_round=valuation_round)}
    rows = ([valuation_round.name, p.owner.name, round(values[p.owner_id].shapley, 6) if p.owner_id in values else None,
             p.share, selectors.money(p.amount, valuation_round.decimals), p.currency, p.status]
            for p in selectors.round_payouts(valuation_round=valuation_round))
    return csv_response(filename=f"round-{valuation_round.pk}-payouts.csv",
                        header=["round", "owner", "shapley", "share", "amount", "currency", "status"], rows=rows)


def _round_urls(name: str, round_ids) -> dict[int, str]:
    """reverse() once and fill in each round id: a 50-row table would otherwise reverse 50 times."""
    pattern = reverse(name, args=[987654321])
    return {rid: pattern.replace("987654321", str(rid)) for rid in round_ids}


@login_required
def my_payouts(request):
    history = selectors.owner_round_history(user=request.user)
    ids = [r["round_id"] for r in history]
    html_urls, csv_urls = _round_urls("valuation:round-statement", ids), _round_urls("valuation:round-statement-csv", ids)
    for r in history:
        r["statement_url"], r["statement_csv_url"] = html_urls[r["round_id"]], csv_urls[r["round_id"]]
    plotted = [r for r in history if r["value"] is not None or r["amount"] is not None]
    currency = plotted[-1]["currency"] if plotted else "USD"
    return render(request, "valuation/my_payouts.html", {
        "history": list(reversed(history)),  # newest first in the table
        # The chart and table are a cached fragment keyed by their own content: never stale, drawn once.
        "history_key": hashlib.sha256(repr((request.user.pk, history)).encode()).hexdigest(),
        "has_chart": bool(plotted),
        "chart": partial(charts.owner_history, [r for r in plotted if r["currency"] == currency], currency=currency)
        if plotted else None,
    })


def _statement_owner(request, valuation_round: ValuationRound):
    """Whose statement: staff may name any owner (?owner=username); an owner gets only their own."""
    requested = request.GET.get("owner", "").strip()
    mine = marketplace_selectors.owner_of(user=request.user)
    if requested and request.user.is_staff:
        return marketplace_selectors.owner_get(username=requested)
    if requested and (mine is None or mine.user.username != requested):
        raise Http404("no such statement")
    return mine


@login_required
def round_statement(request, round_id: int):
    valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
    owner = _statement_owner(request, valuation_round)
    if owner is None:  # staff who own no data and named nobody: pick an owner
        return render(request, "valuation/statement_choose.html", {
            "round": valuation_round, "participants": selectors.round_participants(valuation_round=valuation_round)})
    statement = selectors.round_statement(valuation_round=valuation_round, owner=owner)
    training = training_selectors.training_rows(valuation_round=valuation_round,
                                                participants=[statement["participant"]])  # theirs alone
    return render(request, "valuation/statement.html", {
        "s": statement, "round": valuation_round, "training": training,
        "training_charts": training_charts.training_curves(training),
        "failure": selectors.error_for(valuation_round.error, staff=request.user.is_staff)})


STATEMENT_COLUMNS = ["round", "owner", "round_status", "utility", "composition", "estimator", "beta", "seed",
                     "eval_set", "base_model_hash", "owners_in_round", "pool", "paid_in_round", "currency",
                     "my_shapley", "my_ci_low", "my_ci_high", "exact", "my_share", "my_amount", "payout_status",
                     "approved_at"]


@login_required
def round_statement_csv(request, round_id: int):
    valuation_round = selectors.round_get_for(user=request.user, round_id=round_id)
    owner = _statement_owner(request, valuation_round)
    if owner is None:
        raise Http404("name an owner: ?owner=username")
    s = selectors.round_statement(valuation_round=valuation_round, owner=owner)
    r, v, p, totals = valuation_round, s["value"], s["payout"], s["totals"]
    row = [r.name, owner.name, r.status, r.utility, r.composition, r.estimator_used or r.estimator,
           r.config.get("beta"), r.seed, r.eval_set.name, r.base_model_hash, totals["n_owners"], totals["pool"],
           totals["paid"], r.currency, v.shapley if v else None, v.ci_low if v else None, v.ci_high if v else None,
           (not v.stderr) if v else None, p.share if p else None, s["amount"], p.status if p else None,
           p.approved_at.isoformat() if p and p.approved_at else None]
    return csv_response(filename=f"round-{r.pk}-statement-{owner.user.username}.csv",
                        header=STATEMENT_COLUMNS, rows=[row])
