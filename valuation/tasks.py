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
