from django.contrib import admin

from . import selectors
from .models import Contribution, DataOwner, EvalPair, EvalSet, PreferencePair, RefusalTally


class RefusalTallyInline(admin.TabularInline):
    model = RefusalTally
    fields = ["day", *selectors.REFUSAL_COUNTS]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(DataOwner)
class DataOwnerAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name", "created_at", "copies_refused", "possible_probing"]
    search_fields = ["user__username", "display_name"]
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
