"""Server-rendered pages of the marketplace. Thin: a form, one service call, a template."""
from decimal import Decimal
from functools import cached_property

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import charts, payees, selectors, services, upload_rate
from .forms import EvalSetForm, SignupForm, UploadForm
from .models import Payee
from .parsing import UploadRefused


def home(request):
    if not request.user.is_authenticated:
        return redirect("marketplace:login")
    if request.user.is_staff:
        return redirect("valuation:round-list")
    return redirect("marketplace:contributions")


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        owner = services.owner_create(username=form.cleaned_data["username"],
                                      password=form.cleaned_data["password1"], email=form.cleaned_data["email"])
        login(request, owner.user)
        messages.success(request, "Welcome! Upload your first preference file below.")
        return redirect("marketplace:contributions")
    return render(request, "marketplace/signup.html", {"form": form})


@login_required
def contribution_list(request):
    posted = request.method == "POST"  # bound even when empty, so a missing file is reported
    form = UploadForm(request.POST if posted else None, request.FILES if posted else None)
    refusal = denied = throttled = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            owner = services.owner_for_user(request.user)
            throttled = upload_rate.upload_wait(owner)
            if throttled:
                messages.error(request, upload_rate.wait_message(throttled))
            else:
                contribution = services.contribution_create(owner=owner, file=upload, filename=upload.name,
                                                            content_type=upload.content_type)
        except UploadRefused as exc:
            upload_rate.upload_counted(owner, rows=exc.n_rows)
            refusal = exc
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            denied = exc
        else:
            if not throttled:
                upload_rate.upload_counted(owner, rows=contribution.n_pairs)
                messages.success(request, f"Accepted {contribution.n_pairs} pairs from {contribution.original_name}.")
                return redirect("marketplace:contribution-detail", contribution_id=contribution.pk)
    page = Paginator(selectors.contribution_list(user=request.user), 25).get_page(request.GET.get("page"))
    status = 403 if denied else 429 if throttled else 400 if refusal or (
        request.method == "POST" and not form.is_valid()) else 200
    response = render(request, "marketplace/contribution_list.html",
                      {"form": form, "page": page, "refusal": refusal,
                       "verification": _verification(request.user)}, status=status)
    if throttled:
        response["Retry-After"] = str(throttled)
    return response


def _verification(user) -> dict | None:
    """The owner's own verification status and what it means for their pay (staff see everyone's in the
    overview and the admin)."""
    owner = selectors.owner_of(user=user)
    if owner is None:
        return None
    return {"status": owner.verification, "label": dict(Payee.Status.choices)[owner.verification],
            "payee": owner.payee.name if owner.payee_id else "", "meaning": payees.status_meaning(owner)}


@login_required
def contribution_detail(request, contribution_id: int):
    contribution = selectors.contribution_get(user=request.user, contribution_id=contribution_id)
    pairs = Paginator(selectors.contribution_pairs(contribution=contribution), 50).get_page(request.GET.get("page"))
    return render(request, "marketplace/contribution_detail.html", {"contribution": contribution, "pairs": pairs})


@login_required
def contribution_download(request, contribution_id: int):
    contribution = selectors.contribution_get(user=request.user, contribution_id=contribution_id)
    response = StreamingHttpResponse(selectors.contribution_jsonl(contribution=contribution),
                                     content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="contribution-{contribution.pk}.jsonl"'
    return response


@login_required
@require_POST
def contribution_delete(request, contribution_id: int):
    contribution = selectors.contribution_get(user=request.user, contribution_id=contribution_id)
    if contribution.owner.user_id != request.user.pk:
        raise PermissionDenied("only the owner may delete a contribution")
    try:
        services.contribution_delete(contribution=contribution)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("marketplace:contribution-detail", contribution_id=contribution_id)
    messages.success(request, f"Deleted {contribution.original_name}.")
    return redirect("marketplace:contributions")


@staff_member_required
def eval_set_list(request):
    posted = request.method == "POST"  # bound even when empty, so a missing file is reported
    form = EvalSetForm(request.POST if posted else None, request.FILES if posted else None)
    refusal = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            eval_set = services.eval_set_create(name=form.cleaned_data["name"], file=upload, filename=upload.name,
                                                content_type=upload.content_type, created_by=request.user)
        except UploadRefused as exc:
            refusal = exc
        else:
            messages.success(request, f"Eval set '{eval_set.name}' stored with {eval_set.n_pairs} pairs.")
            return redirect("marketplace:eval-sets")
    return render(request, "marketplace/eval_set_list.html",
                  {"form": form, "eval_sets": selectors.eval_set_list(), "refusal": refusal},
                  status=400 if refusal else 200)


class Overview:
    """The overview's numbers and charts, computed only when the template asks: the page is cached
    fragments keyed by `selectors.overview_version()`, so a warm page asks for none of this."""

    def __init__(self, page: str | None):
        self.page_number = page

    @cached_property
    def rounds(self) -> list[dict]:
        return selectors.overview_rounds()

    @cached_property
    def currency(self) -> str:
        return selectors.main_currency(self.rounds)

    @cached_property
    def owners(self) -> list[dict]:
        return selectors.overview_owners(rank_currency=self.currency)

    @cached_property
    def totals(self) -> dict:
        return selectors.overview_totals()

    @cached_property
    def page(self):
        return Paginator(self.owners, 50).get_page(self.page_number)

    @cached_property
    def latest_rounds(self) -> list[dict]:
        return list(reversed(self.rounds))[:20]

    @cached_property
    def other_currencies(self) -> list[str]:
        return sorted({r["currency"] for r in self.rounds} - {self.currency})

    @cached_property
    def rounds_chart(self):
        in_currency = [r for r in self.rounds if r["currency"] == self.currency]
        return charts.rounds_over_time(in_currency, currency=self.currency) if in_currency else None

    @cached_property
    def paid_chart(self):
        zero = Decimal(0)
        per_owner = [{"owner": o["owner"], "paid": o["paid"].get(self.currency, zero),
                      "pending": o["pending"].get(self.currency, zero)} for o in self.owners if o["rank"]]
        return charts.paid_per_owner(per_owner, currency=self.currency) if per_owner else None


@staff_member_required
def overview(request):
    """Owners, pairs, uploads, rounds over time and what each owner was paid, across the marketplace."""
    page = request.GET.get("page", "1")
    return render(request, "marketplace/overview.html", {
        "o": Overview(page), "version": selectors.overview_version(), "page_key": page if page.isdigit() else "1"})
