"""A round on Celery workers: one task per owner fine-tune and per scoring pass, then valuing.

`round_queue` (services.py) sends `round_execute_task`, whose service `round_dispatch` claims
the round for the workers (runner "celery": a foreground `run_round` is refused while they
work) and sends the current stage's unfinished units as one Celery group. Each unit task
runs `stages.units.unit_run` — the function the foreground runner loops over — and then
`round_advance`: the task that finds its stage complete moves the round on with a
conditional UPDATE of the status, so exactly one of the stage's last tasks sends the next
group (the scoring passes) or the valuing task (`stages.run_screening`, then `stages.run_valuing`, as in
the foreground).

The join is the database rather than a Celery chord: a chord needs a result backend and
counts deliveries, so a redelivered task could fire it before every unit is done; the
units' rows say what is done however often a message was delivered.

Resumable: dispatching is idempotent (done units are skipped, live leases make a duplicate
wait), and every worker re-sends the unfinished Celery rounds when it starts
(`rounds_resume`), so a round whose worker was killed — its message lost with the SQLite
broker, or waiting out Redis's visibility timeout — goes on as soon as a worker is back.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from . import services, stages
from .models import RoundTask, ValuationRound
from .stages import units
from .stages.common import record_timing, set_status

logger = logging.getLogger(__name__)
CELERY_RUNNER = "celery"  # ValuationRound.runner while workers own the round
STAGE_ORDER = (RoundTask.Stage.TRAINING, RoundTask.Stage.SCORING)
NEXT_STATUS = {RoundTask.Stage.TRAINING: ValuationRound.Status.SCORING,
               RoundTask.Stage.SCORING: ValuationRound.Status.VALUING}


def round_dispatch(*, round_id: int) -> None:
    """Claim the round for the workers and send its next unfinished work. Idempotent."""
    existing = ValuationRound.objects.get(pk=round_id)
    if existing.status in (ValuationRound.Status.DONE, ValuationRound.Status.CANCELLED):
        return
    services.round_snapshot_check(valuation_round=existing)
    valuation_round = services.round_claim(round_id=round_id, runner=CELERY_RUNNER)
    if valuation_round.started_at is None:
        ValuationRound.objects.filter(pk=round_id).update(started_at=timezone.now())
    _send_next(valuation_round)


def _send_next(valuation_round: ValuationRound) -> None:
    from .tasks import round_unit_task, round_value_task

    for stage in STAGE_ORDER:
        pending = units.stage_pending(valuation_round, stage)
        if pending:
            set_status(valuation_round, stage)
            stage_progress(valuation_round, stage)
            _send(lambda: _group(round_unit_task, valuation_round.pk, stage, pending).apply_async())
            logger.info("round %s: %d %s task(s) sent", valuation_round.pk, len(pending), stage)
            return
    set_status(valuation_round, ValuationRound.Status.VALUING)
    _send(lambda: round_value_task.delay(valuation_round.pk))


def _group(task, round_id: int, stage: str, indices: list[int]):
    from celery import group

    return group(task.s(round_id, str(stage), index) for index in indices)


def _send(send) -> None:
    """Send after the surrounding transaction commits (at once in a worker, which has none)."""
    transaction.on_commit(send)


def round_unit(*, round_id: int, stage: str, index: int, worker: str) -> None:
    """One unit task: run the unit (unless done), then move the round on if it was the stage's last.
    Raises `units.UnitBusy` while another live process holds the unit (the task retries later)."""
    if not ValuationRound.objects.filter(pk=round_id, status__in=ValuationRound.ACTIVE).exists():
        return  # cancelled, failed or done meanwhile: a re-queue sends what is left
    try:
        units.unit_run(round_id=round_id, stage=stage, index=index, worker=worker)
    except units.UnitBusy:
        raise
    except Exception as exc:
        services.round_fail(round_id=round_id, exc=exc)
        raise
    round_advance(round_id=round_id, stage=stage)


def round_advance(*, round_id: int, stage: str) -> bool:
    """Move the round past ``stage`` when all its units are done; True for the one caller that does."""
    valuation_round = ValuationRound.objects.get(pk=round_id)
    stage_progress(valuation_round, stage)
    if units.stage_pending(valuation_round, stage):
        return False  # other units of the stage are still queued or running
    moved = ValuationRound.objects.filter(pk=round_id, status=stage).update(
        status=NEXT_STATUS[RoundTask.Stage(stage)], heartbeat_at=timezone.now())
    if not moved:
        return False  # another task moved it already, or the round stopped
    _record_stage_time(valuation_round, stage)
    valuation_round.refresh_from_db()
    _send_next(valuation_round)
    return True


def round_value(*, round_id: int) -> None:
    """The valuing task: values, payouts, done (stages.run_valuing). A second delivery finds it done."""
    valuation_round = ValuationRound.objects.get(pk=round_id)
    if valuation_round.status != ValuationRound.Status.VALUING:
        return  # done already (duplicate), or stopped
    try:
        stages.run_screening(valuation_round)  # done already on a redelivery; records its own failure
        stages.run_valuing(valuation_round)
    except Exception as exc:
        services.round_fail(round_id=round_id, exc=exc)
        raise
    ValuationRound.objects.filter(pk=round_id, runner=CELERY_RUNNER).update(runner="", finished_at=timezone.now())
    if valuation_round.data_quality:  # opt-in stage after valuing: its own task (resumable, records its own failure)
        from .tasks import data_quality_task

        _send(lambda: data_quality_task.delay(round_id))


def stage_progress(valuation_round: ValuationRound, stage: str) -> None:
    """progress[stage] from the units' rows, written under a row lock so workers never step back."""
    with transaction.atomic():
        locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
        rows = RoundTask.objects.filter(round=locked, stage=stage)
        progress = dict(locked.progress, **{str(stage): {
            "done": rows.filter(status=RoundTask.Status.DONE).count(), "total": rows.count()}})
        ValuationRound.objects.filter(pk=locked.pk).update(progress=progress, heartbeat_at=timezone.now())
    valuation_round.progress = progress


def _record_stage_time(valuation_round: ValuationRound, stage: str) -> None:
    """Wall-clock time of a stage run by several workers: first unit started to last unit finished."""
    span = RoundTask.objects.filter(round=valuation_round, stage=stage).aggregate(
        first=Min("started_at"), last=Max("finished_at"))
    if span["first"] and span["last"]:
        valuation_round.refresh_from_db(fields=["timings"])
        record_timing(valuation_round, str(stage), (span["last"] - span["first"]).total_seconds())


def rounds_resume() -> int:
    """Re-send every unfinished round the workers own (a worker calls this when it starts). Returns how many."""
    from .tasks import round_execute_task

    # Rounds the workers own, and queued ones whose first message may be gone; not a foreground runner's.
    rounds = ValuationRound.objects.filter(status__in=ValuationRound.ACTIVE).filter(
        Q(runner=CELERY_RUNNER) | Q(status=ValuationRound.Status.QUEUED, runner=""))
    ids = list(rounds.values_list("pk", flat=True))
    for round_id in ids:
        round_execute_task.delay(round_id)
    return len(ids)
