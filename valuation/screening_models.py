"""Results of a round's semantic screen (stages/screening.py): one report per round, one row per owner.

Imported by valuation/models.py, so Django finds these models in the `valuation` app. Staff only: a row
names which other owners an owner's pairs resemble, and how much of it resembles the eval set, which
owners must never learn. Approving the round's payouts requires every flagged owner (and a failed
screen) to be acknowledged by staff, with who, when and why recorded.
"""
from django.conf import settings
from django.db import models

from marketplace.models import DataOwner


class ScreenReport(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    round = models.OneToOneField("valuation.ValuationRound", on_delete=models.CASCADE, related_name="screen_report")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    config = models.JSONField(default=dict, blank=True)  # engine ScreenConfig + representation config, as run
    error = models.TextField(blank=True)  # why the screen failed (staff only)
    n_pairs = models.PositiveIntegerField(default=0)
    n_eval = models.PositiveIntegerField(default=0)
    n_embedded = models.PositiveIntegerField(default=0)  # pairs whose representation was computed (not cached)
    seconds = models.FloatField(null=True, blank=True)
    # A failed screen must be acknowledged like a flagged owner before payouts can be approved.
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"screen of {self.round}"


class OwnerScreen(models.Model):
    report = models.ForeignKey(ScreenReport, on_delete=models.CASCADE, related_name="owners")
    owner = models.ForeignKey(DataOwner, on_delete=models.PROTECT, related_name="+")
    n_pairs = models.PositiveIntegerField()
    n_eval = models.PositiveIntegerField()  # pairs whose nearest eval pair is above the cosine threshold
    n_owner = models.PositiveIntegerField()  # pairs whose nearest other-owner pair is above it
    share_eval = models.FloatField()
    share_owner = models.FloatField()
    max_eval = models.FloatField()
    max_owner = models.FloatField()
    matched_owners = models.JSONField(default=list, blank=True)  # [{"owner": name, "owner_id": id, "pairs": k}]
    flagged = models.BooleanField(default=False)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement_note = models.TextField(blank=True)

    class Meta:
        ordering = ["report_id", "-flagged", "owner_id"]
        constraints = [models.UniqueConstraint(fields=["report", "owner"], name="ownerscreen_unique_owner")]

    def __str__(self) -> str:
        return f"screen of {self.owner} in {self.report.round}"
