"""Celery tasks: thin — fetch by id, call one service (valuation/dispatch.py). All are safe to
deliver twice: done units are skipped, a unit another live worker holds is retried later, and a
round moves to its next stage once (a conditional update). `acks_late` (settings) keeps a task's
message until it finishes, so a worker killed mid-task leaves it for another."""
from celery import shared_task
from django.core.exceptions import ValidationError

BUSY_RETRY_SECONDS = (5, 60)  # bounds of the wait before asking again for a unit another worker holds


@shared_task(acks_late=True, ignore_result=True)
def round_execute_task(round_id: int) -> None:
    """Start or resume a round on the workers: claim it and send its next unfinished stage as a group."""
    from .dispatch import round_dispatch

    try:
        round_dispatch(round_id=round_id)
    except ValidationError:
        pass  # done, cancelled, or held by a foreground runner: nothing to do


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def round_unit_task(self, round_id: int, stage: str, index: int) -> None:
    """One owner's fine-tune (stage "training") or one model's scoring pass ("scoring"; index -1 = base)."""
    from .dispatch import round_unit
    from .stages.units import UnitBusy

    try:
        round_unit(round_id=round_id, stage=stage, index=index, worker=self.request.hostname or "celery")
    except UnitBusy as busy:
        low, high = BUSY_RETRY_SECONDS
        raise self.retry(countdown=max(low, min(high, busy.retry_in)))


@shared_task(acks_late=True, ignore_result=True)
def round_value_task(round_id: int) -> None:
    """Utilities, Shapley values and draft payouts of a round whose scores are all cached."""
    from .dispatch import round_value

    round_value(round_id=round_id)


@shared_task(acks_late=True, ignore_result=True)
def round_verify_task(report_id: int) -> None:
    """A fidelity check of a finished round (valuation/fidelity.py); its models are cached, so a second
    delivery retrains nothing."""
    from .fidelity import fidelity_run

    fidelity_run(report_id=report_id)


@shared_task(acks_late=True, ignore_result=True)
def data_quality_task(round_id: int) -> None:
    """The data-quality stage of a finished round (valuation/data_quality.py); resumable, so a second delivery
    finds it done or takes over a dead runner."""
    from .data_quality import data_quality_run
    from .models import ValuationRound

    try:
        data_quality_run(valuation_round=ValuationRound.objects.get(pk=round_id))
    except ValidationError:
        pass  # held by another live runner, or no longer asked for
