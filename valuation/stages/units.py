"""The units of a round's work: one owner's fine-tune, one model's scoring pass.

The foreground runner (`manage.py run_round`) loops over them (`stage_run`); on Celery each
is its own task (valuation/dispatch.py). Both call `unit_run`, the one way to run a unit:

* it returns at once when the unit is done, so a message delivered twice does no work;
* it leases the unit (`RoundTask.lease` = host:pid, heartbeat every 30 s) and refuses with
  `UnitBusy` while another live process holds it; a lease whose holder died (its pid gone
  on this host, or no heartbeat for `LEASE_STALE`) is taken over;
* the work itself goes through the stage's cache-aware services: an owner whose model is
  linked is not retrained, a finished model file is adopted, a cached score is reused;
* it records who ran the unit (Celery node name or foreground@host), attempts, seconds.
"""
from __future__ import annotations

import socket
import time
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from ..leases import heartbeat, holder_alive, process_id
from ..models import RoundTask, ScoreCache, ValuationRound
from .common import check_not_cancelled, eval_pairs, report_progress, training_config, uses_chat


def prepare_process() -> None:
    """Warm this process for fine-tunes once (engine/runtime.py): the training stack imported, the heap frozen."""
    from valuation.engine.runtime import prepare_process as prepare

    prepare()

LEASE_STALE = timedelta(minutes=3)  # six missed heartbeats: the holder is gone
BASE = RoundTask.BASE_INDEX


class UnitBusy(Exception):
    """Another live process holds the unit; try again in ``retry_in`` seconds."""

    def __init__(self, task: RoundTask, retry_in: float):
        super().__init__(f"{task} is being run by {task.worker or task.lease}")
        self.task, self.retry_in = task, retry_in


def foreground_worker() -> str:
    return f"foreground@{socket.gethostname()}"


def stage_units(valuation_round, stage: str) -> list[int]:
    """The unit indices of a stage (scoring: the base model first), with their rows created."""
    indices = list(valuation_round.participants.order_by("index").values_list("index", flat=True))
    if stage == RoundTask.Stage.SCORING:
        indices = [BASE] + indices
    RoundTask.objects.bulk_create([RoundTask(round=valuation_round, stage=stage, index=i) for i in indices],
                                  ignore_conflicts=True)
    return indices


def stage_pending(valuation_round, stage: str) -> list[int]:
    """Units of the stage not done yet (pending, running, failed), in index order."""
    stage_units(valuation_round, stage)
    return list(RoundTask.objects.filter(round=valuation_round, stage=stage).exclude(status=RoundTask.Status.DONE)
                .order_by("index").values_list("index", flat=True))


def stage_run(valuation_round, stage: str, *, on_progress=None) -> None:
    """The foreground runner's loop: every unit of the stage in this process, waiting out foreign leases."""
    indices = stage_units(valuation_round, stage)
    for done, index in enumerate(indices):
        report_progress(valuation_round, stage, done, len(indices), on_progress)
        while True:
            try:
                unit_run(round_id=valuation_round.pk, stage=stage, index=index, worker=foreground_worker())
                break
            except UnitBusy as busy:
                check_not_cancelled(valuation_round)
                time.sleep(min(busy.retry_in, 5.0))
    report_progress(valuation_round, stage, len(indices), len(indices), on_progress)


