from django.contrib import admin

from .models import (BaseModel, CoalitionGeneration, CoalitionUtility, DataQualityReport, ObjectiveValue, OwnerModel, OwnerValue,
                     Payout, RoundExclusion, RoundOwner, RoundTask, ScoreCache, ValuationRound)


class RoundOwnerInline(admin.TabularInline):
    model = RoundOwner
    fields = ["index", "owner", "n_pairs", "n_usable", "n_truncated", "data_hash", "owner_model", "model_reused"]
    readonly_fields = fields
    extra = 0
    max_num = 0


class RoundExclusionInline(admin.TabularInline):
    model = RoundExclusion
    fields = ["owner", "n_pairs", "n_dropped", "reason"]
    readonly_fields = fields
    extra = 0
    max_num = 0


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    """Read-only: a registered model is written by import_base_model and never edited (rounds record its hash)."""

    list_display = ["name", "architecture", "n_parameters", "context_length", "has_chat_template", "dtype",
                    "source_kind", "created_at"]
    readonly_fields = ["name", "path", "source_kind", "source", "source_hash", "architecture", "n_parameters",
                       "context_length", "has_chat_template", "dtype", "content_hash", "created_at", "created_by"]

    def has_add_permission(self, request):
        return False


@admin.register(ValuationRound)
class ValuationRoundAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "utility", "composition", "pool", "currency", "created_at", "approved_at"]
    list_filter = ["status", "utility", "composition"]
    readonly_fields = ["config", "progress", "timings", "base_model", "base_model_hash", "eval_set_hash", "utilities_hash",
                       "runner", "heartbeat_at", "approved_at", "approved_by"]
    inlines = [RoundOwnerInline, RoundExclusionInline]


@admin.register(OwnerModel)
class OwnerModelAdmin(admin.ModelAdmin):
    list_display = ["cache_key", "model_hash", "seconds", "created_at"]
    readonly_fields = ["metrics"]


@admin.register(ScoreCache)
class ScoreCacheAdmin(admin.ModelAdmin):
    list_display = ["model_hash", "eval_hash", "seconds", "created_at"]


@admin.register(OwnerValue)
class OwnerValueAdmin(admin.ModelAdmin):
    list_display = ["round", "owner", "shapley", "ci_low", "ci_high", "banzhaf", "leave_one_out"]
    list_filter = ["round"]


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    """The ledger, read-only once approved. Corrections are appended by valuation.ledger.payout_correct
    (`POST /api/rounds/{id}/corrections/`, `manage.py correct_payouts`), never typed in here."""

    list_display = ["id", "round", "owner", "kind", "amount", "currency", "share", "status", "created_at", "reason"]
    list_filter = ["status", "kind", "round"]
    readonly_fields = ["kind", "reverses", "replaces", "reason", "created_by", "created_at", "approved_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None or obj.status != Payout.Status.APPROVED

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.status != Payout.Status.APPROVED


@admin.register(CoalitionUtility)
class CoalitionUtilityAdmin(admin.ModelAdmin):
    list_display = ["round", "mask", "size", "value"]
    list_filter = ["round"]


@admin.register(ObjectiveValue)
class ObjectiveValueAdmin(admin.ModelAdmin):
    list_display = ["round", "owner", "objective", "shapley", "ci_low", "ci_high", "method"]
    list_filter = ["round", "objective"]


@admin.register(CoalitionGeneration)
class CoalitionGenerationAdmin(admin.ModelAdmin):
    list_display = ["round", "mask", "size", "scores", "n_tokens", "seconds"]
    list_filter = ["round"]
    readonly_fields = ["round", "mask", "size", "scores", "responses", "n_tokens", "seconds"]

    def has_add_permission(self, request):
        return False  # the generation stage writes these, as each coalition is decoded


@admin.register(DataQualityReport)
class DataQualityReportAdmin(admin.ModelAdmin):
    """Read-only: the stage writes these; the round's data-quality page shows pairs and clusters."""

    list_display = ["round", "status", "n_pairs", "n_flagged", "n_chains", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in DataQualityReport._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(RoundTask)
class RoundTaskAdmin(admin.ModelAdmin):
    """Which worker ran which fine-tune or scoring pass, how often and how long (read-only: runners write it)."""

    list_display = ["round", "stage", "index", "status", "worker", "attempts", "cached", "seconds", "finished_at"]
    list_filter = ["stage", "status", "worker"]
    readonly_fields = [f.name for f in RoundTask._meta.fields]

    def has_add_permission(self, request):
        return False
