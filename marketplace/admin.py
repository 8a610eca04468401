from django.contrib import admin

from .models import Contribution, DataOwner, EvalPair, EvalSet, PreferencePair


@admin.register(DataOwner)
class DataOwnerAdmin(admin.ModelAdmin):
    list_display = ["user", "display_name", "created_at"]
    search_fields = ["user__username", "display_name"]


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