def unit_run(*, round_id: int, stage: str, index: int, worker: str) -> RoundTask:
    """Run one unit of a round unless it is done; returns its row. Raises `UnitBusy` while another holds it."""
    valuation_round = ValuationRound.objects.get(pk=round_id)
    check_not_cancelled(valuation_round)
    work = _WORK[RoundTask.Stage(stage)]
    _check_index(valuation_round, stage, index)
    task = _claim(valuation_round, stage, index, worker)
    if task.status == RoundTask.Status.DONE:
        return task
    started = time.perf_counter()
    try:
        with heartbeat(lambda: _beat(task)):
            cached = work(valuation_round, index)
    except Exception as exc:
        _release(task, status=RoundTask.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    except BaseException:
        _release(task, status=RoundTask.Status.PENDING)  # interrupted: the next runner starts it at once
        raise
    RoundTask.objects.filter(pk=task.pk, lease=task.lease).update(
        status=RoundTask.Status.DONE, lease="", cached=cached, seconds=round(time.perf_counter() - started, 3),
        finished_at=timezone.now())
    task.refresh_from_db()
    return task


def _check_index(valuation_round, stage: str, index: int) -> None:
    if stage == RoundTask.Stage.SCORING and index == BASE:
        return
    if not valuation_round.participants.filter(index=index).exists():
        raise ValueError(f"round {valuation_round.pk} has no owner with index {index}")


def _claim(valuation_round, stage: str, index: int, worker: str) -> RoundTask:
    task, _ = RoundTask.objects.get_or_create(round=valuation_round, stage=stage, index=index)
    if task.status == RoundTask.Status.DONE:
        return task
    me, now = process_id(), timezone.now()
    if task.status == RoundTask.Status.RUNNING and task.lease != me and _lease_alive(task, now):
        raise UnitBusy(task, retry_in=(LEASE_STALE - (now - task.heartbeat_at)).total_seconds())
    claimed = RoundTask.objects.filter(pk=task.pk, status=task.status, lease=task.lease).update(
        status=RoundTask.Status.RUNNING, lease=me, worker=worker[:200], attempts=F("attempts") + 1, error="",
        started_at=now, heartbeat_at=now, finished_at=None)
    task.refresh_from_db()
    if not claimed:  # another process claimed or finished it between our read and our write
        if task.status == RoundTask.Status.DONE:
            return task
        raise UnitBusy(task, retry_in=5.0)
    return task


def _lease_alive(task: RoundTask, now) -> bool:
    fresh = task.heartbeat_at is not None and now - task.heartbeat_at < LEASE_STALE
    return fresh and holder_alive(task.lease)


def _beat(task: RoundTask) -> None:
    now = timezone.now()
    RoundTask.objects.filter(pk=task.pk, lease=task.lease).update(heartbeat_at=now)
    ValuationRound.objects.filter(pk=task.round_id).update(heartbeat_at=now)


def _release(task: RoundTask, *, status: str, error: str = "") -> None:
    RoundTask.objects.filter(pk=task.pk, lease=task.lease).update(status=status, lease="", error=error[:4000],
                                                                   finished_at=timezone.now())


def _train(valuation_round, index: int) -> bool:
    """Link owner ``index``'s model, training it unless cached. True when no fine-tune ran for it here."""
    from valuation.engine.hashing import config_hash

    from .training import ensure_owner_model

    participant = valuation_round.participants.select_related("owner__user").get(index=index)
    if participant.owner_model_id is not None:
        return True  # linked by an earlier attempt: a redelivered message finds nothing to do
    prepare_process()
    cfg = training_config(valuation_round.config)
    ensure_owner_model(valuation_round, participant, cfg, config_hash(cfg))
    participant.refresh_from_db()
    return participant.model_reused


def _score(valuation_round, index: int) -> bool:
    """Cache the eval set's log-probs under the base model (BASE) or owner ``index``'s model. True when cached."""
    from .scoring import _score_one, score_eval_hash, score_key

    owner_model = None
    if index != BASE:
        participant = valuation_round.participants.select_related("owner_model").get(index=index)
        if participant.owner_model is None:
            raise RuntimeError(f"owner {index} has no model yet: its fine-tune must finish before its scoring pass")
        owner_model = participant.owner_model
    key = score_key(valuation_round, owner_model)
    if ScoreCache.objects.filter(model_hash=key, eval_hash=score_eval_hash(valuation_round)).exists():
        return True
    evals = eval_pairs(valuation_round.eval_set, chat=uses_chat(valuation_round))
    _score_one(valuation_round, owner_model, key, evals)
    return False


_WORK = {RoundTask.Stage.TRAINING: _train, RoundTask.Stage.SCORING: _score}
