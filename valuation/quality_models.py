"""Pair- and cluster-level results of a round's data-quality stage (docs/design.md §2, "Pair level",
"Cluster level"): one report per round, one value per pair, one row per cluster.

Imported by valuation/models.py, so Django finds these models in the `valuation` app.
Owners read only the PairValue rows of their own pairs (quality_selectors.py); clusters mix
owners' data, so only staff read them.
"""
from django.conf import settings
from django.db import models

from marketplace.models import DataOwner, PreferencePair


class DataQualityReport(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    round = models.OneToOneField("valuation.ValuationRound", on_delete=models.CASCADE,
                                 related_name="data_quality_report")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    config = models.JSONField(default=dict, blank=True)  # engine DataQualityConfig, seeds included
    progress = models.JSONField(default=dict, blank=True)  # {"step": name, "done": k, "total": m}
    timings = models.JSONField(default=dict, blank=True)  # {"representations": s, "values": s, "total": s}
    error = models.TextField(blank=True)
    n_pairs = models.PositiveIntegerField(default=0)
    n_flagged = models.PositiveIntegerField(default=0)
    n_chains = models.PositiveIntegerField(default=0)
    n_fits = models.BigIntegerField(default=0)  # classifier fits: what the values cost
    n_embedded = models.PositiveIntegerField(default=0)  # pairs whose representation was computed (not cached)
    n_features = models.PositiveSmallIntegerField(default=0)
    values_seed = models.BigIntegerField(null=True, blank=True)
    clusters_seed = models.BigIntegerField(null=True, blank=True)
    full_utility = models.FloatField(null=True, blank=True)  # the classifier on every pair, on the eval set
    empty_utility = models.FloatField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    runner = models.CharField(max_length=100, blank=True)  # host:pid holding it; a dead one may be taken over
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"data quality of {self.round}"


class PairCluster(models.Model):
    """A SHED cluster: its proxy (the pair nearest the centroid) and the proxy's Shapley value."""

    report = models.ForeignKey(DataQualityReport, on_delete=models.CASCADE, related_name="clusters")
    index = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    value = models.FloatField()
    stderr = models.FloatField()
    proxy = models.ForeignKey(PreferencePair, on_delete=models.PROTECT, related_name="+")
    n_owners = models.PositiveIntegerField()
    n_flagged = models.PositiveIntegerField()
    mean_pair_value = models.FloatField()
    examples = models.JSONField(default=list, blank=True)  # prompts of the pairs nearest the centroid

    class Meta:
        ordering = ["report_id", "-value", "index"]
        constraints = [models.UniqueConstraint(fields=["report", "index"], name="paircluster_unique_index")]


class PairValue(models.Model):
    """One pair's TS-DShapley value in a round, with the flag and reason its owner sees."""

    class Reason(models.TextChoices):
        NONE = "", "not flagged"
        REVERSED = "reversed", "labels look swapped"
        HARMFUL = "harmful", "lowers held-out accuracy"

    report = models.ForeignKey(DataQualityReport, on_delete=models.CASCADE, related_name="pair_values")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="pair_values")
    pair = models.ForeignKey(PreferencePair, on_delete=models.PROTECT, related_name="values")
    value = models.FloatField()
    stderr = models.FloatField()
    n_chains = models.PositiveIntegerField()
    agreement = models.FloatField()  # σ(w·z) under the classifier on the unflagged pairs
    cluster = models.PositiveIntegerField()
    rank = models.PositiveIntegerField()  # within the owner's pairs, 1 = lowest value
    flagged = models.BooleanField(default=False)
    reason = models.CharField(max_length=10, choices=Reason.choices, blank=True)

    class Meta:
        ordering = ["report_id", "owner_id", "rank"]
        constraints = [models.UniqueConstraint(fields=["report", "pair"], name="pairvalue_unique_pair")]
        indexes = [models.Index(fields=["report", "owner", "flagged"], name="pairvalue_owner_flagged")]
