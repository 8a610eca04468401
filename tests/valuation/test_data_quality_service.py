"""The data-quality stage's bookkeeping without a model: who may run it, what a failure leaves behind."""
import os
import socket

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from valuation import data_quality, services
from valuation.models import DataQualityReport, ValuationRound
from valuation.stages.data_quality import ensure_data_quality, run_data_quality
from tests.valuation.quality_fixtures import make_assessed_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def assessed(fake_model_dir):
    return make_assessed_round(fake_model_dir)


def test_a_live_runner_keeps_the_stage_and_a_second_caller_is_refused(assessed):
    r = assessed["round"]
    live = f"{socket.gethostname()}:{os.getppid()}"  # our parent: alive, and not us
    DataQualityReport.objects.filter(round=r).update(status=DataQualityReport.Status.RUNNING, runner=live,
                                                     heartbeat_at=timezone.now())
    with pytest.raises(ValidationError, match="is being run by"):
        ensure_data_quality(r)
    assert run_data_quality(r).runner == live  # the round runner's call logs it and leaves it alone
    with pytest.raises(ValidationError, match="is running; wait"):
        data_quality.data_quality_request(valuation_round=r, options={"chain_size": 8}, queue=False)


def test_a_failure_is_recorded_on_the_report_and_the_round_stays_done(assessed, fake_model_dir):
    r = assessed["round"]
    DataQualityReport.objects.filter(round=r).update(status=DataQualityReport.Status.FAILED)
    data_quality.data_quality_request(valuation_round=r, queue=False)  # a failed report starts over
    (fake_model_dir / "config.json").write_text('{"model_type": "llama", "changed": true}')
    report = run_data_quality(r)
    assert report.status == DataQualityReport.Status.FAILED and "changed since the round was created" in report.error
    assert report.runner == "" and not report.pair_values.exists()
    r.refresh_from_db()
    assert r.status == ValuationRound.Status.DONE
    with pytest.raises(ValidationError, match="changed since"):
        data_quality.data_quality_run(valuation_round=r)  # the command's path raises


def test_only_finished_rounds_take_a_late_request(fake_model_dir, assessed):
    r = assessed["round"]
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.SCORING)
    with pytest.raises(ValidationError, match="only a finished round"):
        data_quality.data_quality_request(valuation_round=r, queue=False)


def test_a_round_that_did_not_opt_in_runs_nothing(assessed, fake_model_dir):
    plain = services.round_create(name="plain", pool="1.00", eval_set=assessed["round"].eval_set,
                                  base_model_dir=str(fake_model_dir))
    assert not plain.data_quality and "data_quality" not in plain.config
    assert run_data_quality(plain) is None and not DataQualityReport.objects.filter(round=plain).exists()
    with pytest.raises(ValidationError, match="has not asked for"):
        data_quality.data_quality_run(valuation_round=plain)
