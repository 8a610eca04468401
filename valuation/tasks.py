"""Celery tasks: thin — fetch by id, call one service. Safe to deliver twice: the round
runner is idempotent and refuses a round another live runner holds."""
from celery import shared_task
from django.core.exceptions import ValidationError


@shared_task(acks_late=True, ignore_result=True)
def round_execute_task(round_id: int) -> None:
    from .services import round_execute

    try:
        round_execute(round_id=round_id)
    except ValidationError:
        pass  # already done, cancelled, or held by another live runner: nothing to do


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
