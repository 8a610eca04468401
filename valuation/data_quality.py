"""Writes of the data-quality stage outside the round runner: value the pairs of a finished round.

A round opts in at creation (`round_create(data_quality=True)`) and the runner runs the stage
after valuing. An admin can also ask for it later, or again with other options:
`data_quality_request` records the request (the web/API path queues a Celery task after
commit), `data_quality_run` does the work (in the worker, or in the foreground for
`manage.py value_pairs`). Both go through the one stage, valuation/stages/data_quality.py.
"""
from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import DataQualityReport, PairCluster, PairValue, ValuationRound
from .stages.data_quality import data_quality_config, ensure_data_quality

logger = logging.getLogger(__name__)


@transaction.atomic
def data_quality_request(*, valuation_round: ValuationRound, options: dict | None = None, requested_by=None,
                         queue: bool = True) -> DataQualityReport:
    """Opt a finished round into the stage. `options` change only what they name in the recorded config; a
    changed config (or a failed report) starts it over, a report done with the same config is returned as is. With `queue`, a worker runs it once this commits."""
    from .tasks import data_quality_task

    locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
    if locked.status != ValuationRound.Status.DONE:
        raise ValidationError(f"only a finished round's pairs can be valued (this one is {locked.status}); "
                              "create the round with data quality on to run it after valuing")
    report = DataQualityReport.objects.filter(round=locked).first()
    recorded = report.config if report else locked.config.get("data_quality")
    config = data_quality_config(options, seed=locked.seed, base=recorded)  # options change only what they name
    if report is not None and report.status == DataQualityReport.Status.RUNNING:
        raise ValidationError(f"the data-quality stage of '{locked.name}' is running; wait for it to finish")
    if report is None:
        report = DataQualityReport.objects.create(round=locked, config=config, requested_by=requested_by)
    elif report.config != config or report.status == DataQualityReport.Status.FAILED:
        PairValue.objects.filter(report=report).delete()
        PairCluster.objects.filter(report=report).delete()
        DataQualityReport.objects.filter(pk=report.pk).update(
            status=DataQualityReport.Status.QUEUED, config=config, error="", progress={}, timings={},
            requested_by=requested_by, started_at=None, finished_at=None)
        report.refresh_from_db()
    ValuationRound.objects.filter(pk=locked.pk).update(data_quality=True)
    if queue and report.status != DataQualityReport.Status.DONE:
        transaction.on_commit(lambda: data_quality_task.delay(locked.pk))
    return report


def data_quality_run(*, valuation_round: ValuationRound, on_progress=None) -> DataQualityReport:
    """Run (or resume) the stage in this process; a done report is returned as is. Raises on failure."""
    valuation_round.refresh_from_db()
    if not valuation_round.data_quality:
        raise ValidationError(f"round '{valuation_round.name}' has not asked for the data-quality stage")
    return ensure_data_quality(valuation_round, on_progress=on_progress)
