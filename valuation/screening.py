"""Staff reads and writes of a round's semantic screen (stages/screening.py): the per-owner table, the
acknowledgements that approval requires, and what blocks approval.

Owners never read any of it: the table says which other owners an owner's pairs resemble, and how close
the data comes to the eval set, which owners must not learn (they are paid by the valuation on it).
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from marketplace.models import DataOwner

from .models import OwnerScreen, ScreenReport, ValuationRound

NOTE_MAX = 2000


def screen_report(valuation_round: ValuationRound) -> ScreenReport | None:
    return ScreenReport.objects.filter(round=valuation_round).first()


def screen_rows(report: ScreenReport | None) -> list[OwnerScreen]:
    if report is None:
        return []
    rows = report.owners.select_related("owner__user", "acknowledged_by")
    return list(rows.order_by("-flagged", "owner__user__username"))


def approval_blockers(valuation_round: ValuationRound) -> list[str]:
    """Why the round's payouts cannot be approved yet because of its screen (empty: nothing blocks).

    A round with no screen report (finished before the screen existed) is not blocked."""
    report = screen_report(valuation_round)
    if report is None:
        return []
    if report.status == ScreenReport.Status.FAILED and report.acknowledged_at is None:
        return ["the semantic screen failed and the failure is not acknowledged"]
    if report.status == ScreenReport.Status.RUNNING:
        return ["the semantic screen has not finished"]
    pending = report.owners.filter(flagged=True, acknowledged_at__isnull=True).select_related("owner__user")
    return [f"{row.owner.name} is above the screen's threshold and not acknowledged"
            for row in pending.order_by("owner__user__username")]


def _note(note) -> str:
    note = (note or "").strip()
    if not note:
        raise ValidationError("say why (a note) when acknowledging the screen")
    if len(note) > NOTE_MAX:
        raise ValidationError(f"the note is longer than {NOTE_MAX} characters")
    return note


@transaction.atomic
def screen_acknowledge(*, valuation_round: ValuationRound, acknowledged_by, note: str,
                       owner: DataOwner | None = None) -> ScreenReport | OwnerScreen:
    """Record that staff looked at a flagged owner (``owner``), or at a failed screen (no ``owner``), and why
    the payouts may still be approved. Once per owner or failure; approved payouts are not reopened."""
    note = _note(note)
    locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
    if locked.approved_at is not None:
        raise ValidationError(f"payouts of '{locked.name}' are already approved")
    report = ScreenReport.objects.select_for_update().filter(round=locked).first()
    if report is None:
        raise ValidationError(f"round '{locked.name}' has no semantic screen")
    now = timezone.now()
    if owner is None:
        if report.status != ScreenReport.Status.FAILED:
            raise ValidationError("only a failed screen is acknowledged as a whole; "
                                  "acknowledge flagged owners one by one")
        if report.acknowledged_at is not None:
            raise ValidationError(f"the failed screen was already acknowledged on {report.acknowledged_at:%Y-%m-%d}")
        ScreenReport.objects.filter(pk=report.pk).update(acknowledged_by=acknowledged_by, acknowledged_at=now,
                                                         acknowledgement_note=note)
        report.refresh_from_db()
        return report
    row = OwnerScreen.objects.select_for_update().filter(report=report, owner=owner).first()
    if row is None:
        raise ValidationError(f"{owner.name} is not in the screen of '{locked.name}'")
    if not row.flagged:
        raise ValidationError(f"{owner.name} is not above the screen's threshold: nothing to acknowledge")
    if row.acknowledged_at is not None:
        raise ValidationError(f"{owner.name} was already acknowledged on {row.acknowledged_at:%Y-%m-%d}")
    OwnerScreen.objects.filter(pk=row.pk).update(acknowledged_by=acknowledged_by, acknowledged_at=now,
                                                 acknowledgement_note=note)
    row.refresh_from_db()
    return row
