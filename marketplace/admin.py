from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError

from . import selectors
from .models import Contribution, DataOwner, EvalPair, EvalSet, Payee, PreferencePair, RefusalTally
from .payees import owner_set_status, payee_set_status
from .usernames import validate_username


def _set_owner_status(status: str, label: str):
    def action(modeladmin, request, queryset):
        done = 0
        for owner in queryset.select_related("user"):
            try:
                owner_set_status(owner=owner, status=status, changed_by=request.user)
                done += 1
            except ValidationError as exc:
                modeladmin.message_user(request, f"{owner.user.get_username()}: {'; '.join(exc.messages)}",
                                        messages.ERROR)
        modeladmin.message_user(request, f"{label} {done} owner(s)' payee(s).")
    action.__name__ = f"owner_{status}"
    action.short_description = f"{label} the selected owners (their payee)"
    return action


def _set_payee_status(status: str, label: str):
    def action(modeladmin, request, queryset):
        for payee in queryset:
            payee_set_status(payee=payee, status=status, changed_by=request.user)
        modeladmin.message_user(request, f"{label} {queryset.count()} payee(s).")
    action.__name__ = f"payee_{status}"
    action.short_description = f"{label} the selected payees"
    return action


class AccountInline(admin.TabularInline):
    model = DataOwner
    fields = ["user", "display_name", "created_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True


@admin.register(Payee)
class PayeeAdmin(admin.ModelAdmin):
    """Status changes go through the actions, which record who changed it and when."""

    list_display = ["name", "status", "status_changed_by", "status_changed_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "accounts__user__username"]
    readonly_fields = ["status", "status_changed_by", "status_changed_at", "created_at"]
    inlines = [AccountInline]
    actions = [_set_payee_status(Payee.Status.VERIFIED, "Verified"),
               _set_payee_status(Payee.Status.SUSPENDED, "Suspended"),
               _set_payee_status(Payee.Status.PENDING, "Returned to pending")]


class RefusalTallyInline(admin.TabularInline):
    model = RefusalTally
    fields = ["day", *selectors.REFUSAL_COUNTS]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(DataOwner)
class DataOwnerAdmin(admin.ModelAdmin):
    """An account joins a payee only through verification (`manage.py verify_owner --payee`, the actions)."""

    list_display = ["user", "display_name", "payee", "verification", "created_at", "copies_refused",
                    "possible_probing"]
    list_filter = ["payee__status"]
    search_fields = ["user__username", "display_name", "payee__name"]
    readonly_fields = ["payee", "verification"]
    actions = [_set_owner_status(Payee.Status.VERIFIED, "Verified"),
               _set_owner_status(Payee.Status.SUSPENDED, "Suspended")]
    inlines = [RefusalTallyInline]

    def get_queryset(self, request):
        return selectors.owners_with_refusals(super().get_queryset(request))

    @admin.display(description="copies refused (exact / near / eval, probing window)")
    def copies_refused(self, owner) -> str:
        return f"{owner.window_exact or 0} / {owner.window_near or 0} / {owner.window_eval or 0}"

    @admin.display(description="possible probing", boolean=True)
    def possible_probing(self, owner) -> bool:
        return selectors.looks_like_probing(
            held_rows=(owner.window_exact or 0) + (owner.window_near or 0) + (owner.window_eval or 0),
            uploads_refused=owner.window_refused or 0,
            uploads=(owner.window_refused or 0) + (owner.window_accepted or 0))


@admin.register(RefusalTally)
class RefusalTallyAdmin(admin.ModelAdmin):
    list_display = ["owner", "day", *selectors.REFUSAL_COUNTS]
    list_filter = ["day"]
    search_fields = ["owner__user__username"]
    readonly_fields = ["owner", "day", *selectors.REFUSAL_COUNTS]

    def has_add_permission(self, request) -> bool:  # written by uploads only: a record, not a form
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class PreferencePairInline(admin.TabularInline):
    model = PreferencePair
    fields = ["row_number", "prompt", "chosen", "rejected"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True


@admin.register(Contribution)
class ContributionAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "original_name", "file_format", "n_pairs", "status", "created_at"]
    list_filter = ["status", "file_format"]
    search_fields = ["owner__user__username", "original_name", "sha256"]
    readonly_fields = ["sha256", "row_errors", "created_at"]


@admin.register(PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    list_display = ["id", "contribution", "row_number", "pair_format"]
    search_fields = ["prompt", "content_hash"]
    raw_id_fields = ["contribution"]


@admin.register(EvalSet)
class EvalSetAdmin(admin.ModelAdmin):
    list_display = ["name", "n_pairs", "created_by", "created_at"]


@admin.register(EvalPair)
class EvalPairAdmin(admin.ModelAdmin):
    list_display = ["id", "eval_set", "row_number"]
    raw_id_fields = ["eval_set"]


class _UsernameChecked:
    """The admin's user forms refuse confusable and mixed-script usernames, as signup does."""

    def clean_username(self):
        parent = getattr(super(), "clean_username", None)
        username = parent() if parent else self.cleaned_data["username"]
        if username and (self.instance.pk is None or "username" in self.changed_data):
            validate_username(username, exclude_pk=self.instance.pk)
        return username


class CheckedUserCreationForm(_UsernameChecked, AdminUserCreationForm):
    pass


class CheckedUserChangeForm(_UsernameChecked, UserChangeForm):
    pass


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class CheckedUserAdmin(UserAdmin):
    add_form = CheckedUserCreationForm
    form = CheckedUserChangeForm
