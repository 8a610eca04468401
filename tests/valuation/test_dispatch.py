"""The Celery fan-out (valuation/dispatch.py) run eagerly in this process on cached scores: one task
per unit, the stage join in the database, exactly one advance per stage, duplicates harmless, and the
same values as the foreground runner. Two real worker processes: tests/integration/test_workers.py."""
import numpy as np
import pytest

from config.celery import app
from valuation import dispatch, services, stages, tasks
from valuation.engine import scoring
from valuation.engine.scoring import ScoreResult
from valuation.models import Payout, RoundTask, ScoreCache, ValuationRound
from valuation.stages.scoring import score_key
from tests.valuation.test_valuing_stage import market_with_scores

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", True)
    monkeypatch.setattr(app.conf, "task_eager_propagates", True)


@pytest.fixture
def scored_round(fake_model_dir):
    r, _ = market_with_scores(4, fake_model_dir)
    return r


def values(r):
    return {v.owner.name: v.shapley for v in r.values.all()}


def payouts(r):
    return {p.owner.name: p.amount for p in r.payouts.all()}


def queue(r, capture):
    with capture(execute=True):
        services.round_queue(valuation_round=r)
    r.refresh_from_db()
    return r


def test_the_celery_path_gives_the_foreground_values(scored_round, fake_model_dir, eager,
                                                     django_capture_on_commit_callbacks):
    r = queue(scored_round, django_capture_on_commit_callbacks)
    assert r.status == ValuationRound.Status.DONE and r.runner == "" and r.finished_at is not None
    tasks_done = RoundTask.objects.filter(round=r)
    assert sorted(tasks_done.values_list("stage", "index")) == (
        [("scoring", i) for i in (-1, 0, 1, 2, 3)] + [("training", i) for i in range(4)])
    assert {t.status for t in tasks_done} == {"done"} and all(t.worker and t.attempts == 1 for t in tasks_done)
    assert r.progress == {"training": {"done": 4, "total": 4}, "scoring": {"done": 5, "total": 5},
                          "valuing": {"done": 3, "total": 3}}
    assert set(r.timings) == {"training", "scoring", "valuing"}

    foreground = services.round_create(name="foreground", pool="100.00", eval_set=r.eval_set,
                                       base_model_dir=str(fake_model_dir))
    for p, q in zip(foreground.participants.order_by("index"), r.participants.order_by("index")):
        p.owner_model = q.owner_model
        p.save()
    foreground = services.round_execute(round_id=foreground.pk)
    assert values(foreground) == values(r) and payouts(foreground) == payouts(r)


def test_each_stage_advances_once_however_many_tasks_finish_it(scored_round):
    dispatch.round_dispatch(round_id=scored_round.pk)  # eager off: the groups stay in the (memory) broker
    scored_round.refresh_from_db()
    assert scored_round.status == "training" and scored_round.runner == dispatch.CELERY_RUNNER
    for index in range(4):
        dispatch.round_unit(round_id=scored_round.pk, stage="training", index=index, worker="w1")
    scored_round.refresh_from_db()
    assert scored_round.status == "scoring"  # the last training unit moved it on
    assert dispatch.round_advance(round_id=scored_round.pk, stage="training") is False  # a duplicate: no-op
    scored_round.refresh_from_db()
    assert scored_round.status == "scoring" and scored_round.progress["scoring"] == {"done": 0, "total": 5}


def test_a_duplicate_valuing_task_leaves_a_done_round_alone(scored_round):
    dispatch.round_dispatch(round_id=scored_round.pk)  # eager off: each task is run by hand below
    for stage, indices in (("training", range(4)), ("scoring", range(-1, 4))):
        for index in indices:
            dispatch.round_unit(round_id=scored_round.pk, stage=stage, index=index, worker="w1")
    stale = ValuationRound.objects.get(pk=scored_round.pk)  # a duplicate that read the round before it was done
    assert stale.status == "valuing"
    dispatch.round_value(round_id=scored_round.pk)
    first = {p.pk: p.amount for p in Payout.objects.filter(round=scored_round)}
    stages.run_valuing(stale)
    tasks.round_value_task(scored_round.pk)
    tasks.round_execute_task(scored_round.pk)
    scored_round.refresh_from_db()
    assert scored_round.status == "done" and scored_round.runner == ""
    assert {p.pk: p.amount for p in Payout.objects.filter(round=scored_round)} == first and len(first) == 4


def test_a_failing_unit_fails_the_round_and_a_requeue_resumes_it(scored_round, eager, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    model = scored_round.participants.get(index=2).owner_model
    ScoreCache.objects.filter(model_hash=score_key(scored_round, model)).delete()
    calls = []

    def flaky_score(model_dir, base_dir, pairs, **kwargs):
        calls.append(model_dir)
        if len(calls) == 1:
            raise MemoryError("out of memory")
        return ScoreResult(chosen=np.full(len(pairs), -3.0), rejected=np.full(len(pairs), -4.5))

    monkeypatch.setattr(scoring, "score_model", flaky_score)
    with pytest.raises(MemoryError):
        queue(scored_round, django_capture_on_commit_callbacks)
    scored_round.refresh_from_db()
    assert scored_round.status == "failed" and "MemoryError: out of memory" in scored_round.error
    assert scored_round.runner == ""
    r = queue(scored_round, django_capture_on_commit_callbacks)
    assert r.status == "done" and len(calls) == 2  # only the failed pass ran again
    assert RoundTask.objects.get(round=r, stage="scoring", index=2).attempts == 2
    assert set(RoundTask.objects.filter(round=r).exclude(index=2).values_list("attempts", flat=True)) == {1}


def test_a_starting_worker_resends_only_the_rounds_the_workers_own(scored_round, fake_model_dir, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.round_execute_task, "delay", sent.append)
    ValuationRound.objects.filter(pk=scored_round.pk).update(status="scoring", runner=dispatch.CELERY_RUNNER)

    def another(name, **fields):
        r = services.round_create(name=name, pool="1.00", eval_set=scored_round.eval_set,
                                  base_model_dir=str(fake_model_dir))
        ValuationRound.objects.filter(pk=r.pk).update(**fields)
        return r.pk

    queued = another("queued", status="queued")
    another("foreground", status="training", runner="somehost:123")
    another("finished", status="done", runner="")
    assert dispatch.rounds_resume() == 2 and sorted(sent) == sorted([scored_round.pk, queued])


def test_a_foreground_runner_is_refused_while_workers_own_the_round(scored_round):
    dispatch.round_dispatch(round_id=scored_round.pk)
    with pytest.raises(Exception, match="being run by celery"):
        services.round_execute(round_id=scored_round.pk)


def test_staff_see_which_worker_ran_each_unit_and_owners_do_not(scored_round, eager, staff_user,
                                                                  django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    r = queue(scored_round, django_capture_on_commit_callbacks)
    client = APIClient()
    client.force_authenticate(staff_user)
    units = client.get(f"/api/rounds/{r.pk}/").json()["units"]
    assert [(u["stage"], u["index"]) for u in units] == (
        [("scoring", i) for i in (-1, 0, 1, 2, 3)] + [("training", i) for i in range(4)])
    assert all(u["status"] == "done" and u["worker"] and u["attempts"] == 1 and u["cached"] for u in units)
    client.force_authenticate(r.participants.get(index=0).owner.user)
    response = client.get(f"/api/rounds/{r.pk}/")
    assert response.status_code == 200 and response.json()["units"] == []
