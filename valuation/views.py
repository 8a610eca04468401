"""Server-rendered pages of valuation rounds. Thin: one service or selector call each."""
import csv

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import selectors, services
from .forms import RoundForm


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
                    base_model_dir=data["base_model"], utility=data["utility"], composition=data["composition"],
                    estimator=data["estimator"], seed=data["seed"], created_by=request.user)
                services.round_queue(valuation_round=valuation_round)
        except ValidationError as exc:
            form.add_error(None, "; ".join(exc.messages))
        else:
            messages.success(request, f"Round '{valuation_round.name}' queued.")
            return redirect("valuation:round-detail", round_id=valuation_round.pk)
    return render(request, "valuation/round_new.html", {"form": form}, status=400 if form.errors else 200)


@staff_member_required
def round_detail(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    context = {
        "round": valuation_round,
        "participants": selectors.round_participants(valuation_round=valuation_round),
        "values": selectors.round_values(valuation_round=valuation_round),
        "payouts": selectors.round_payouts(valuation_round=valuation_round),
        "totals": selectors.round_payout_totals(valuation_round=valuation_round),
        "coalitions": selectors.round_coalitions(valuation_round=valuation_round)[:64],
    }
    return render(request, "valuation/round_detail.html", context)


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
def round_payouts_csv(request, round_id: int):
    valuation_round = selectors.round_get(round_id=round_id)
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="round-{valuation_round.pk}-payouts.csv"'
    writer = csv.writer(response)
    writer.writerow(["round", "owner", "shapley", "share", "amount", "currency", "status"])
    values = {v.owner_id: v for v in selectors.round_values(valuation_round=valuation_round)}
    for payout in selectors.round_payouts(valuation_round=valuation_round):
        value = values.get(payout.owner_id)
        writer.writerow([valuation_round.name, payout.owner.name, f"{value.shapley:.6f}" if value else "",
                         payout.share, payout.amount, payout.currency, payout.status])
    return response


@login_required
def my_payouts(request):
    return render(request, "valuation/my_payouts.html", {
        "payouts": selectors.owner_payouts(user=request.user),
        "values": selectors.owner_values(user=request.user),
    })
